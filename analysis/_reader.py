"""Read an experiment folder from disk, with no Ray running: a whole study or one local trial.

Tolerates a study still running or interrupted: a trial without results, a result.json cut
mid-line; what it skips it says in ``Experiment.skipped``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from trainable.config import param_value

STUDY_FILE = "study.json"
STOP_FILE = "stop_reason.json"
HEALTHY = ("completed", "asha", "running", "interrupted")


def finite(value: Any) -> float | None:
    """A number a figure can show, or None (missing, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclasses.dataclass
class TrialRecord:
    name: str
    path: Path
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    stop_reason: str  # completed, asha, mode-collapse, loss-collapse, error, interrupted, running
    evidence: str = ""
    baseline: str | None = None  # V0 / V1 / V2 when the trial is one of the paper's points

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    @property
    def score(self) -> float | None:
        return finite(self.last.get("fid_intra"))

    @property
    def collapsed(self) -> bool:
        return self.stop_reason in ("mode-collapse", "loss-collapse")


@dataclasses.dataclass
class Experiment:
    path: Path
    trials: list[TrialRecord]
    study: dict[str, Any] | None  # study.json for a study, None for a single local trial
    skipped: list[str]


def _read_rows(path: Path, skipped: list[str]) -> list[dict[str, Any]]:
    rows = []
    if not path.exists():
        return rows
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            skipped.append(f"{path} line {number}: incomplete JSON (the trial was still writing or was killed)")
    return rows


def lineage(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of one unbroken training history.

    result.json is append-only: when a trial restarts from a checkpoint older than its last
    report (a retried worker, a resumed driver), the reports after that checkpoint come again.
    A row whose iteration does not advance marks such a restart; the abandoned rows it
    replaces are dropped, so no report is counted twice.
    """
    kept: list[dict[str, Any]] = []
    for row in rows:
        while kept and kept[-1].get("iteration", 0) >= row.get("iteration", 0):
            kept.pop()
        kept.append(row)
    return kept


def _matches(params: dict[str, Any], point: dict[str, Any]) -> bool:
    return all(key in params and params[key] == value for key, value in point.items())


def _stop_reason(trial_dir: Path, rows: list[dict]) -> tuple[str, str]:
    """From the study's stop_reason.json, else the local trial's last row, else Tune's error file."""
    stop_file = trial_dir / STOP_FILE
    if stop_file.exists():
        try:
            record = json.loads(stop_file.read_text())
            return record["stop_reason"], record.get("evidence", "")
        except (json.JSONDecodeError, KeyError):
            pass
    last = rows[-1] if rows else {}
    if last.get("stop_reason"):
        return last["stop_reason"], last.get("verdict_evidence", "")
    error_file = trial_dir / "error.txt"
    if error_file.exists():
        lines = error_file.read_text().strip().splitlines()
        return "error", lines[-1] if lines else ""
    return "running", ""


def read_trial(trial_dir: Path, skipped: list[str], baselines: dict[str, dict] | None = None,
               in_study: bool = False) -> TrialRecord | None:
    params_file = trial_dir / "params.json"
    if not params_file.exists():
        skipped.append(f"{trial_dir}: no params.json (not a trial folder, or not started)")
        return None
    try:
        params = json.loads(params_file.read_text())
    except json.JSONDecodeError:
        skipped.append(f"{params_file}: unreadable")
        return None
    # A local trial writes its config as is (lists, null); a study writes search values ("a,b,c",
    # "off"). Read both the study's way, so they compare and display alike.
    params = {key: param_value(value) for key, value in params.items()}
    rows = lineage(_read_rows(trial_dir / "result.json", skipped))
    for row in rows:
        row.pop("config", None)
    reason, evidence = _stop_reason(trial_dir, rows)
    baseline = params.get("preset") if not in_study else None
    for name, point in (baselines or {}).items():
        if _matches(params, point):
            baseline = name
            break
    return TrialRecord(trial_dir.name, trial_dir, params, rows, reason, evidence, baseline)


def read_experiment(path: str | Path) -> Experiment:
    """A study folder (study.json + trial folders) or a single trial folder (params.json)."""
    path = Path(path)
    skipped: list[str] = []
    if (path / "params.json").exists():
        trial = read_trial(path, skipped)
        return Experiment(path, [trial] if trial else [], None, skipped)
    study = None
    if (path / STUDY_FILE).exists():
        study = json.loads((path / STUDY_FILE).read_text())
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such experiment folder")
    baselines = (study or {}).get("baselines", {})
    trials = []
    for trial_dir in sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith("trial_")):
        trial = read_trial(trial_dir, skipped, baselines, in_study=study is not None)
        if trial is not None:
            trials.append(trial)
    return Experiment(path, trials, study, skipped)


def rank(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Healthy trials by score (lower first), then collapsed and errored ones, whatever their score."""
    def key(trial: TrialRecord):
        unhealthy = trial.collapsed or trial.stop_reason == "error" or trial.score is None
        return (unhealthy, trial.score if trial.score is not None else math.inf, trial.name)
    return sorted(trials, key=key)
