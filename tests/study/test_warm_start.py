"""Warm start: an earlier study's finished trials reach the new study's sampler, which then draws
from what they taught; a resumed searcher keeps them; bad sources are refused in one line."""

import json

import pytest

from study._search import COLLAPSE_CONSTRAINT, WARM_START, make_searcher
from study._warm_start import warm_start_trials
from study.spec import load_spec
from trainable.experiment import (ASHA, COMPLETED, FID_INTRA, MODE_COLLAPSE, PARAMS_FILE, RESULT_FILE, SCORE,
                                  trial_params, write_stop, write_study)

optuna = pytest.importorskip("optuna")


def _source_study(path, spec, trials):
    """A finished study folder in the real format: ``trials`` = [(params, stop reason, scores per report,
    and optionally conditional accuracies per report: 0.2 at each where not given)]."""
    write_study(path, {"name": path.name, "storage": str(path.parent), "storage_uri": str(path),
                       "experiment_dir": str(path), "data": "builtin:synthetic", "judge_steps": 1500,
                       "spec": spec.to_dict(), "baselines": {}})
    base = trial_params(spec.base_config())
    for number, (params, reason, scores, *accuracies) in enumerate(trials):
        accuracies = accuracies[0] if accuracies else [0.2] * len(scores)
        trial_dir = path / f"trial_{number:05d}"
        trial_dir.mkdir(parents=True)
        (trial_dir / PARAMS_FILE).write_text(json.dumps({**base, **params}))
        rows = [{"iteration": 300 * (index + 1), "training_iteration": index + 1, FID_INTRA: score, SCORE: score,
                 "cond_accuracy": accuracy} for index, (score, accuracy) in enumerate(zip(scores, accuracies))]
        (trial_dir / RESULT_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
        write_stop(trial_dir, {"trial_id": f"{number:05d}", "stop_reason": reason, "iteration": rows[-1]["iteration"],
                               "evidence": "", "score": scores[-1]})


def _spec(tmp_path, extra=""):
    path = tmp_path / "study.toml"
    path.write_text('[study]\nbaselines = []\nstartup_trials = 4\n' + extra +
                    '[search]\nconditioning = ["concat", "projection"]\ng_lr = {low = 2e-4, high = 5e-3, log = true}\n')
    return load_spec(path, samples=20)


def _projection_wins(spec, count=12):
    """Earlier trials where the projection discriminator scored far better than concat."""
    trials = []
    for number in range(count):
        projection = number % 2 == 0
        lr = 2e-4 * (1.3 ** number)
        score = 5.0 + number * 0.1 if projection else 40.0 + number
        reason = COMPLETED if projection else ASHA
        trials.append(({"conditioning": "projection" if projection else "concat", "g_lr": lr}, reason,
                       [score * 2, score] if reason == COMPLETED else [score * 2]))
    return trials


def test_the_sampler_sees_the_earlier_trials_and_draws_from_what_they_taught(tmp_path):
    spec = _spec(tmp_path)
    _source_study(tmp_path / "earlier", spec, _projection_wins(spec))
    warm = warm_start_trials(tmp_path / "earlier", spec)
    assert len(warm.trials) == 12 and warm.left_out == {}
    # The finished ones with their scores; those ASHA stopped at their first report with that score
    # projected to a whole trial by the earlier study's curves (its completed trials halved theirs).
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in warm.trials)
    assert warm.trials[1].value == pytest.approx((40.0 + 1) * 2 * 0.5) and warm.trials[0].value == 5.0
    assert all(trial.user_attrs[WARM_START] == str(tmp_path / "earlier") for trial in warm.trials)

    searcher, _ = make_searcher(spec, tmp_path / "new", warm.trials)
    seen = searcher._ot_study.get_trials(deepcopy=False)
    assert len(seen) == 12 and all(WARM_START in trial.user_attrs for trial in seen)
    drawn = [searcher.suggest(f"t{number}") for number in range(8)]
    # Past its 4 startup draws already (the 12 count), TPE draws where projection won.
    assert sum(point["conditioning"] == "projection" for point in drawn) >= 7
    cold, _ = make_searcher(spec, tmp_path / "cold")
    cold_drawn = []
    for number in range(8):  # each finished at once with the same score: nothing to learn from
        cold_drawn.append(cold.suggest(f"t{number}"))
        cold.on_trial_complete(f"t{number}", result={SCORE: 10.0, "training_iteration": 1})
    assert sum(point["conditioning"] == "projection" for point in cold_drawn) < 7


