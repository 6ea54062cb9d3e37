"""Why the others failed: the fields that separate working trials from the rest, each with its counts."""

import json

import torch

from analysis import format_factors, get_factors_info, rank, read_experiment
from tests.analysis.test_reader import make_trial

SEARCH = {
    "conditioning": {"values": ["concat", "projection"]},
    "freeze_accuracy": {"values": ["off", 0.8, 0.9]},
    "g_lr": {"low": 2e-4, "high": 5e-3, "log": False, "step": None, "integer": False},
    "freeze_after": {"values": ["off", 2000, 5000]},
    "normalization": {"values": ["[0,1]", "[-1,1]"]},
}


def study(root, trials, iterations=1200, events=None):
    """A study folder as the driver writes it: study.json with the space, a folder per trial;
    ``events(params)``: the freeze events of each report, where reports list them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.json").write_text(json.dumps({"spec": {"search": SEARCH}, "baselines": {}}))
    for index, (params, accuracy, fid) in enumerate(trials):
        rows = [{"iteration": it, "fid_intra": fid + (iterations - it) / 100, "cond_accuracy": accuracy * it / iterations}
                for it in range(300, iterations + 1, 300)]
        for row in rows if events else ():
            row["freeze_events"] = events(params) if row["iteration"] == 600 else []
        make_trial(root, f"trial_{index:02d}", params, rows, stop="completed")
    return read_experiment(root)


def test_the_separating_field_is_claimed_with_its_counts_and_a_field_alike_in_both_is_not(tmp_path):
    # projection in the 3 working trials and 1 of 4 others; the normalization alternates in both groups.
    trials = [({"conditioning": "projection", "g_lr": 2e-3, "freeze_after": "off", "normalization": norm}, 0.6, 8.0)
              for norm in ("[0,1]", "[-1,1]", "[0,1]")]
    trials += [({"conditioning": cond, "g_lr": 2e-3, "freeze_after": "off", "normalization": norm}, 0.2, 30.0)
               for cond, norm in (("concat", "[0,1]"), ("concat", "[-1,1]"), ("concat", "[0,1]"), ("projection", "[-1,1]"))]
    info = get_factors_info(study(tmp_path, trials))
    assert info.basis.startswith("3 working trials (conditional accuracy >= 0.5 at a report) against the 4 others")
    assert [factor.field for factor in info.factors] == ["conditioning"]
    assert info.factors[0].claim == "conditioning = projection in 3 of the 3 working trials, 1 of the 4 others"
    # 4 of the 7 trials had projection: all 3 working ones among them in 4 of the 35 ways to deal them.
    assert info.factors[0].chance == 4 / 35
    assert format_factors(info)[1] == ("  conditioning = projection in 3 of the 3 working trials, 1 of the 4 others "
                                       "(chance 0.11)")


def test_a_numeric_field_is_claimed_as_the_two_groups_ranges(tmp_path):
    trials = [({"conditioning": "projection", "g_lr": lr, "freeze_after": "off", "normalization": "[0,1]"}, 0.6, 8.0)
              for lr in (2e-3, 3e-3, 4e-3)]
    trials += [({"conditioning": "projection", "g_lr": lr, "freeze_after": "off", "normalization": "[0,1]"}, 0.2, 30.0)
               for lr in (2e-4, 5e-4, 8e-4)]
    (factor,) = get_factors_info(study(tmp_path, trials)).factors
    # No overlap: 2 of the 20 ways to deal six values into two threes are as far apart (either way round).
    assert factor.field == "g_lr" and factor.separation == 1.0 and factor.chance == 2 / 20
    assert factor.claim == ("g_lr 0.002-0.004 (median 0.003) in the 3 working trials, "
                            "0.0002-0.0008 (median 0.0005) in the 3 others")


def test_where_no_trial_worked_the_best_quarter_stands_in_and_says_so(tmp_path):
    trials = [({"conditioning": "projection", "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]"}, 0.3, fid)
              for fid in (5.0, 6.0)]
    trials += [({"conditioning": "concat", "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]"}, 0.2, fid)
               for fid in (20.0, 21.0, 22.0, 23.0, 24.0, 25.0)]
    info = get_factors_info(study(tmp_path, trials))
    assert info.good_label == "best"
    assert info.basis == "no trial worked: the best 2 by FD-intra against the 6 others"
    assert info.factors[0].claim == "conditioning = projection in 2 of the 2 best trials, 0 of the 6 others"


def test_freezing_d_after_more_iterations_than_a_trial_ran_counts_as_no_freezing(tmp_path):
    # The working trials drew freeze_after 2000, the others "off": at 1200 iterations no trial froze D.
    trials = [({"conditioning": "projection", "g_lr": 2e-3, "freeze_after": after, "normalization": "[0,1]"}, 0.6, 8.0)
              for after in (2000, 2000, 2000)]
    trials += [({"conditioning": "projection", "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]"}, 0.2, 30.0)
               for _ in range(3)]
    short = get_factors_info(study(tmp_path / "short", trials, iterations=1200))
    assert short.factors == [] and short.note.startswith("no searched field separates the working trials")
    # The same trials run to 6000 iterations did freeze D at those points: then the split is a claim.
    long = get_factors_info(study(tmp_path / "long", trials, iterations=6000))
    assert [factor.field for factor in long.factors] == ["freeze_after"]
    assert long.factors[0].claim == "freeze_after = 2000 in 3 of the 3 working trials, 0 of the 3 others"


def test_a_wide_split_that_random_dealing_gives_often_is_no_claim(tmp_path):
    # projection in the one working trial and in 1 of 3 others: a gap of 0.67, but dealing two
    # projection trials among four puts one on the working trial half the time.
    trials = [({"conditioning": "projection", "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]"}, 0.6, 8.0)]
    trials += [({"conditioning": cond, "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]"}, 0.2, 30.0)
               for cond in ("projection", "concat", "concat")]
    info = get_factors_info(study(tmp_path, trials))
    assert info.factors == []
    assert info.note == ("no searched field separates the working trials from the others more than dealing its "
                         "values at random would (4 trials)")
    assert format_factors(info) == [f"why: {info.note} ({info.basis})"]


def test_many_trials_take_the_normal_approximation_close_to_the_exact_count(monkeypatch):
    from analysis import _factors

    good = [2.0, 2.5, 3.1, 3.3, 3.9, 4.2, 1.1, 4.8, 2.2, 3.6]
    rest = [0.5, 1.0, 1.5, 2.1, 0.9, 3.0, 0.3, 1.8, 2.7, 1.2]
    overlapping = [2.0, 2.5, 1.1, 3.3, 0.9, 4.2, 1.1, 1.8, 2.2, 0.6]
    # C(20, 10) = 184,756 dealings: over _EXACT_DEALS, so approximated
    approximate = [_factors._u_chance(good, rest), _factors._u_chance(overlapping, rest)]
    monkeypatch.setattr(_factors, "_EXACT_DEALS", 200_000)
    exact = [_factors._u_chance(good, rest), _factors._u_chance(overlapping, rest)]
    assert 0.001 < exact[0] < 0.01 and 0.3 < exact[1] < 0.5  # (0.0039 and 0.38)
    assert abs(approximate[0] - exact[0]) < 0.005 and abs(approximate[1] - exact[1]) < 0.01


def test_claims_come_least_likely_by_chance_first(tmp_path):
    # Both fields split the 2 working trials from the 4 others without overlap; [-1,1] in just the
    # two working ones happens in 1 of 15 dealings, g_lr's order either way round in 2 of 15.
    trials = [({"conditioning": "projection", "g_lr": lr, "freeze_after": "off", "normalization": "[-1,1]"}, 0.6, 8.0)
              for lr in (3e-3, 4e-3)]
    trials += [({"conditioning": "projection", "g_lr": lr, "freeze_after": "off", "normalization": "[0,1]"}, 0.2, 30.0)
               for lr in (2e-4, 5e-4, 8e-4, 1e-3)]
    factors = get_factors_info(study(tmp_path, trials)).factors
    assert [(factor.field, factor.separation, factor.chance) for factor in factors] == [
        ("normalization", 1.0, 1 / 15), ("g_lr", 1.0, 2 / 15)]


def accuracy_freezes(threshold):
    """The events the real freeze rule writes when D's accuracy passes ``threshold``."""
    from trainable.config import TrainConfig
    from trainable.freeze import FreezeRule

    rule = FreezeRule(window=2)
    config = TrainConfig.from_dict({"freeze_accuracy": threshold})
    for step in range(4):
        rule.push(torch.tensor([1.0, 1.0]))
        rule.update(config, 500 + step)
    return rule.take_events()


