"""The Optuna searcher, made to agree with why trials ended."""

from __future__ import annotations

from pathlib import Path

from ray.tune.search.optuna import OptunaSearch

from study._stopping import StopLedger
from trainable.experiment import EARLY


class StudySearcher(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials stopped early (ASHA or collapse).

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
        super().on_trial_complete(trial_id, result=result, error=error)