def test_a_warm_start_from_other_data_says_its_scores_are_on_that_sets_scale(tmp_path):
    spec = _spec(tmp_path)
    _source_study(tmp_path / "earlier", spec, _projection_wins(spec, 4))  # ran on the built-in set
    warm = warm_start_trials(tmp_path / "earlier", spec)
    assert warm.data == "builtin:synthetic"
    same = warm.describe("builtin:synthetic")
    assert same.startswith("warm start: 4 finished trials") and "\n" not in same
    other = warm.describe(str(tmp_path / "shapes.npz")).splitlines()
    assert len(other) == 2 and other[0] == same
    assert other[1].startswith("note: that study ran on other data (builtin:synthetic): its scores are on that set's scale")


def test_a_trial_that_worked_on_the_same_data_within_the_length_keeps_the_study_from_lengthening(tmp_path):
    """Where an earlier study of the same data had a trial reach accuracy 0.5 within the new study's trial
    length, the length suffices: the new study neither lengthens its trials nor holds back its draws for
    it. Not where that study ran on other data, nor where its trial worked only past this length."""
    spec = _spec(tmp_path)
    assert spec.base_config().iterations == 1200
    worked_at_600 = ({"conditioning": "projection", "g_lr": 2e-3}, COMPLETED, [40.0, 20.0, 10.0, 8.0], [0.3, 0.55, 0.5, 0.6])
    worked_at_2400 = ({"conditioning": "projection", "g_lr": 2e-3, "iterations": 2400}, COMPLETED,
                      [40.0, 30.0, 25.0, 24.0, 15.0, 9.0, 5.0, 4.0], [0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.48, 0.52])
    flat = ({"conditioning": "concat", "g_lr": 1e-3}, COMPLETED, [40.0, 30.0, 25.0, 20.0])
    _source_study(tmp_path / "worked", spec, [flat, worked_at_600])
    _source_study(tmp_path / "late", spec, [flat, worked_at_2400])
    for source, data, worked in (("worked", "builtin:synthetic", True), ("worked", str(tmp_path / "shapes.npz"), False),
                                 ("worked", "", False), ("late", "builtin:synthetic", False)):
        warm = warm_start_trials(tmp_path / source, spec, data)
        searcher, _ = make_searcher(spec, tmp_path / f"new-{source}-{bool(data)}", warm.trials)
        assert searcher._worked is worked and searcher._may_lengthen() is not worked, (source, data)
        assert ("1 of them reached conditional accuracy 0.5 on this data" in warm.describe(data)) is worked
    # A resumed searcher keeps it (saved with the rest of its state).
    warm = warm_start_trials(tmp_path / "worked", spec, "builtin:synthetic")
    searcher, _ = make_searcher(spec, tmp_path / "saved", warm.trials)
    searcher.save(str(tmp_path / "searcher.pkl"))
    resumed, _ = make_searcher(spec, tmp_path / "saved")
    assert resumed._worked is False
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert resumed._worked is True and not resumed._may_lengthen()


def test_a_collapsed_earlier_trial_is_infeasible_and_unfinished_ones_are_left_out(tmp_path):
    spec = _spec(tmp_path)
    trials = [({"conditioning": "projection", "g_lr": 1e-3}, MODE_COLLAPSE, [3.0, 2.0]),
              ({"conditioning": "concat", "g_lr": 1e-3}, COMPLETED, [30.0, 20.0]),
              ({"conditioning": "concat", "g_lr": 2e-3}, "error", [30.0]),
              ({"conditioning": "concat", "g_lr": 1e-2}, COMPLETED, [30.0, 20.0])]  # outside [2e-4, 5e-3]
    _source_study(tmp_path / "earlier", spec, trials)
    warm = warm_start_trials(tmp_path / "earlier", spec)
    assert [trial.constraints for trial in warm.trials] == [{COLLAPSE_CONSTRAINT: 1.0}, {COLLAPSE_CONSTRAINT: -1.0}]
    assert warm.trials[0].state == optuna.trial.TrialState.PRUNED
    assert warm.trials[0].intermediate_values == {1: 3.0, 2: 2.0}
    assert warm.left_out == {"unfinished or failed": 1, "outside this search space": 1}
    assert "2 finished trials" in warm.describe() and "1 outside this search space" in warm.describe()


def test_a_trial_whose_gan_differs_in_a_field_this_study_fixes_is_left_out(tmp_path):
    spec = _spec(tmp_path)
    trials = _projection_wins(spec, 2)
    trials[1] = ({**trials[1][0], "loss": "hinge"}, *trials[1][1:])
    _source_study(tmp_path / "earlier", spec, trials)
    warm = warm_start_trials(tmp_path / "earlier", spec)
    assert len(warm.trials) == 1 and warm.left_out == {"with loss other than this study fixes": 1}