def test_an_accuracy_threshold_d_never_passed_counts_as_no_freezing(tmp_path):
    # freeze_accuracy 0.9 in the 3 working trials, off in the 3 others.
    trials = [({"conditioning": "projection", "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]",
                "freeze_accuracy": accuracy}, worked, fid)
              for accuracy, worked, fid in ((0.9, 0.6, 8.0),) * 3 + (("off", 0.2, 30.0),) * 3]
    # Reports list no freeze: the threshold never acted, and the split is no claim.
    never = get_factors_info(study(tmp_path / "never", trials, events=lambda params: [])).factors
    assert never == []
    # D froze on its accuracy in the trials with the threshold: then it is one.
    froze = get_factors_info(study(tmp_path / "froze", trials, events=lambda params: (
        accuracy_freezes(params["freeze_accuracy"]) if params["freeze_accuracy"] != "off" else []))).factors
    assert [(factor.field, factor.claim) for factor in froze] == [
        ("freeze_accuracy", "freeze_accuracy = 0.9 in 3 of the 3 working trials, 0 of the 3 others")]
    # Reports from before freeze events were written: the value as drawn.
    unknown = get_factors_info(study(tmp_path / "unknown", trials)).factors
    assert [factor.field for factor in unknown] == ["freeze_accuracy"]
    # Events written before they named their rules: the reason's text tells the accuracy rule.
    worded = get_factors_info(study(tmp_path / "worded", trials, events=lambda params: [
        {key: value for key, value in event.items() if key != "rules"}
        for event in (accuracy_freezes(params["freeze_accuracy"]) if params["freeze_accuracy"] != "off" else [])])
    ).factors
    assert [factor.field for factor in worded] == ["freeze_accuracy"]
    # A freeze by the other rule (freeze_after) is no freeze by the accuracy threshold.
    after = get_factors_info(study(tmp_path / "after", trials, events=lambda params: [
        {"iteration": 600, "event": "freeze", "reason": "iteration >= 600", "rules": ["after"]}])).factors
    assert after == []


