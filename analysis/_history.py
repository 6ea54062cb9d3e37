"""Optimization history: each trial's score in the order trials started, and the best so far."""

from __future__ import annotations

from typing import Any, NamedTuple

from analysis._common import REASON_COLORS, escape, in_start_order
from analysis._reader import Experiment
from trainable.experiment import COLLAPSES, ERROR, STOP_REASONS


class HistoryInfo(NamedTuple):
    numbers: list[int]  # 1 = the first trial started
    names: list[str]
    scores: list[float | None]
    reasons: list[str]
    baselines: list[str | None]
    best_so_far: list[float | None]  # over healthy trials only: a collapsed trial is never "best"
    score_label: str = "FD-intra"  # the study's metric


def get_history_info(experiment: Experiment) -> HistoryInfo:
    numbers, names, scores, reasons, baselines, best_so_far = [], [], [], [], [], []
    best = None
    for number, trial in enumerate(in_start_order(experiment), 1):
        if trial.healthy and (best is None or trial.score < best):
            best = trial.score
        numbers.append(number)
        names.append(trial.name)
        scores.append(trial.score)
        reasons.append(trial.stop_reason)
        baselines.append(trial.baseline)
        best_so_far.append(best)
    return HistoryInfo(numbers, names, scores, reasons, baselines, best_so_far, experiment.metric_label)


def plot_history(info: HistoryInfo) -> dict[str, Any]:
    """One marker group per stop reason (collapsed ones as crosses); trials without a score sit
    on a 'no score' line above the others."""
    known = [s for s in info.scores if s is not None]
    ceiling = max(known) * 1.1 if known else 1.0
    data: list[dict[str, Any]] = []
    for reason in STOP_REASONS:
        index = [i for i, r in enumerate(info.reasons) if r == reason]
        if not index:
            continue
        collapsed = reason in COLLAPSES or reason == ERROR
        data.append({
            "type": "scatter", "mode": "markers", "name": reason,
            "x": [info.numbers[i] for i in index],
            "y": [info.scores[i] if info.scores[i] is not None else ceiling for i in index],
            "text": [escape(info.names[i]) + (f" ({escape(info.baselines[i])})" if info.baselines[i] else "")
                     + ("" if info.scores[i] is not None else "<br>no score") for i in index],
            "hovertemplate": "trial %{x}: %{text}<br>" + escape(info.score_label) + " %{y:.3f}<extra>" + reason + "</extra>",
            "marker": {"color": REASON_COLORS[reason], "size": 9,
                       "symbol": "x" if collapsed else "circle",
                       "line": {"width": [2 if info.baselines[i] else 0 for i in index], "color": "black"}},
        })
    data.append({"type": "scatter", "mode": "lines", "name": "best so far (healthy)", "x": info.numbers,
                 "y": info.best_so_far, "line": {"shape": "hv", "color": "black"}, "hoverinfo": "skip"})
    layout = {"title": {"text": "Optimization history"}, "xaxis": {"title": {"text": "trial (start order)"}},
              "yaxis": {"title": {"text": f"{escape(info.score_label)} (lower is better)"}, "type": "log" if known and min(known) > 0 else "linear"},
              # the legend below the axis title, so neither covers the other nor the plot
              "legend": {"orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"},
              "height": 460, "margin": {"t": 50, "b": 130, "l": 80, "r": 30}}
    return {"data": data, "layout": layout}
