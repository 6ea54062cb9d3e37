"""The searcher: collapsed trials reach Optuna as PRUNED and infeasible, so TPE leaves their region."""

import pickle

import pytest

from study._search import make_searcher
from study._stopping import StopLedger
from study.spec import load_spec
from trainable.experiment import ASHA, LOSS_COLLAPSE, SCORE
from trainable.space import Range


def test_collapsed_trials_are_infeasible_and_asha_stops_are_not(tmp_path):
    optuna = pytest.importorskip("optuna")
    spec = load_spec(samples=6, baselines=())
    searcher, _ = make_searcher(spec, tmp_path)
    ledger = StopLedger(tmp_path)
    for trial_id in ("a", "b", "c"):
        assert searcher.suggest(trial_id) is not None
    ledger.record("a", LOSS_COLLAPSE, "D wins", 400)
    ledger.record("b", ASHA, "below the cut", 400)
    searcher.on_trial_complete("a", result={SCORE: 12.0, "training_iteration": 2})
    searcher.on_trial_complete("b", result={SCORE: 15.0, "training_iteration": 2})
    searcher.on_trial_complete("c", result={SCORE: 9.0, "training_iteration": 4})
    trials = {t.number: t for t in searcher._ot_study.get_trials()}
    a, b, c = trials[0], trials[1], trials[2]
    # The collapse is pruned; the trial ASHA stopped is weighed by its score (projected: no curve to
    # project by yet, so as it is), beside the finished one.
    assert a.state == optuna.trial.TrialState.PRUNED and b.state == c.state == optuna.trial.TrialState.COMPLETE
    assert b.value == 15.0
    # Only the collapse is infeasible, which TPE's split puts in its "bad" group whatever the score.
    assert [t.constraints for t in (a, b, c)] == [{"collapse": 1.0}, {"collapse": -1.0}, {"collapse": -1.0}]
    from optuna.samplers._tpe.sampler import _split_trials

    below, above = _split_trials(searcher._ot_study, [a, b, c], n_below=2)
    assert a in above and c in below


def _suggest_all(searcher, count, score=lambda params: 1.0):
    """Suggest ``count`` trials, each finished at once with ``score(params)``; the points, or the
    searcher's FINISHED where it ended the search."""
    points = []
    for number in range(count):
        params = searcher.suggest(f"t{number}")
        if not isinstance(params, dict):
            points.append(params)
            break
        points.append(params)
        searcher.on_trial_complete(f"t{number}", result={SCORE: score(params), "training_iteration": 1})
    return points


def test_no_point_of_a_small_space_runs_twice_and_the_search_ends_when_all_have(tmp_path, capsys):
    from ray.tune.search import Searcher

    # Two values of latent size x three of D filters: 6 points, V0 and V1 among them. TPE favours
    # its best point (here the widest D) and random draws repeat in so small a space.
    spec = load_spec(_study(tmp_path, '[study]\nbaselines = ["V0", "V1"]\n[search]\nlatent_size = [80, 100]\n'
                                      'd_filters = ["8,16,32", "16,32,64", "32,64,128"]\n'), samples=10)
    searcher, _ = make_searcher(spec, tmp_path)
    points = _suggest_all(searcher, 10, score=lambda params: -int(params["d_filters"].split(",")[0]))
    assert points[-1] == Searcher.FINISHED and len(points) == 7
    searched = [(point["latent_size"], point["d_filters"]) for point in points[:-1]]
    assert searched[:2] == [(100, "32,64,128"), (80, "16,32,64")]  # the baselines first, as given
    assert len(set(searched)) == 6  # every point once, none twice
    assert "holds 6 distinct configurations and a trial has started with each" in capsys.readouterr().err


