"""Which remedies mattered: per remedy searched, the trials with it against those without it."""

from __future__ import annotations

from typing import Any, NamedTuple

from analysis._common import escape
from analysis._reader import Experiment
from trainable.config import REMEDY_FIELDS, TrainConfig, param_value


class RemedyGroup(NamedTuple):
    trials: list[str]
    scores: list[float]  # healthy trials' final score (the study's metric)
    collapsed: int  # trials that collapsed (no score counted)


class RemedyEffect(NamedTuple):
    field: str
    paper_value: Any
    without: RemedyGroup  # the paper's value
    with_: RemedyGroup  # any other value


class RemediesInfo(NamedTuple):
    effects: list[RemedyEffect]  # remedy fields the study searched, in REMEDY_FIELDS order
    score_label: str = "FD-intra"  # the study's metric


def _group(trials) -> RemedyGroup:
    healthy = [t for t in trials if t.healthy]
    return RemedyGroup([t.name for t in trials], [t.score for t in healthy], sum(t.collapsed for t in trials))


def get_remedies_info(experiment: Experiment) -> RemediesInfo:
    defaults = TrainConfig()
    effects = []
    for field in REMEDY_FIELDS:
        if field not in experiment.search:
            continue
        paper = param_value(getattr(defaults, field))
        known = [t for t in experiment.trials if field in t.params]
        effects.append(RemedyEffect(field, paper, _group([t for t in known if t.params[field] == paper]),
                                    _group([t for t in known if t.params[field] != paper])))
    return RemediesInfo(effects, experiment.metric_label)


def plot_remedies(info: RemediesInfo) -> dict[str, Any]:
    """Box plots of the final score per remedy, without it (the paper's value) and with it, every
    trial a point; the hover says how many of each side collapsed."""
    data = []
    for side, color in (("without", "#9e9e9e"), ("with", "#2e7d32")):
        x, y, text = [], [], []
        for effect in info.effects:
            group = effect.without if side == "without" else effect.with_
            x += [effect.field] * len(group.scores)
            y += group.scores
            text += [f"{escape(effect.field)} {side} ({'= ' if side == 'without' else '!= '}"
                     f"{escape(effect.paper_value)}): {len(group.trials)} trials, {group.collapsed} collapsed"] * len(group.scores)
        name = "without (the paper's value)" if side == "without" else "with the remedy"
        data.append({"type": "box", "name": name, "x": x, "y": y, "text": text, "boxpoints": "all", "jitter": 0.4,
                     "pointpos": 0, "marker": {"color": color, "size": 6}, "line": {"color": color},
                     "hovertemplate": "%{text}<br>" + escape(info.score_label) + " %{y:.3f}<extra></extra>"})
    collapsed = [f"{e.field}: {e.without.collapsed}/{len(e.without.trials)} vs {e.with_.collapsed}/{len(e.with_.trials)}"
                 for e in info.effects]
    return {"data": data, "layout": {
        "title": {"text": f"Remedies: final {escape(info.score_label)} of healthy trials without and with each "
                          "(lower is better)"},
        "boxmode": "group", "height": 420, "margin": {"t": 50, "b": 110},
        "yaxis": {"title": {"text": escape(info.score_label)}}, "xaxis": {"title": {"text": "remedy (config field)"}},
        "legend": {"orientation": "h", "y": -0.3},
        "annotations": [{"text": escape("collapsed, without vs with: " + "; ".join(collapsed)), "showarrow": False,
                         "xref": "paper", "yref": "paper", "x": 0, "y": 1.02, "xanchor": "left",
                         "font": {"size": 10}}] if collapsed else []}}
