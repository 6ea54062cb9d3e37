"""The searcher: collapsed trials reach Optuna as PRUNED and infeasible, so TPE leaves their region."""

import pytest

from study._search import make_searcher
from study._stopping import StopLedger
from study.spec import load_spec
from trainable.experiment import ASHA, LOSS_COLLAPSE, SCORE


def test_collapsed_trials_are_infeasible_and_asha_stops_are_not(tmp_path):
    optuna = pytest.importorskip("optuna")
    spec = load_spec(samples=6)
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
    assert a.state == b.state == optuna.trial.TrialState.PRUNED and c.state == optuna.trial.TrialState.COMPLETE
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
    spec = load_spec(_study(tmp_path, '[study]\nbaselines = ["V0"]\n[search]\nlatent_size = [80, 100]\n'
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