def test_a_resumed_searcher_keeps_the_earlier_trials_and_draws_as_if_never_stopped(tmp_path):
    spec = _spec(tmp_path)
    _source_study(tmp_path / "earlier", spec, _projection_wins(spec))
    warm = warm_start_trials(tmp_path / "earlier", spec)
    through, _ = make_searcher(spec, tmp_path / "a", warm.trials)
    stopped, _ = make_searcher(spec, tmp_path / "b", warm.trials)
    for number in range(3):
        for searcher in (through, stopped):
            searcher.suggest(f"t{number}")
            searcher.on_trial_complete(f"t{number}", result={SCORE: 10.0 + number, "training_iteration": 1})
    stopped.save(tmp_path / "searcher.pkl")
    resumed, _ = make_searcher(spec, tmp_path / "c")  # Tune restores into a searcher built without them
    resumed.restore(tmp_path / "searcher.pkl")
    assert sum(WARM_START in trial.user_attrs for trial in resumed._ot_study.get_trials()) == 12
    assert [resumed.suggest(f"r{number}") for number in range(3)] == [through.suggest(f"r{number}")
                                                                       for number in range(3)]


@pytest.mark.parametrize("source, message", [
    ("nowhere", "--warm-start nowhere: no study 'nowhere' in"),
    ("SELF", "that is this study; name an earlier one"),
    ("OUTSIDE", "no finished trial there is a point of this study's space (1 outside this search space; "
                "e.g. trial_00000: g_lr=0.01)"),
])
def test_a_bad_warm_start_is_refused_in_one_line_with_nothing_written(tmp_path, run_cli, source, message):
    spec = _spec(tmp_path)
    storage = tmp_path / "studies"
    _source_study(storage / "outside", spec, [({"conditioning": "concat", "g_lr": 1e-2}, COMPLETED, [9.0])])
    source = {"SELF": "new", "OUTSIDE": "outside"}.get(source, source)
    if source == "new":
        _source_study(storage / "new", spec, _projection_wins(spec, 2))
    before = sorted(p.name for p in storage.iterdir())
    code, out, err = run_cli("study", "run", "--config", tmp_path / "study.toml", "--name", "new", "--storage", storage,
                             "--warm-start", source)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in storage.iterdir()) == before


def test_trials_the_earlier_study_lengthened_are_told_as_its_searcher_told_them(tmp_path):
    """A trial the earlier study lengthened ([study] lengthen) is told its score at that study's
    fixed length, and a trial ASHA stopped is projected to the fixed length by the curves there (the
    lengthened trial's included: 20/40 and 24/40, median 0.55), not to the lengthened one's end."""
    spec = _spec(tmp_path)
    assert spec.base_config().iterations == 1200
    trials = [({"conditioning": "projection", "g_lr": 1e-3}, COMPLETED, [40.0, 30.0, 25.0, 20.0]),
              ({"conditioning": "projection", "g_lr": 2e-3, "iterations": 2400}, COMPLETED,
               [40.0, 30.0, 25.0, 24.0, 15.0, 9.0, 5.0, 4.0]),
              ({"conditioning": "concat", "g_lr": 1e-3}, ASHA, [50.0]),
              # the first trial gone on from its end: the same point, told once (as its searcher told it)
              ({"conditioning": "projection", "g_lr": 1e-3, "iterations": 2400,
                "continues": {"trial": "00000", "uri": str(tmp_path / "earlier" / "trial_00000"), "iteration": 1200}},
               COMPLETED, [15.0, 12.0, 10.0, 8.0])]
    _source_study(tmp_path / "earlier", spec, trials)
    warm = warm_start_trials(tmp_path / "earlier", spec)
    assert [trial.value for trial in warm.trials] == [20.0, 24.0, pytest.approx(50.0 * 0.55)]
    assert warm.left_out == {"going on from another trial's end": 1}


def test_a_seed_rerun_of_lengthened_trials_runs_them_as_long_as_they_ran(tmp_path):
    """`analyze replay` of a study that lengthened its best trials ([study] lengthen) re-runs them at
    that length, the verdict's grace in proportion, all alike; one that lengthened none, at its own."""
    from analysis import read_experiment
    from study.replay import replay_spec

    spec = _spec(tmp_path)
    trials = [({"conditioning": "projection", "g_lr": 1e-3}, COMPLETED, [40.0, 30.0, 25.0, 20.0]),
              ({"conditioning": "projection", "g_lr": 2e-3, "iterations": 2400}, COMPLETED,
               [40.0, 30.0, 25.0, 24.0, 15.0, 9.0, 5.0, 4.0])]
    _source_study(tmp_path / "longer", spec, trials)
    replay, _ = replay_spec(read_experiment(tmp_path / "longer"), top=2, seeds=1)
    base = spec.base_config()
    assert (replay.base_config().iterations, replay.base_config().collapse_grace) == (2400, 2 * base.collapse_grace)
    _source_study(tmp_path / "fixed", spec, trials[:1])
    replay, _ = replay_spec(read_experiment(tmp_path / "fixed"), top=1, seeds=1)
    assert (replay.base_config().iterations, replay.base_config().collapse_grace) == (1200, base.collapse_grace)