def test_a_searcher_saved_before_it_kept_its_points_still_repeats_none_after_a_resume(tmp_path):
    # (random draws: TPE's start would wait for trials to finish, which this test never tells it of)
    spec = load_spec(_study(tmp_path, '[study]\nbaselines = ["V0"]\nsampler = "random"\n[search]\nlatent_size = [80, 100]\n'
                                      'd_filters = ["8,16,32", "16,32,64", "32,64,128"]\n'), samples=10)
    searcher, _ = make_searcher(spec, tmp_path)
    before = _suggest_all(searcher, 3)
    del searcher._points  # as a study saved by the version before this one holds it
    searcher.save(tmp_path / "searcher.pkl")
    pickled, _ = make_searcher(spec, tmp_path)  # Tune restores a searcher unpickled, __init__ not run
    del pickled._points
    fresh, _ = make_searcher(spec, tmp_path)
    for resumed in (pickled, fresh):
        resumed.restore(tmp_path / "searcher.pkl")
        after = [resumed.suggest(f"r{number}") for number in range(4)]
        searched = [(point["latent_size"], point["d_filters"]) for point in before + after[:3]]
        assert len(set(searched)) == 6 and after[3] == "FINISHED"


def test_a_space_with_a_float_range_is_sampled_as_before(tmp_path):
    spec = load_spec(_study(tmp_path, '[study]\nbaselines = ["V0"]\n[search]\nlatent_size = [80, 100]\n'
                                      'd_dropout = {low = 0.0, high = 0.5}\n'), samples=6)
    searcher, _ = make_searcher(spec, tmp_path)
    points = _suggest_all(searcher, 6)
    assert len(points) == 6 and all(isinstance(point, dict) for point in points)
    assert spec.space_size() is None


def test_the_space_size_counts_choices_and_integer_steps(tmp_path):
    spec = load_spec(_study(tmp_path, '[study]\nbaselines = []\n[search]\nlatent_size = {low = 32, high = 128, '
                                      'step = 32}\nloss = ["bce", "hinge"]\n'))
    assert spec.space_size() == 4 * 2


