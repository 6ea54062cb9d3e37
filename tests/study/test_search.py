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
