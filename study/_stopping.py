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
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from analysis._reader import lineage
from trainable.config import TrainConfig
from trainable.trial_dir import META_KEYS
from trainable.verdict import verdict_for

COMPLETED, ASHA, ERROR = "completed", "asha", "error"
EARLY = ("asha", "mode-collapse", "loss-collapse")
LEDGER_FILE = "stop_reasons.jsonl"


class StopLedger:
    def __init__(self, experiment_dir: str | Path) -> None:
        self.path = Path(experiment_dir) / LEDGER_FILE

    def entries(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        entries = {}
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
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


def _config_of(result: dict) -> TrainConfig:
    config = result.get("config", {})
    return TrainConfig.from_dict({k: v for k, v in config.items() if k not in META_KEYS})


class CollapseStopper(Stopper):
    """Ends a trial on mode or loss collapse, judged by the trainer's own verdict function."""

    def __init__(self, experiment_dir: str | Path) -> None:
        self.ledger = StopLedger(experiment_dir)
        self.histories: dict[str, list[dict]] = {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        # After a restart from an older checkpoint, the reports after it come again: one lineage.
        history = lineage([*self.histories.get(trial_id, []), {k: v for k, v in result.items() if k != "config"}])
        self.histories[trial_id] = history
        verdict = verdict_for(history, _config_of(result))
        if verdict.collapsed:
            self.ledger.record(trial_id, verdict.kind, verdict.evidence, result["iteration"])
            return True
        return False

    def stop_all(self) -> bool:
        return False


class RecordingASHA(ASHAScheduler):
    """ASHA that writes each of its stop decisions into the ledger."""

    def __init__(self, experiment_dir: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = StopLedger(experiment_dir)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        finished = result.get("stop_reason") == "completed" or result.get("training_iteration", 0) >= self._max_t
        if decision == TrialScheduler.STOP and not finished:
            self.ledger.record(trial.trial_id, ASHA, f"below the ASHA cut at training_iteration "
                                                     f"{result.get('training_iteration')} (score {result.get('score'):.4g})",
                               result.get("iteration"))
        return decision