def _study(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_a_trial_stopped_early_is_weighed_by_its_score_projected_to_the_full_length(tmp_path):
    """Optuna's TPE ranks every finished trial above every pruned one, so the spared V0, finished,
    outranked a trial ASHA cut at its first rung with a far better score there, and drew the search
    to itself. The sampler is told a trial stopped early as finished, its score projected with the
    study's own curves; and Tune gives the searcher no result it stopped a trial on: that one counts."""
    optuna = pytest.importorskip("optuna")
    from optuna.samplers._tpe.sampler import _split_trials

    from study._search import projected_score

    spec = load_spec(samples=6, baselines=("V0",))
    assert spec.evaluations == 4
    searcher, _ = make_searcher(spec, tmp_path)
    ledger = StopLedger(tmp_path)
    v0, cut, collapsed = searcher.suggest("v0"), searcher.suggest("cut"), searcher.suggest("collapsed")
    assert v0["g_lr"] == 2e-4 and cut != v0
    for step, score in ((1, 30.0), (2, 25.0), (3, 22.0), (4, 20.0)):  # ASHA spares V0: it runs to its end
        searcher.on_trial_result("v0", {SCORE: score, "training_iteration": step, "iteration": 300 * step})
    searcher.on_trial_complete("v0", result={SCORE: 20.0, "training_iteration": 4, "iteration": 1200})
    ledger.record("cut", ASHA, "below the cut", 300)  # cut at its first report, which Tune keeps from the searcher
    searcher.on_trial_complete("cut", result={SCORE: 24.0, "training_iteration": 1, "iteration": 300})
    ledger.record("collapsed", LOSS_COLLAPSE, "D wins", 300)
    searcher.on_trial_complete("collapsed", result={SCORE: 1.0, "training_iteration": 1, "iteration": 300})
    v0_trial, cut_trial, collapsed_trial = searcher._ot_study.get_trials()[:3]
    assert v0_trial.state == cut_trial.state == optuna.trial.TrialState.COMPLETE
    assert v0_trial.value == 20.0 and cut_trial.value == pytest.approx(24.0 * 20.0 / 30.0)  # V0's curve: 30 -> 20
    assert collapsed_trial.state == optuna.trial.TrialState.PRUNED and collapsed_trial.constraints == {"collapse": 1.0}
    below, _ = _split_trials(searcher._ot_study, [v0_trial, cut_trial, collapsed_trial], n_below=1)
    assert below == [cut_trial]  # 16 projected beats V0's 20: the better trial to the sampler
    assert searcher.spent == 1200 + 300 + 300
    # With no curve to project by, a score is taken as it is.
    assert projected_score({1: 24.0}, [{1: 24.0}], 4) == 24.0 and projected_score({}, [], 4) is None


def test_tpe_draws_its_space_filling_start_then_waits_for_it_to_finish(tmp_path):
    """Tune asks for trials ahead of its free slots, and TPE draws at random until startup_trials
    have finished: after the space-filling start the next draw waits (None: Tune asks again)."""
    spec = load_spec(samples=20, baselines=("V0",), startup_trials=5)
    searcher, _ = make_searcher(spec, tmp_path)
    start = [searcher.suggest(f"t{number}") for number in range(5)]
    # V0, then 4 points that between them hold each value of every two-valued field twice (of
    # conditioning, each value drawn: the paper's concat only V0 takes)
    assert start[0]["g_lr"] == 2e-4 and all(isinstance(point, dict) for point in start)
    assert sorted(point["normalization"] for point in start[1:]) == sorted(list(spec.search["normalization"].values) * 2)
    assert start[0]["conditioning"] == "concat" and {point["conditioning"] for point in start[1:]} == {"projection"}
    assert searcher.suggest("t5") is None  # nothing finished yet: wait
    for number in range(4):
        searcher.on_trial_complete(f"t{number}", result={SCORE: 10.0 + number, "training_iteration": 4})
    assert searcher.suggest("t5") is None  # 4 of 5 finished
    searcher.on_trial_complete("t4", result={SCORE: 9.0, "training_iteration": 4})
    assert isinstance(searcher.suggest("t5"), dict)


def test_under_a_budget_a_trial_starts_only_while_the_live_ones_leave_room(tmp_path, capsys):
    """Tune asks for trials ahead of free slots: a trial is created only while the budget has room
    beside what the live trials may still train; once spent, the search ends."""
    from ray.tune.search import Searcher

    (tmp_path / "study.toml").write_text("[fixed]\niterations = 800\neval_every = 200\n")
    spec = load_spec(tmp_path / "study.toml", samples=50, baselines=(), sampler="random", budget=3000)
    length = spec.base_config().iterations
    searcher, _ = make_searcher(spec, tmp_path)
    assert all(isinstance(searcher.suggest(trial_id), dict) for trial_id in "abcd")  # 2400 live < 3000: d too
    assert searcher.suggest("e") is None  # 3200 may still be trained: e waits, not created
    searcher.on_trial_result("a", {SCORE: 9.0, "training_iteration": 1, "iteration": 200})
    assert searcher.suggest("e") is None  # a report moves iterations from "may train" to "spent"
    StopLedger(tmp_path).record("a", ASHA, "below the cut", 200)
    searcher.on_trial_complete("a", result={SCORE: 9.0, "training_iteration": 1, "iteration": 200})
    assert isinstance(searcher.suggest("e"), dict)  # a was cut at 200: 200 + 3 x 800 < 3000, room again
    for trial_id in "bcde":
        searcher.on_trial_complete(trial_id, result={SCORE: 8.0, "training_iteration": 4, "iteration": length})
    assert searcher.spent == 200 + 4 * length and searcher.suggest("f") == Searcher.FINISHED
    assert "budget of 3000 training iterations is spent" in capsys.readouterr().err


@pytest.mark.parametrize("sampler", ["tpe", "random", "plain-tpe"])
def test_the_sampler_draws_only_each_fields_draw_while_the_baselines_run_as_themselves(tmp_path, sampler):
    """The default space holds the paper's concat D and rates of 2e-4 (V0, V1, V2 are points of it)
    and draws only the projection D and rates from 1e-3 (G) and 5e-4 (D): every sampler, before its
    model and after, draws within each field's draw, and the sampler's store keeps V0's point with
    the whole domain."""
    import optuna

    spec = load_spec(samples=30, baselines=("V0", "V1"), sampler=sampler, startup_trials=3)
    assert spec.search["conditioning"].drawn == ("projection",)
    assert spec.search["g_lr"].drawn == (1e-3, 5e-3) and spec.search["d_lr"].drawn == (5e-4, 5e-3)
    ranges = {key: domain.drawn for key, domain in spec.search.items()
              if isinstance(domain, Range) and domain.draw is not None}
    assert set(ranges) >= {"g_lr", "d_lr", "d_dropout"}
    searcher, _ = make_searcher(spec, tmp_path)
    points = []
    for number in range(14):
        point = searcher.suggest(f"t{number}")
        points.append(point)
        searcher.on_trial_complete(f"t{number}", result={SCORE: 30.0 - number if number > 1 else 5.0,
                                                         "training_iteration": 4})
    assert [point["conditioning"] for point in points[:2]] == ["concat", "concat"]
    assert points[0]["g_lr"] == points[0]["d_lr"] == 2e-4 and points[1]["d_dropout"] == 0.3
    for point in points[2:]:
        assert point["conditioning"] == "projection", point
        outside = {key: point[key] for key, (low, high) in ranges.items() if not low <= point[key] <= high}
        assert not outside, outside
    # TPE's model was fed V0's 2e-4 and still draws within the bounds; not one point twice
    assert len({point["g_lr"] for point in points}) == len(points) - 1  # V1 has V0's rates
    stored = searcher._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    v0 = stored[0]
    assert v0.params["conditioning"] == "concat" and v0.distributions["conditioning"].choices == ("concat", "projection")
    assert v0.params["g_lr"] == 2e-4 and (v0.distributions["g_lr"].low, v0.distributions["g_lr"].high) == (2e-4, 5e-3)


def test_a_choice_table_reads_writes_and_refuses_in_one_line(tmp_path):
    from trainable.errors import ConfigError
    from trainable.space import Choice, domain_from_dict, domain_from_toml

    table = domain_from_toml("conditioning", {"values": ["concat", "projection"], "draw": ["projection"]})
    assert table == Choice(("concat", "projection"), ("projection",)) and table.size() == 1
    assert table.contains("concat") and domain_from_dict(table.to_dict()) == table
    assert domain_from_dict(Choice(("a", "b")).to_dict()).drawn == ("a", "b")
    for raw, says in ((["concat", "projection"], None),
                      ({"values": ["concat"], "draw": ["projection"]}, "not among its values"),
                      ({"values": ["concat", "projection"], "draw": []}, "non-empty list"),
                      ({"values": ["concat", "projection"], "pick": ["concat"]}, "a choice table needs")):
        if says is None:
            assert domain_from_toml("conditioning", raw).draw is None
            continue
        with pytest.raises(ConfigError, match=says) as caught:
            domain_from_toml("conditioning", raw)
        assert "\n" not in str(caught.value)


def test_a_ranges_draw_reads_writes_and_refuses_in_one_line():
    from trainable.errors import ConfigError
    from trainable.space import domain_from_dict, domain_from_toml

    table = domain_from_toml("g_lr", {"low": 2e-4, "high": 5e-3, "draw": [1e-3, 5e-3]})
    assert table == Range(2e-4, 5e-3, draw=(1e-3, 5e-3)) and table.drawn == (1e-3, 5e-3)
    assert table.contains(2e-4) and domain_from_dict(table.to_dict()) == table
    assert (table.distribution().low, table.distribution(drawn=True).low) == (2e-4, 1e-3)
    whole = domain_from_toml("g_lr", {"low": 2e-4, "high": 5e-3})
    assert whole.drawn == (2e-4, 5e-3) and "draw" not in whole.to_dict()  # study.json as before
    for key, raw, says in (("g_lr", {"low": 2e-4, "high": 5e-3, "draw": [1e-4, 5e-3]}, "within"),
                           ("g_lr", {"low": 2e-4, "high": 5e-3, "draw": [3e-3, 1e-3]}, "low below high"),
                           ("g_lr", {"low": 2e-4, "high": 5e-3, "draw": 1e-3}, "draw must be"),
                           ("g_lr", {"low": 2e-4, "high": 5e-3, "draw": [1e-3, True]}, "draw must be"),
                           ("g_lr", {"low": 2e-4, "high": 5e-3, "pick": [1e-3, 5e-3]}, "a range needs"),
                           ("latent_size", {"low": 32, "high": 128, "draw": [64, 128]}, "choice table")):
        with pytest.raises(ConfigError, match=says) as caught:
            domain_from_toml(key, raw)
        assert "\n" not in str(caught.value)


def test_pbt_and_the_space_filling_start_draw_within_a_ranges_draw():
    """PBT's resampling (and PB2's bounds) and the space-filling start take a range's drawn bounds;
    PBT's perturbation is kept within the whole range, which the baselines may sit anywhere in."""
    from study._search import space_filling_design
    from study._stopping import KeepInSpace, _mutation

    spec = load_spec(samples=20, baselines=("V0",))
    design = space_filling_design(spec, 8)
    assert all(1e-3 <= point["g_lr"] <= 5e-3 and 5e-4 <= point["d_lr"] <= 5e-3 for point in design)
    assert max(point["g_lr"] for point in design) - min(point["g_lr"] for point in design) > 2e-3  # spread
    domain = spec.search["g_lr"]
    resample = _mutation(domain)
    assert (resample.lower, resample.upper) == (1e-3, 5e-3)
    assert KeepInSpace({"g_lr": domain})({"g_lr": 1e-4})["g_lr"] == 2e-4


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_draw_of_several_values_is_drawn_among_them_only(tmp_path, sampler):
    """A choice table drawing two of three values: the wrapped sampler's draw where it falls among
    them, else one of them; never the third, which the paper's V0 still takes."""
    study_file = tmp_path / "study.toml"
    study_file.write_text('[study]\nbaselines = ["V0"]\n[search]\n'
                          'd_filters = {values = ["8,16,32", "16,32,64", "32,64,128"], draw = ["8,16,32", "16,32,64"]}\n'
                          'g_lr = {low = 2e-4, high = 5e-3}\n')
    spec = load_spec(study_file, samples=40, sampler=sampler, startup_trials=3)
    searcher, _ = make_searcher(spec, tmp_path / "run")
    drawn = []
    for number in range(24):
        point = searcher.suggest(f"t{number}")
        drawn.append(point["d_filters"])
        # V0 scores best, so TPE's model leans to its D, which the draw leaves out
        searcher.on_trial_complete(f"t{number}", result={SCORE: 1.0 if number == 0 else 20.0 - point["g_lr"] * 1e3,
                                                         "training_iteration": 4})
    assert drawn[0] == "32,64,128" and set(drawn[1:]) == {"8,16,32", "16,32,64"}, drawn


def _run(searcher, trial_id, accuracies, scores=None, **extra):
    """Suggest ``trial_id`` and report it to its end with these accuracies (and scores) by report."""
    from trainable.experiment import COND_ACCURACY

    params = searcher.suggest(trial_id)
    assert isinstance(params, dict)
    results = [{SCORE: (scores or [20.0] * len(accuracies))[step - 1], COND_ACCURACY: accuracy,
                "training_iteration": step, "iteration": 300 * step, **extra}
               for step, accuracy in enumerate(accuracies, 1)]
    for result in results:
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, result=results[-1])
    return params