def test_the_freeze_rule_names_the_rules_that_froze_d():
    from trainable.config import TrainConfig
    from trainable.freeze import FreezeRule

    rule = FreezeRule(window=2)
    config = TrainConfig.from_dict({"freeze_accuracy": 0.9, "freeze_after": 502})
    for step, accuracy in enumerate((1.0, 1.0, 1.0, 1.0, 0.0, 0.0)):
        rule.push(torch.tensor([accuracy, accuracy]))
        rule.update(config if step < 4 else TrainConfig.from_dict({"freeze_accuracy": 0.9}), 500 + step)
    assert [(event["event"], event["rules"]) for event in rule.take_events()] == [
        ("freeze", ["accuracy"]), ("unfreeze", [])]
    both = FreezeRule(window=2)  # the window full when freeze_after is reached: both rules froze D
    both.push(torch.tensor([1.0, 1.0]))
    both.push(torch.tensor([1.0, 1.0]))
    both.update(config, 502)
    assert [event["rules"] for event in both.take_events()] == [["after", "accuracy"]]


def test_where_no_trial_worked_and_most_ran_out_of_iterations_still_improving_it_says_so(tmp_path):
    base = {"conditioning": "projection", "g_lr": 2e-3, "freeze_after": "off", "normalization": "[0,1]",
            "iterations": 1200}
    v0 = {**base, "conditioning": "concat", "g_lr": 2e-4}

    def write(root, curves, judged=False):
        """A study of one trial per (params, accuracies at 300, 600, ...), V0 among them as a baseline;
        ``judged``: the reports say the judge saw 50 samples of each of 8 classes."""
        root.mkdir()
        (root / "study.json").write_text(json.dumps({"spec": {"search": SEARCH}, "baselines": {"V0": v0}}))
        for index, (params, accuracies) in enumerate(curves):
            rows = [{"iteration": 300 * (i + 1), "fid_intra": 50.0 - i - index, "cond_accuracy": accuracy,
                     **({"cond_accuracy_per_class": [accuracy] * 8} if judged else {})}
                    for i, accuracy in enumerate(accuracies)]
            make_trial(root, f"trial_{index:02d}", {**params, **({"eval_samples_per_class": 50} if judged else {})},
                       rows, stop="completed" if len(rows) == 4 else "asha")
        return get_factors_info(read_experiment(root))

    rising, flat = [0.30, 0.36, 0.40, 0.45], [0.30, 0.31, 0.30, 0.29]
    curves = [(base, rising), ({**base, "g_lr": 3e-3}, [0.2, 0.3, 0.4, 0.48]), ({**base, "g_lr": 4e-3}, rising),
              ({**base, "g_lr": 1e-3}, flat),
              ({**base, "g_lr": 5e-3}, [0.1]),  # stopped at 300: it did not run all its iterations
              (v0, [0.12, 0.14, 0.16, 0.19])]  # the paper's V0 rises too, but is no searched trial
    info = write(tmp_path / "short", curves)
    assert info.short == ("3 of the 4 searched trials that ran all their 1200 iterations were still improving at "
                          "their end (conditional accuracy at its highest in their last report: 0.45-0.48): longer "
                          "trials ([fixed] iterations = 2400, say) may reach 0.5; the best of them goes on from "
                          f"where it ended with: cgan-study trial --from {tmp_path / 'short'} --rank 3 --continue "
                          "--set iterations=2400")
    # Rank 3 by FD-intra: V0 (42) and the flat trial_03 (44) rank above the best rising one, trial_02 (45).
    ranked = [trial.name for trial in rank(read_experiment(tmp_path / "short").trials)]
    assert ranked[:3] == ["trial_05", "trial_03", "trial_02"]
    assert format_factors(info)[-1] == "too short: " + info.short
    # Not where a trial worked, nor where fewer than half of those that ran to their end still rose.
    assert write(tmp_path / "worked", curves + [(base, [0.3, 0.4, 0.5, 0.52])]).short == ""
    assert write(tmp_path / "flat", curves[:2] + [(base, flat)] * 3).short == ""
    # A rise within the judge's noise (400 samples: 0.033 at 0.32) is no rise; the others' are.
    noisy = [(base, [0.245, 0.3, 0.2575, 0.3225]), ({**base, "g_lr": 3e-3}, [0.158, 0.172, 0.235, 0.282])]
    assert write(tmp_path / "noisy", noisy, judged=True).short == ""
    assert write(tmp_path / "judged", curves, judged=True).short.startswith("3 of the 4 searched trials")


