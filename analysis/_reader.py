"""Read an experiment folder from disk, with no Ray running: a whole study or one local trial.

Tolerates a study still running or interrupted: a trial without results, a result.json cut
mid-line; what it skips it says in ``Experiment.skipped``. The folder's format (file names,
stop reasons, metric keys, the result.json reader) is trainable/experiment.py's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from trainable.config import PRESETS, TrainConfig, param_value
from trainable.errors import UserError
from trainable.experiment import (COLLAPSES, CONFIG_CHANGE, CONTINUES, ERROR, FID_INTRA, FID_PER_CLASS, PARAMS_FILE,
                                  TRIAL_PREFIX, StudyRecord, matches_point, metric_label, preset_changes, read_results,
                                  read_starts, read_stop_reason, read_study, trial_dir_name)
from trainable.space import Domain, domain_from_dict
from trainable.verdict import verdict_window


_DEFAULTS = TrainConfig()  # the collapse verdict's window where a trial's params do not say


def finite(value: Any) -> float | None:
    """A number a figure can show, or None (missing, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def study_metric(study: StudyRecord | None) -> str:
    """The report key a study ranks its trials on (its study file's metric); FD-intra for a trial."""
    return ((study or {}).get("spec") or {}).get("metric") or FID_INTRA


@dataclasses.dataclass
class TrialRecord:
    name: str
    path: Path
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    stop_reason: str  # one of trainable.experiment.STOP_REASONS
    evidence: str = ""
    baseline: str | None = None  # V0 / V1 / V2 when the trial is one of the paper's points
    metric: str = FID_INTRA  # the study's metric (study.json); a local trial's is FD-intra

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    @property
    def continues(self) -> str | None:
        """The folder name of the trial of its study this one went on from at its end ([study]
        lengthen; its point is that trial's), else None."""
        source = self.params.get(CONTINUES)
        return trial_dir_name(source["trial"]) if isinstance(source, dict) and isinstance(source.get("trial"), str) else None

    @property
    def score(self) -> float | None:
        """The trial's last value of the study's metric: what it is ranked on."""
        return finite(self.last.get(self.metric))

    @property
    def class_count(self) -> int | None:
        """Classes it was trained on, from its per-class scores (None before its first report)."""
        return next((len(row[FID_PER_CLASS]) for row in self.rows if isinstance(row.get(FID_PER_CLASS), list)), None)

    @property
    def config_changes(self) -> list[dict[str, Any]]:
        """Its config's changes mid-training (PBT, a replayed schedule), each as the first report
        after it said: {"iteration", "from_trial", "changes": {field: [old, new]}}."""
        return [row[CONFIG_CHANGE] for row in self.rows if isinstance(row.get(CONFIG_CHANGE), dict)]

    @property
    def collapsed(self) -> bool:
        return self.stop_reason in COLLAPSES

    @property
    def healthy(self) -> bool:
        """Neither collapsed nor errored, and with a score: a trial that may rank as the best."""
        return not self.collapsed and self.stop_reason != ERROR and self.score is not None

    @property
    def judged(self) -> bool:
        """Whether the collapse verdict had its whole window: collapse_patience reports at or past
        collapse_grace (trainable/verdict.py). A trial stopped before that (ASHA cuts most at their
        first evaluations) was never judged: it is not known to be healthy."""
        grace, patience = (self.params.get(key, getattr(_DEFAULTS, key))
                           for key in ("collapse_grace", "collapse_patience"))
        if not isinstance(grace, int) or not isinstance(patience, int):
            return False
        return verdict_window(self.rows, grace=grace, patience=patience) is not None


@dataclasses.dataclass
class Experiment:
    path: Path
    trials: list[TrialRecord]
    study: StudyRecord | None  # study.json for a study, None for a single local trial
    skipped: list[str]

    @property
    def metric(self) -> str:
        """The report key trials are ranked on: the study file's metric (FD-intra by default)."""
        return study_metric(self.study)

    @property
    def metric_label(self) -> str:
        return metric_label(self.metric)

    @property
    def class_names(self) -> list[str] | None:
        """The data set's class names, label 0 first, as the study recorded them (None: a single
        trial, or a study started before studies recorded them)."""
        names = (self.study or {}).get("classes")
        return [str(name) for name in names] if isinstance(names, list) and names else None

    @property
    def class_count(self) -> int | None:
        """Classes its trials were trained on (None before any trial reported, where the study did
        not record its data set's)."""
        if self.class_names:
            return len(self.class_names)
        return next((count for count in (trial.class_count for trial in self.trials) if count is not None), None)

    @property
    def search(self) -> dict[str, Domain]:
        """The study's search space in the study file's order; empty for a single trial."""
        raw = ((self.study or {}).get("spec") or {}).get("search") or {}
        return {key: domain_from_dict(domain) for key, domain in raw.items()}


def read_trial(trial_dir: Path, skipped: list[str], baselines: dict[str, dict] | None = None,
               in_study: bool = False, metric: str = FID_INTRA) -> TrialRecord | None:
    params_file = trial_dir / PARAMS_FILE
    if not params_file.exists():
        skipped.append(f"{trial_dir}: no {PARAMS_FILE} (not a trial folder, or not started)")
        return None
    try:
        params = json.loads(params_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        params = None
    if not isinstance(params, dict):
        skipped.append(f"{params_file}: unreadable")
        return None
    # Both trials write the study's form (trainable.experiment.trial_params); a local trial written
    # before that holds its config as is (lists, null): read every folder the study's way.
    params = {key: param_value(value) for key, value in params.items()}
    rows = read_results(trial_dir, skipped)
    reason, evidence = read_stop_reason(trial_dir, rows)
    # A local trial started from a preset is that preset only while its GAN is the preset's.
    baseline = params.get("preset") if not in_study and params.get("preset") in PRESETS else None
    if baseline and preset_changes(params, baseline):
        baseline = None
    for name, point in (baselines or {}).items():
        if matches_point(params, point):
            baseline = name
            break
    return TrialRecord(trial_dir.name, trial_dir, params, rows, reason, evidence, baseline, metric)


def read_experiment(path: str | Path) -> Experiment:
    """A study folder (study.json + trial folders) or a single trial folder (params.json)."""
    path = Path(path)
    skipped: list[str] = []
    if (path / PARAMS_FILE).exists():
        trial = read_trial(path, skipped)
        return Experiment(path, [trial] if trial else [], None, skipped)
    study = read_study(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such folder (give a study folder or a trial folder)")
    baselines = (study or {}).get("baselines", {})
    # The baseline each trial started as, as the driver recorded it: under PBT a trial can end with
    # a baseline's params, taken from another, and is still not that baseline.
    started = {TRIAL_PREFIX + trial_id: baseline for trial_id, baseline in read_starts(path).items()}
    trials = []
    for trial_dir in sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith(TRIAL_PREFIX)):
        trial = read_trial(trial_dir, skipped, baselines, in_study=study is not None,
                           metric=study_metric(study))
        if trial is not None:
            if trial.name in started:
                trial = dataclasses.replace(trial, baseline=started[trial.name])
            trials.append(trial)
    return Experiment(path, trials, study, skipped)


def rankable(trial: TrialRecord) -> bool:
    """Whether a trial takes a place by its score: it has one and did not fail with an error."""
    return trial.score is not None and trial.stop_reason != ERROR


def rank(trials: list[TrialRecord]) -> list[TrialRecord]:
    """By score (lower first), except that a collapsed trial ranks below every trial the collapse
    verdict judged healthy: it takes its place as if its score were no better than the worst of
    those. A trial stopped before the verdict could judge it takes its place by its score. Errored
    trials and those with no score come last.

    A trial ASHA stopped early was never judged. Ranking every such trial above every collapsed one
    put, where most trials that ran to their end collapsed (textures), weak trials stopped at their
    first evaluation above far better ones judged at the end: docs/search.md, "On other sets"."""
    scored = [trial for trial in trials if rankable(trial)]
    worst_judged = max((t.score for t in scored if t.healthy and t.judged), default=-math.inf)

    def key(trial: TrialRecord):
        place = max(trial.score, worst_judged) if trial.collapsed else trial.score
        return (place, trial.collapsed, trial.score, trial.name)

    rest = sorted((trial for trial in trials if not rankable(trial)),
                  key=lambda trial: (trial.score if trial.score is not None else math.inf, trial.name))
    return sorted(scored, key=key) + rest