def test_trials_too_short_for_the_data_are_lengthened_once_and_the_best_goes_on_from_its_end(tmp_path, capsys):
    """No trial worked and the searched trials that ran to their end were still rising: the next trial
    goes on from the end of the one with the highest accuracy, to twice the length, with no Optuna
    trial of its own (its point was told), counting only what it trains; the trials drawn after it
    run twice as long (the shapes' remedy, docs/search.md); a resumed searcher keeps both, and the
    sampler weighs a lengthened trial at the fixed length, as it weighs every other."""
    from trainable.experiment import COND_ACCURACY, CONTINUES

    spec = load_spec(samples=20, baselines=("V0",), sampler="random")
    searcher, _ = make_searcher(spec, tmp_path)
    assert _run(searcher, "v0", [0.1, 0.12, 0.14, 0.16])["iterations"] == 1200  # a baseline: not counted
    StopLedger(tmp_path).record("cut", ASHA, "below the cut", 300)
    assert _run(searcher, "cut", [0.1])["iterations"] == 1200  # stopped early: did not run its iterations
    assert _run(searcher, "a", [0.1, 0.2, 0.3, 0.4])["iterations"] == 1200
    assert "run 2400" not in capsys.readouterr().err
    b = _run(searcher, "b", [0.1, 0.3, 0.2, 0.45])  # two of two rising: too short; b the higher
    assert b["iterations"] == 1200 and searcher.length is None
    told = len(searcher._ot_study.get_trials())
    going_on = searcher.suggest("c")
    assert going_on[CONTINUES] == {"trial": "b", "uri": f"{tmp_path}/trial_b", "iteration": 1200}
    assert {key: going_on[key] for key in spec.search} == {key: b[key] for key in spec.search}
    assert (going_on["iterations"], going_on["collapse_grace"]) == (2400, 1200)  # the verdict's grace in proportion
    assert searcher.length == 2400
    assert "the trials started from now on run 2400; the next goes on from the end of trial_b (accuracy 0.45" \
        in capsys.readouterr().err
    for step, iteration in enumerate((1500, 1800, 2100, 2400), 1):
        result = {SCORE: 10.0, COND_ACCURACY: 0.5, "training_iteration": step, "iteration": iteration}
        searcher.on_trial_result("c", result)
    searcher.on_trial_complete("c", result=result)
    assert len(searcher._ot_study.get_trials()) == told and "c" not in searcher._curves  # b's point, told once
    assert searcher.spent == 1200 + 300 + 1200 * 2 + 1200  # c trained 1200 of its 2400
    scores = [30.0, 25.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0]
    lengthened = _run(searcher, "d", [0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.62], scores)  # a draw, at 2400
    assert lengthened["iterations"] == 2400 and CONTINUES not in lengthened
    assert searcher._ot_study.get_trials()[-1].value == 18.0  # its score at 1200, not 9.0 at 2400
    searcher.save(tmp_path / "searcher.pkl")
    resumed, _ = make_searcher(spec, tmp_path)
    resumed.restore(tmp_path / "searcher.pkl")
    again = resumed.suggest("e")
    assert again["iterations"] == 2400 and CONTINUES not in again  # once
    assert resumed.spent == 1200 + 300 + 1200 * 2 + 1200 + 2400