def test_the_summary_gives_chance_for_the_sets_classes_and_names_a_collapsed_best_as_such(tmp_path):
    from study._summary import summary

    (tmp_path / "study.json").write_text(json.dumps({"spec": {"search": SEARCH}, "baselines": {}}))
    window = {"collapse_grace": 600, "collapse_patience": 3, "iterations": 1200}

    def rows(fid, accuracy, count=4):
        return [{"iteration": 300 * (i + 1), "fid_intra": fid, "cond_accuracy": accuracy, "fid_per_class": [fid] * 8}
                for i in range(count)]

    make_trial(tmp_path, "trial_a", {**window, "g_lr": 2e-3}, rows(40.0, 0.45), stop="mode-collapse")
    make_trial(tmp_path, "trial_b", {**window, "g_lr": 3e-3}, rows(80.0, 0.3, count=1), stop="asha")
    lines = summary(tmp_path).splitlines()
    # Eight classes: chance is 1/8. The collapsed trial_a is first by its score, said to be collapsed;
    # trial_b was stopped before the verdict could judge it, and ranks by its score below.
    assert "working: no trial reached conditional accuracy 0.5 (chance 1/8 = 0.125)" in lines
    assert ("best: trial_a FD-intra 40.000, conditional accuracy 0.450 at iteration 1200; mode-collapse: no trial "
            "was judged healthy") in lines


