"""Why trials end: a ledger on disk, the collapse stopper, and an ASHA that records its stops.

Every driver-side component (stopper, scheduler, searcher, callback) reads and writes the same
JSON-lines ledger in the experiment folder, so after a killed driver is resumed they still
agree on why each trial ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune import Stopper
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from study.spec import StudySpec
from trainable.experiment import ASHA, COMPLETED, LEDGER_FILE, NONE, SCORE, matches_point, read_json_lines


class StopLedger:
    def __init__(self, experiment_dir: str | Path) -> None:
        self.path = Path(experiment_dir) / LEDGER_FILE

    def entries(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for entry in read_json_lines(self.path):
            entries.setdefault(entry["trial_id"], entry)  # the first decision stands
        return entries

    def get(self, trial_id: str) -> dict[str, Any] | None:
        return self.entries().get(trial_id)

    def record(self, trial_id: str, reason: str, evidence: str = "", iteration: int | None = None) -> None:
        if self.get(trial_id) is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"trial_id": trial_id, "stop_reason": reason, "evidence": evidence,
                                     "iteration": iteration}) + "\n")


class CollapseStopper(Stopper):
    """Ends a trial on mode or loss collapse.

    The trainable's loop already judged each report with the trainer's own verdict function
    (over the trial's history, restored with its checkpoint), and the row carries that
    verdict: the stopper acts on it, so a trial ends for the same reason wherever it runs.
    """

    def __init__(self, experiment_dir: str | Path) -> None:
        self.ledger = StopLedger(experiment_dir)

    def __call__(self, trial_id: str, result: dict) -> bool:
        verdict = result.get("verdict", NONE)
        if verdict == NONE:
            return False
        self.ledger.record(trial_id, verdict, result.get("verdict_evidence", ""), result["iteration"])
        return True

    def stop_all(self) -> bool:
        return False


class RecordingASHA(ASHAScheduler):
    """ASHA that writes each of its stop decisions into the ledger. The baselines' points (the
    paper's V0/V1/V2, the reference recipe) are never stopped: they are the yardstick every trial
    is compared with at the same budget. Their results still set ASHA's cut-offs."""

    def __init__(self, experiment_dir: str | Path, *, protected: tuple[dict[str, Any], ...] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = StopLedger(experiment_dir)
        self.protected = protected

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and any(matches_point(trial.config, point) for point in self.protected):
            return TrialScheduler.CONTINUE
        finished = result.get("stop_reason") == COMPLETED or result.get("training_iteration", 0) >= self._max_t
        if decision == TrialScheduler.STOP and not finished:
            self.ledger.record(trial.trial_id, ASHA, f"below the ASHA cut at training_iteration "
                                                     f"{result.get('training_iteration')} (score {result.get('score'):.4g})",
                               result.get("iteration"))
        return decision


def make_scheduler(spec: StudySpec, experiment_dir: str | Path) -> TrialScheduler:
    """ASHA over the evaluations (``training_iteration``), or no early stopping at all."""
    if not spec.early_stopping:
        return FIFOScheduler()
    evaluations = spec.evaluations
    return RecordingASHA(experiment_dir, protected=tuple(spec.baseline_points()),
                         time_attr="training_iteration", metric=SCORE, mode="min",
                         max_t=evaluations, grace_period=min(spec.grace_period, evaluations),
                         reduction_factor=spec.reduction_factor)


def make_stopper(spec: StudySpec, experiment_dir: str | Path) -> Stopper | None:
    return CollapseStopper(experiment_dir) if spec.early_stopping else None
