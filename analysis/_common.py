"""What every figure needs: which parameters were searched, trial order, health, colours."""

from __future__ import annotations

import html
import math
from typing import Any, NamedTuple

from analysis._reader import Experiment, TrialRecord, finite
from trainable.config import preset_label
from trainable.experiment import (ASHA, COMPLETED, COND_ACCURACY, ERROR, INTERRUPTED, LOSS_COLLAPSE, MODE_COLLAPSE,
                                  PARAMS_FILE, RUNNING, WORKING_ACCURACY)

# The paper's axes: shown for a single local trial, or a study folder without its study.json.
PAPER_AXES = ("latent_size", "d_filters", "d_dropout", "normalization", "freeze_accuracy", "freeze_after")
REASON_COLORS = {COMPLETED: "#2e7d32", ASHA: "#7aa6c2", MODE_COLLAPSE: "#d62728", LOSS_COLLAPSE: "#ff7f0e",
                 ERROR: "#7f7f7f", INTERRUPTED: "#bcbd22", RUNNING: "#9467bd"}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")


def searched_params(experiment: Experiment) -> list[str]:
    """The study's searched parameters in the study file's order; else the paper's axes present."""
    search = experiment.search
    if search:
        return list(search)
    present = {key for trial in experiment.trials for key in trial.params}
    return [key for key in PAPER_AXES if key in present]


def start_time(trial: TrialRecord) -> float:
    """When the trial started: its first report's clock time less its running time, else when
    its params.json was written (Tune and the local trial both write it at the start)."""
    first = trial.rows[0] if trial.rows else {}
    stamp, elapsed = finite(first.get("timestamp")), finite(first.get("time_total_s"))
    if stamp is not None:
        return stamp - (elapsed or 0.0)
    try:
        return (trial.path / PARAMS_FILE).stat().st_mtime
    except OSError:
        return math.inf



class Milestone(NamedTuple):
    trial: TrialRecord
    row: dict[str, Any]
    seconds: float  # since the study (or the trial) started


def first_working(experiment: Experiment, threshold: float = WORKING_ACCURACY) -> Milestone | None:
    """The first report, in clock time, of any trial whose conditional accuracy reached ``threshold``."""
    started = finite((experiment.study or {}).get("started_at"))
    if started is None:
        started = min((start_time(trial) for trial in experiment.trials), default=math.inf)
    reached = [Milestone(trial, row, finite(row.get("timestamp")) - started)
               for trial in experiment.trials for row in trial.rows
               if (finite(row.get(COND_ACCURACY)) or 0.0) >= threshold and finite(row.get("timestamp")) is not None]
    return min(reached, key=lambda m: m.seconds, default=None)


def row_at(trial: TrialRecord, iteration: int) -> dict[str, Any] | None:
    """The trial's report at ``iteration``, or its last one before it."""
    before = [row for row in trial.rows if isinstance(row.get("iteration"), int) and row["iteration"] <= iteration]
    return before[-1] if before else None


def in_start_order(experiment: Experiment) -> list[TrialRecord]:
    return sorted(experiment.trials, key=lambda trial: (start_time(trial), trial.name))


def sort_values(values: list[Any]) -> list[Any]:
    """Distinct parameter values in a readable order: numbers ascending, then text ("off")."""
    distinct = list(dict.fromkeys(values))
    return sorted(distinct, key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))


def label(trial: TrialRecord) -> str:
    return f"{trial.name} ({preset_label(trial.baseline)})" if trial.baseline else trial.name


def escape(text: Any) -> str:
    """Text from trial folders (names, parameter values, error messages) made safe for HTML and
    for plotly's labels, which read a few HTML tags."""
    return html.escape(str(text), quote=True)
