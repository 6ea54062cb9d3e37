"""Parallel coordinates over the searched parameters, coloured by score, with the stop reason last."""

from __future__ import annotations

from typing import Any, NamedTuple

from analysis._common import escape, searched_params, sort_values
from analysis._reader import Experiment
from trainable.experiment import STOP_REASONS


class Dimension(NamedTuple):
    name: str
    values: list[float]
    ticktext: list[str] | None  # set for a categorical axis: values are positions in it
    log: bool


class ParallelInfo(NamedTuple):
    names: list[str]
    scores: list[float]
    dimensions: list[Dimension]
    score_label: str = "FD-intra"  # the study's metric


def _dimension(name: str, raw: list[Any], log: bool = False) -> Dimension:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        return Dimension(name, [float(v) for v in raw], None, log)
    order = sort_values(raw)
    return Dimension(name, [float(order.index(v)) for v in raw], [str(v) for v in order], False)


def get_parallel_info(experiment: Experiment) -> ParallelInfo:
    """Trials with a score; parameters missing from a trial are left out of the figure."""
    search = experiment.search
    params = searched_params(experiment)
    trials = [t for t in experiment.trials if t.score is not None and all(k in t.params for k in params)]
    dimensions = [_dimension(key, [t.params[key] for t in trials], key in search and search[key].log)
                  for key in params]
    reasons = [t.stop_reason for t in trials]
    order = [r for r in STOP_REASONS if r in reasons]
    dimensions.append(Dimension("stop reason", [float(order.index(r)) for r in reasons], order, False))
    return ParallelInfo([t.name for t in trials], [t.score for t in trials], dimensions,
                        experiment.metric_label)


def plot_parallel(info: ParallelInfo) -> dict[str, Any]:
    import math

    dims = []
    for dim in info.dimensions:
        entry: dict[str, Any] = {"label": escape(dim.name)}
        if dim.ticktext is not None:
            entry.update(values=dim.values, tickvals=list(range(len(dim.ticktext))),
                         ticktext=[escape(t) for t in dim.ticktext],
                         range=[-0.5, max(len(dim.ticktext) - 0.5, 0.5)])
        elif dim.log and all(v > 0 for v in dim.values):
            # plotly's parcoords has no log axis: plot log10 and label the ticks with real values
            logs = [math.log10(v) for v in dim.values]
            low, high = (math.floor(min(logs)), math.ceil(max(logs))) if logs else (0, 1)
            entry.update(values=logs, label=escape(dim.name) + " (log)", tickvals=list(range(low, high + 1)),
                         ticktext=[f"{10 ** p:g}" for p in range(low, high + 1)])
        else:
            entry["values"] = dim.values
        dims.append(entry)
    scores = info.scores
    trace = {"type": "parcoords", "dimensions": dims,
             "line": {"color": scores, "colorscale": "Viridis", "reversescale": True, "showscale": True,
                      "colorbar": {"title": {"text": escape(info.score_label)}}}}
    # Twenty-odd axes side by side: angled labels above a tall plot keep neighbours' names apart.
    trace["labelangle"] = -30
    trace["labelside"] = "top"
    return {"data": [trace], "layout": {"title": {"text": f"Searched parameters ({len(scores)} trials with a score; "
                                                           "dark = better)"},
                                        "height": 620, "margin": {"l": 80, "r": 100, "t": 170, "b": 70}}}