@pytest.mark.parametrize("case", ["a trial worked", "lengthen off", "two of five rising", "multi-objective",
                                  "one rose within the judge's noise", "the same, the noise not known"])
def test_trials_are_not_lengthened_where_one_worked_or_the_study_says_no_or_most_ended_flat(tmp_path, case):
    """(The last case: lengthened, as the rise is judged without a margin where the reports do not
    say how many samples the judge saw.)"""
    from trainable.experiment import COND_ACCURACY_PER_CLASS

    spec = load_spec(samples=20, baselines=(), sampler="random", lengthen=case != "lengthen off",
                     multi_objective=case == "multi-objective")
    searcher, _ = make_searcher(spec, tmp_path)
    if case == "two of five rising":
        _run(searcher, "c", [0.3, 0.3, 0.3, 0.2])
        _run(searcher, "d", [0.3, 0.4, 0.3, 0.3])
        _run(searcher, "e", [0.1, 0.4, 0.4, 0.4])  # its highest, but not above the one two reports before: flat
    if "noise" in case:  # seen on the shapes: 400 samples, a standard error of 0.033 for the rise
        judged = {} if "not known" in case else {COND_ACCURACY_PER_CLASS: [0.3] * 8,
                                                  "config": {"eval_samples_per_class": 50}}
        _run(searcher, "a", [0.245, 0.3, 0.2575, 0.3225], **judged)
        _run(searcher, "b", [0.158, 0.172, 0.235, 0.282], **judged)
        assert searcher.suggest("z")["iterations"] == (2400 if "not known" in case else 1200)
        return
    _run(searcher, "a", [0.1, 0.5 if case == "a trial worked" else 0.2, 0.3, 0.4])
    _run(searcher, "b", [0.1, 0.2, 0.3, 0.45])
    assert searcher.suggest("z")["iterations"] == 1200 and searcher.length is None


