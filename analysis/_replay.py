"""Seed re-runs ranked by their median score, with the spread across seeds."""

from __future__ import annotations

import statistics
from typing import Any, NamedTuple

from analysis._common import escape
from analysis._reader import Experiment
from trainable.experiment import COLLAPSES


class ReplayGroup(NamedTuple):
    params: dict[str, Any]
    source_name: str
    source_rank: int
    source_score: float | None
    baseline: str | None
    seeds: list[int]
    scores: list[float | None]  # one per seed; None where the re-run has no score (yet)
    stop_reasons: list[str]
    median: float | None  # over the re-runs with a score
    low: float | None
    high: float | None


class ReplayInfo(NamedTuple):
    source: str
    groups: list[ReplayGroup]  # by median score, lower first; groups with no score last
    score_label: str = "FD-intra"  # the study's metric


def get_replay_info(experiment: Experiment) -> ReplayInfo | None:
    """None when ``experiment`` is not a seed re-run."""
    study = experiment.study or {}
    if not study.get("replay_of"):
        return None
    groups = []
    for source in study.get("replayed", []):
        members = [t for t in experiment.trials
                   if all(t.params.get(k) == v for k, v in source["params"].items())]
        members.sort(key=lambda t: int(t.params.get("seed", 0)))
        scores = [t.score for t in members]
        known = [s for s in scores if s is not None]
        groups.append(ReplayGroup(
            source["params"], source["name"], int(source["rank"]), source.get("score"), source.get("baseline"),
            [int(t.params.get("seed", 0)) for t in members], scores, [t.stop_reason for t in members],
            statistics.median(known) if known else None, min(known) if known else None,
            max(known) if known else None))
    groups.sort(key=lambda g: (g.median is None, g.median if g.median is not None else 0.0, g.source_rank))
    return ReplayInfo(study["replay_of"], groups, experiment.metric_label)


def format_replay(info: ReplayInfo) -> str:
    lines = [f"seed re-runs of {info.source}, ranked by median {info.score_label} over the new seeds",
             f"{'#':>3} {'was':>4} {'source trial':<24} {'median':>8} {'min':>8} {'max':>8} {'first run':>9}  seeds"]
    for position, group in enumerate(info.groups, 1):
        def cell(value):
            return f"{value:8.3f}" if value is not None else f"{'-':>8}"
        name = group.source_name + (f" ({group.baseline})" if group.baseline else "")
        collapsed = sum(r in COLLAPSES for r in group.stop_reasons)
        lines.append(f"{position:>3} {'#' + str(group.source_rank):>4} {name:<24} {cell(group.median)} {cell(group.low)} "
                     f"{cell(group.high)} {cell(group.source_score):>9}  {len(group.scores)}"
                     + (f" ({collapsed} collapsed)" if collapsed else ""))
    return "\n".join(lines)


def plot_replay(info: ReplayInfo) -> dict[str, Any]:
    data = []
    for position, group in enumerate(info.groups, 1):
        label = escape(f"#{position} (was #{group.source_rank}) {group.source_name}"
                       + (f" {group.baseline}" if group.baseline else ""))
        data.append({"type": "box", "name": label, "y": [s for s in group.scores if s is not None],
                     "boxpoints": "all", "jitter": 0.3, "pointpos": 0,
                     "text": [escape(f"seed {seed}: {reason}") for seed, reason, score in
                              zip(group.seeds, group.stop_reasons, group.scores) if score is not None],
                     "hovertemplate": "%{text}<br>" + escape(info.score_label) + " %{y:.3f}<extra></extra>"})
        if group.source_score is not None:
            data.append({"type": "scatter", "mode": "markers", "x": [label], "y": [group.source_score],
                         "marker": {"symbol": "diamond-open", "size": 12, "color": "black"},
                         "name": "first run", "showlegend": position == 1,
                         "hovertemplate": "first run: %{y:.3f}<extra></extra>"})
    return {"data": data, "layout": {"title": {"text": f"Seed re-runs: {escape(info.score_label)} per configuration "
                                                       "(box: new seeds; diamond: the study's run)"},
                                     "yaxis": {"title": {"text": f"{escape(info.score_label)} (lower is better)"}},
                                     "showlegend": True, "margin": {"t": 40}}}