def test_the_summarys_chance_comes_from_the_class_names_the_study_recorded(tmp_path):
    from study._summary import summary

    shapes = ["circle", "square", "triangle", "plus", "ring", "diamond", "star", "arrow"]
    (tmp_path / "study.json").write_text(json.dumps({"spec": {"search": SEARCH}, "baselines": {}, "classes": shapes}))
    make_trial(tmp_path, "trial_a", {"g_lr": 2e-3}, [{"iteration": 300, "fid_intra": 40.0, "cond_accuracy": 0.3}],
               stop="asha")  # no per-class scores: the count is the recorded names'
    assert "working: no trial reached conditional accuracy 0.5 (chance 1/8 = 0.125)" in summary(tmp_path).splitlines()


def test_the_summary_says_which_trials_the_study_lengthened(tmp_path):
    """Trials that ran longer than the study's fixed length were lengthened by the study: the
    summary says how many, how long, and how many of them worked."""
    def trials(root, lengths):
        root.mkdir()
        (root / "study.json").write_text(json.dumps({"spec": {"search": SEARCH, "fixed": {"iterations": 1200}},
                                                     "baselines": {}}))
        for index, (length, accuracy) in enumerate(lengths):
            rows = [{"iteration": it, "fid_intra": 50.0 - it / 100, "cond_accuracy": accuracy * it / length}
                    for it in range(300, length + 1, 300)]
            make_trial(root, f"trial_{index}", {"g_lr": 2e-3 + index * 1e-4, "iterations": length}, rows,
                       stop="completed")
        return get_factors_info(read_experiment(root))

    info = trials(tmp_path / "long", [(1200, 0.45), (1200, 0.4), (2400, 0.6), (2400, 0.45)])
    assert info.lengthened == ("2 searched trials ran 2400 iterations, not 1200: the study lengthened the trials it "
                               "started once none had worked and those that had run all their 1200 were mostly still "
                               "improving ([study] lengthen; the collapse verdict's grace in proportion); 1 of them "
                               "worked. The fields compared here do not count "
                               "the length")
    assert format_factors(info)[-1] == "lengthened: " + info.lengthened
    assert trials(tmp_path / "fixed", [(1200, 0.45), (1200, 0.6)]).lengthened == ""


def test_a_trial_that_went_on_from_anothers_end_counts_its_point_once_and_is_named(tmp_path):
    """The study went on from trial_1's end (params "continues"): the two are one point, which
    worked when trained on; the factors compare it once, on the working side, and the summary's
    lines name the trial that went on, with where it began."""
    from study._summary import summary

    (tmp_path / "study.json").write_text(json.dumps({"spec": {"search": SEARCH, "fixed": {"iterations": 1200}},
                                                     "baselines": {}}))

    def rows(accuracies, first=300):
        return [{"iteration": first + 300 * i, "fid_intra": 50.0 - 10 * accuracy, "cond_accuracy": accuracy,
                 "timestamp": 1_000 + first + 300 * i} for i, accuracy in enumerate(accuracies)]

    projection = {"conditioning": "projection", "iterations": 1200}
    for index in range(3):  # concat: none worked
        make_trial(tmp_path, f"trial_c{index}", {"conditioning": "concat", "iterations": 1200},
                   rows([0.1, 0.15, 0.2, 0.25]), stop="completed")
    make_trial(tmp_path, "trial_1", projection, rows([0.2, 0.3, 0.4, 0.45]), stop="completed")
    make_trial(tmp_path, "trial_2", {**projection, "iterations": 2400,
                                     "continues": {"trial": "1", "uri": str(tmp_path / "trial_1"), "iteration": 1200}},
               rows([0.48, 0.52, 0.55, 0.6], first=1500), stop="completed")
    experiment = read_experiment(tmp_path)
    assert [trial.continues for trial in experiment.trials if trial.continues] == ["trial_1"]
    info = get_factors_info(experiment)
    assert (info.good, sorted(info.rest)) == (["trial_2"], ["trial_c0", "trial_c1", "trial_c2"])
    assert info.lengthened.startswith("1 searched trial (trial_2 going on from the end of trial_1) ran 2400 iterations")
    text = summary(tmp_path)
    assert ("working: trial_2 first reached conditional accuracy 0.520 >= 0.5 at iteration 1800 (going on from "
            "trial_1's end at iteration 1200)") in text, text
