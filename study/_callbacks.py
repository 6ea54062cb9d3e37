"""Driver-side bookkeeping when a trial ends: its stop reason, and the Optuna journal mirror.

The searcher's own Optuna study lives in memory and is checkpointed by Tune with the rest of
the experiment, which is what lets a killed driver resume. For optuna-dashboard and for
anyone who wants the study in Optuna's own terms, every finished trial is also written to a
journal file (``optuna.log``) with the state Tune agrees on: COMPLETE, PRUNED or FAIL.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune import Callback

from study._stopping import StopLedger
from study.spec import StudySpec
from trainable.experiment import (COMPLETED, CONFIG_CHANGE, DIVERSITY_MEAN, EARLY, ERROR, JOURNAL_FILE, SCORE,
                                  write_stop)
from trainable.tune_adapter import PENALTY


def journal_storage(experiment_dir: str | Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(Path(experiment_dir) / JOURNAL_FILE)))


class StudyCallback(Callback):
    def __init__(self, experiment_dir: str | Path, spec: StudySpec, study_name: str) -> None:
        self.experiment_dir = str(experiment_dir)
        self.spec = spec
        self.study_name = study_name
        self.scores: dict[str, dict[int, float]] = {}
        self.changes: dict[str, list[dict]] = {}  # PBT: each trial's config changes, as its reports said

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        self.scores.setdefault(trial.trial_id, {})[int(result["training_iteration"])] = float(result[SCORE])
        if result.get(CONFIG_CHANGE):
            self.changes.setdefault(trial.trial_id, []).append(result[CONFIG_CHANGE])

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._finish(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._finish(trial, error=str(getattr(trial, "error_message", None) or "the trial raised"))

    def _finish(self, trial, error: str | None) -> None:
        ledger = StopLedger(self.experiment_dir)
        if error is not None:
            ledger.record(trial.trial_id, ERROR, error.strip().splitlines()[-1][:2000] if error.strip() else "")
        entry = ledger.get(trial.trial_id) or {"stop_reason": COMPLETED, "evidence": "", "iteration": None}
        last = trial.last_result or {}
        record = {"trial_id": trial.trial_id, "stop_reason": entry["stop_reason"], "evidence": entry["evidence"],
                  "iteration": last.get("iteration"), "score": last.get(SCORE)}
        trial_dir = Path(trial.local_path) if getattr(trial, "local_path", None) else None
        if trial_dir is not None and trial_dir.exists():
            write_stop(trial_dir, record)
        self._mirror(trial, record)

    def _mirror(self, trial, record: dict) -> None:
        storage = journal_storage(self.experiment_dir)
        directions = ["minimize", "maximize"] if self.spec.multi_objective else ["minimize"]
        study = optuna.create_study(storage=storage, study_name=self.study_name, directions=directions,
                                    load_if_exists=True)
        if any(t.user_attrs.get("tune_trial_id") == trial.trial_id for t in study.get_trials(deepcopy=False)):
            return  # already mirrored (a resumed driver sees completions again)
        params = {key: trial.config[key] for key in self.spec.search if key in trial.config}
        reason = record["stop_reason"]
        state = TrialState.FAIL if reason == ERROR else TrialState.PRUNED if reason in EARLY else TrialState.COMPLETE
        values = None
        last = trial.last_result or {}
        if state == TrialState.COMPLETE:
            values = [float(last.get(SCORE, PENALTY))]
            if self.spec.multi_objective:
                diversity = last.get(DIVERSITY_MEAN)
                values.append(float(diversity) if isinstance(diversity, (int, float)) and math.isfinite(diversity) else 0.0)
        intermediate = self.scores.get(trial.trial_id, {})
        frozen = optuna.trial.create_trial(
            params=params, distributions={k: v for k, v in self.spec.distributions().items() if k in params},
            values=values, state=state, intermediate_values=intermediate if not self.spec.multi_objective else {},
            user_attrs={"tune_trial_id": trial.trial_id, "stop_reason": reason, "evidence": record["evidence"],
                        "iteration": record["iteration"],
                        **({"config_changes": self.changes[trial.trial_id]} if trial.trial_id in self.changes else {})})
        study.add_trial(frozen)
