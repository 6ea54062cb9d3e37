"""The Optuna searcher, made to agree with why trials ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from study._stopping import StopLedger
from study.spec import StudySpec, define_by_run
from trainable.experiment import COLLAPSES, DIVERSITY_MEAN, EARLY, SCORE

# An Optuna constraint (Trial.set_constraint; > 0 is infeasible): a collapse is no bad score to
# interpolate between but a region to leave, and TPE puts infeasible trials in its "bad" group
# whatever their score (Optuna's constrained TPE).
COLLAPSE_CONSTRAINT = "collapse"


class StudySearcher(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials stopped early (ASHA or collapse), and
    marks collapsed ones infeasible.

    Ray reports such trials to Optuna as COMPLETE with their last score, which would let
    the sampler learn from a truncated or collapsed run as if it had finished.
    """

    def __init__(self, *args, experiment_dir: str | Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._experiment_dir = str(experiment_dir)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        entry = StopLedger(self._experiment_dir).get(trial_id)
        if not error and entry is not None and entry["stop_reason"] in EARLY:
            result = None  # OptunaSearch records a trial without a value and without an error as PRUNED
        if trial_id in self._ot_trials:
            collapsed = entry is not None and entry["stop_reason"] in COLLAPSES
            self._ot_trials[trial_id].set_constraint(COLLAPSE_CONSTRAINT, 1.0 if collapsed else -1.0)
        super().on_trial_complete(trial_id, result=result, error=error)


def make_searcher(spec: StudySpec, experiment_dir: str | Path) -> StudySearcher:
    """TPE (or random) over the study's define-by-run space, the baselines and given points first;
    with ``multi_objective``, the score is minimised and the mean diversity maximised."""
    from optuna.samplers import RandomSampler, TPESampler

    metric: Any = [SCORE, DIVERSITY_MEAN] if spec.multi_objective else SCORE
    mode: Any = ["min", "max"] if spec.multi_objective else "min"
    sampler = (TPESampler if spec.sampler == "tpe" else RandomSampler)(seed=spec.seed)
    return StudySearcher(space=define_by_run(spec), metric=metric, mode=mode,
                         points_to_evaluate=spec.start_points() or None, sampler=sampler,
                         experiment_dir=experiment_dir)
