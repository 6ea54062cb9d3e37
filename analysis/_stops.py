"""Why trials stopped, and where in parameter space and in training the collapses happened."""

from __future__ import annotations

import math
import zlib
from typing import Any, NamedTuple

from analysis._common import REASON_COLORS, escape, searched_params, sort_values
from analysis._reader import Experiment
from trainable.experiment import COLLAPSES, STOP_REASONS


class StopPoint(NamedTuple):
    name: str
    reason: str
    iteration: int
    params: dict[str, Any]


class StopsInfo(NamedTuple):
    reasons: list[str]  # every reason of STOP_REASONS, in that order
    counts: list[int]
    params: list[str]
    points: list[StopPoint]  # one per trial


def get_stops_info(experiment: Experiment) -> StopsInfo:
    params = searched_params(experiment)
    points = [StopPoint(t.name, t.stop_reason, int(t.last.get("iteration", 0)),
                        {key: t.params.get(key) for key in params}) for t in experiment.trials]
    counts = [sum(p.reason == reason for p in points) for reason in STOP_REASONS]
    return StopsInfo(list(STOP_REASONS), counts, params, points)


def plot_stop_counts(info: StopsInfo) -> dict[str, Any]:
    shown = [(r, c) for r, c in zip(info.reasons, info.counts) if c or r in STOP_REASONS[:5]]
    trace = {"type": "bar", "x": [r for r, _ in shown], "y": [c for _, c in shown], "text": [c for _, c in shown],
             "textposition": "auto", "marker": {"color": [REASON_COLORS[r] for r, _ in shown]},
             "hovertemplate": "%{x}: %{y} trials<extra></extra>"}
    return {"data": [trace], "layout": {"title": {"text": "Why trials stopped"}, "yaxis": {"title": {"text": "trials"}},
                                        "margin": {"t": 40}}}


def plot_collapse_map(info: StopsInfo) -> dict[str, Any]:
    """One panel per searched parameter: each trial at its value (x), on the row of its stop
    reason (y, jittered so equal points stay visible). Collapses that gather at one end of an
    axis show where in the space training fails."""
    columns = 3
    rows = max(1, math.ceil(len(info.params) / columns))
    order = [r for r in info.reasons if any(p.reason == r for p in info.points)]
    data: list[dict[str, Any]] = []
    collapsed = any(p.reason in COLLAPSES for p in info.points)
    title = "Where in the space trials collapsed" if collapsed else "Where in the space trials stopped (none collapsed)"
    # Each panel is named above it (not by an x-axis title, which would sit on top of the next
    # panel and read as its name); the gap between rows leaves room for that name.
    layout: dict[str, Any] = {"title": {"text": title}, "showlegend": True,
                              "height": 90 + 230 * rows, "margin": {"t": 80, "l": 110, "b": 40},
                              "grid": {"rows": rows, "columns": columns, "pattern": "independent",
                                       "xgap": 0.12, "ygap": 0.45},
                              "annotations": []}
    for index, key in enumerate(info.params):
        axis = "" if index == 0 else str(index + 1)
        values = [p.params.get(key) for p in info.points]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
        categories = None if numeric else [str(v) for v in sort_values([v for v in values if v is not None])]
        for reason in order:
            members = [(i, p) for i, p in enumerate(info.points) if p.reason == reason and p.params.get(key) is not None]
            if not members:
                continue
            jitter = [((zlib.crc32(p.name.encode()) % 1000) / 1000 - 0.5) * 0.5 for _, p in members]
            data.append({
                "type": "scatter", "mode": "markers", "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                "x": [p.params[key] if numeric else str(p.params[key]) for _, p in members],
                "y": [order.index(reason) + j for j, _ in zip(jitter, members)],
                "text": [f"{escape(p.name)}<br>{escape(key)}={escape(p.params[key])}<br>{reason} at iteration {p.iteration}"
                         for _, p in members],
                "hovertemplate": "%{text}<extra></extra>", "name": reason, "legendgroup": reason,
                "showlegend": index == 0, "marker": {"color": REASON_COLORS[reason], "size": 7, "opacity": 0.8,
                                                     "symbol": "x" if reason in COLLAPSES else "circle"}})
        layout["annotations"].append({"text": f"<b>{escape(key)}</b>", "showarrow": False, "xref": f"x{axis} domain",
                                      "yref": f"y{axis} domain", "x": 0.5, "y": 1.02, "yanchor": "bottom"})
        layout[f"xaxis{axis}"] = {**({"type": "category", "categoryorder": "array",
                                                                      "categoryarray": [escape(c) for c in categories]}
                                                                     if categories is not None else {})}
        layout[f"yaxis{axis}"] = {"tickvals": list(range(len(order))), "ticktext": order, "range": [-0.6, len(order) - 0.4],
                                  "showticklabels": index % columns == 0}
    return {"data": data, "layout": layout}