def test_while_the_study_may_still_lengthen_no_trial_is_drawn_ahead_of_a_free_slot(tmp_path, monkeypatch):
    """Tune asks for a trial ahead of the free slots; while no trial has worked and the study may still
    lengthen its trials, the searcher waits for a slot (a trial drawn ahead ran at the old length and
    kept the trial going on from the best one's end waiting); once lengthened, or once a trial worked, it draws
    ahead again."""
    import ray

    from study._session import Resources
    from trainable.experiment import COND_ACCURACY

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}}])
    spec = load_spec(samples=20, baselines=(), sampler="random")
    searcher, _ = make_searcher(spec, tmp_path, trial_resources=Resources(cpus=1, gpus=0))
    assert isinstance(searcher.suggest("a"), dict) and isinstance(searcher.suggest("b"), dict)
    assert searcher.suggest("c") is None  # two slots, both busy
    searcher.on_trial_complete("a", result={SCORE: 20.0, "training_iteration": 1, "iteration": 300})
    assert isinstance(searcher.suggest("c"), dict)
    searcher._length = 2400  # lengthened: nothing left to wait for
    assert isinstance(searcher.suggest("d"), dict)
    worked, _ = make_searcher(spec, tmp_path / "worked", trial_resources=Resources(cpus=1, gpus=0))
    for name in "ab":
        worked.suggest(name)
    worked.on_trial_result("a", {SCORE: 9.0, COND_ACCURACY: 0.2, "training_iteration": 1, "iteration": 300})
    assert worked.suggest("c") is None
    worked.on_trial_result("b", {SCORE: 8.0, COND_ACCURACY: 0.5, "training_iteration": 1, "iteration": 300})
    assert isinstance(worked.suggest("c"), dict)  # a trial worked: the study will not lengthen, nothing to wait for
    worked.save(tmp_path / "worked.pkl")  # a searcher saved before the flag: from its accuracy curves
    state = pickle.loads((tmp_path / "worked.pkl").read_bytes())
    del state["_worked"]
    (tmp_path / "worked.pkl").write_bytes(pickle.dumps(state))
    worked, _ = make_searcher(spec, tmp_path / "worked", trial_resources=Resources(cpus=1, gpus=0))
    worked.restore(tmp_path / "worked.pkl")
    assert isinstance(worked.suggest("d"), dict)
    unplanned, _ = make_searcher(spec, tmp_path / "other")  # no resources given: never waits
    assert all(isinstance(unplanned.suggest(name), dict) for name in "abc")


def test_a_searcher_unpickled_from_an_earlier_version_has_its_state_filled_in(tmp_path):
    """Tune's Tuner pickles the searcher whole and a resumed study unpickles it: one saved by a version
    that lacked some of the state gets it, empty (or, for the worked flag, from its curves)."""
    from trainable.experiment import COND_ACCURACY

    searcher, _ = make_searcher(load_spec(samples=5, baselines=(), sampler="random"), tmp_path)
    searcher.suggest("a")
    searcher.on_trial_result("a", {SCORE: 9.0, COND_ACCURACY: 0.6, "training_iteration": 1, "iteration": 300})
    for key in ("_began", "_samples", "_worked"):
        del searcher.__dict__[key]
    again = pickle.loads(pickle.dumps(searcher))
    assert (again._began, again._samples, again._worked) == ({}, {}, True)
    assert again.spent == 300 and isinstance(again.suggest("b"), dict)
