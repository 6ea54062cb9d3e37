"""Learning curves per trial: losses, D accuracy, quality and diversity, with freeze events and
the stop point. Traces are drawn per trial so the dashboard can show any set of trials."""

from __future__ import annotations

from typing import Any, NamedTuple

from analysis._common import escape, finite, label
from analysis._reader import Experiment
from trainable.experiment import COLLAPSES, COND_ACCURACY, DIVERSITY_MIN, D_LOSS, FID_INTRA, G_LOSS, metric_label

# The third panel shows the study's metric (its title is that metric's label).
PANELS = (("x", "y", "losses"), ("x2", "y2", "D accuracy"), ("x3", "y3", None),
          ("x4", "y4", "diversity (lowest class) / conditional accuracy"))


class TrialCurves(NamedTuple):
    name: str
    label: str
    iterations: list[int]
    d_loss: list[float | None]
    g_loss: list[float | None]
    d_accuracy: list[float | None]  # mean of D's accuracy on real and on fake batches
    score: list[float | None]  # the study's metric
    diversity: list[float | None]
    cond_accuracy: list[float | None]
    freeze_events: list[tuple[int, str]]  # (iteration, "freeze" | "unfreeze")
    stop_iteration: int
    stop_reason: str
    metric_label: str = metric_label(FID_INTRA)


def _accuracy(row: dict[str, Any]) -> float | None:
    real, fake = finite(row.get("d_real_accuracy")), finite(row.get("d_fake_accuracy"))
    return None if real is None or fake is None else (real + fake) / 2


def get_curves_info(experiment: Experiment) -> dict[str, TrialCurves]:
    curves = {}
    for trial in experiment.trials:
        rows = trial.rows
        events = [(int(e["iteration"]), str(e.get("event", "freeze"))) for row in rows
                  for e in row.get("freeze_events") or [] if isinstance(e, dict) and "iteration" in e]
        curves[trial.name] = TrialCurves(
            trial.name, label(trial), [int(r.get("iteration", 0)) for r in rows],
            [finite(r.get(D_LOSS)) for r in rows], [finite(r.get(G_LOSS)) for r in rows],
            [_accuracy(r) for r in rows], [finite(r.get(trial.metric)) for r in rows],
            [finite(r.get(DIVERSITY_MIN)) for r in rows], [finite(r.get(COND_ACCURACY)) for r in rows],
            events, int(trial.last.get("iteration", 0)), trial.stop_reason, experiment.metric_label)
    return curves


def _at(curves: TrialCurves, series: list[float | None], iteration: int) -> float | None:
    """The series' value at the last report at or before ``iteration`` (where an event sits)."""
    value = None
    for it, v in zip(curves.iterations, series):
        if it > iteration:
            break
        value = v if v is not None else value
    return value


def _short(values: list[float | None]) -> list[float | None]:
    """5 significant digits: what a plot shows, at a third of the JSON."""
    return [None if v is None else float(f"{v:.5g}") for v in values]


def curve_traces(curves: TrialCurves, color: str) -> list[dict[str, Any]]:
    """The traces of one trial across the four panels, one legend entry for all of them."""
    name, x = escape(curves.label), curves.iterations
    curves = curves._replace(**{key: _short(getattr(curves, key)) for key in
                                (D_LOSS, G_LOSS, "d_accuracy", "score", "diversity", COND_ACCURACY)})
    common = {"type": "scatter", "legendgroup": escape(curves.name), "line": {"color": color}}
    traces = [
        {**common, "x": x, "y": curves.d_loss, "name": name, "mode": "lines", "xaxis": "x", "yaxis": "y",
         "hovertemplate": "D loss %{y:.3f} @%{x}<extra>" + name + "</extra>"},
        {**common, "x": x, "y": curves.g_loss, "name": name, "mode": "lines", "xaxis": "x", "yaxis": "y",
         "line": {"color": color, "dash": "dot"}, "showlegend": False,
         "hovertemplate": "G loss %{y:.3f} @%{x}<extra>" + name + "</extra>"},
        {**common, "x": x, "y": curves.d_accuracy, "name": name, "mode": "lines", "xaxis": "x2", "yaxis": "y2",
         "showlegend": False, "hovertemplate": "D accuracy %{y:.3f} @%{x}<extra>" + name + "</extra>"},
        {**common, "x": x, "y": curves.score, "name": name, "mode": "lines+markers", "xaxis": "x3", "yaxis": "y3",
         "showlegend": False, "marker": {"size": 4},
         "hovertemplate": escape(curves.metric_label) + " %{y:.3f} @%{x}<extra>" + name + "</extra>"},
        {**common, "x": x, "y": curves.diversity, "name": name, "mode": "lines", "xaxis": "x4", "yaxis": "y4",
         "showlegend": False, "hovertemplate": "diversity %{y:.3f} @%{x}<extra>" + name + "</extra>"},
        {**common, "x": x, "y": curves.cond_accuracy, "name": name, "mode": "lines", "xaxis": "x4", "yaxis": "y4",
         "line": {"color": color, "dash": "dot"}, "showlegend": False,
         "hovertemplate": "conditional accuracy %{y:.3f} @%{x}<extra>" + name + "</extra>"},
    ]
    if curves.freeze_events:
        traces.append({**common, "mode": "markers", "xaxis": "x2", "yaxis": "y2", "showlegend": False, "name": name,
                       "x": [it for it, _ in curves.freeze_events],
                       "y": [_at(curves, curves.d_accuracy, it) for it, _ in curves.freeze_events],
                       "text": [event for _, event in curves.freeze_events],
                       "marker": {"color": color, "size": 11, "line": {"width": 1, "color": "black"},
                                  "symbol": ["triangle-down" if e == "freeze" else "triangle-up"
                                             for _, e in curves.freeze_events]},
                       "hovertemplate": "D %{text} @%{x}<extra>" + name + "</extra>"})
    if curves.iterations:
        collapsed = curves.stop_reason in COLLAPSES
        traces.append({**common, "mode": "markers", "xaxis": "x3", "yaxis": "y3", "showlegend": False, "name": name,
                       "x": [curves.stop_iteration], "y": [_at(curves, curves.score, curves.stop_iteration)],
                       "marker": {"color": color, "size": 13, "symbol": "x" if collapsed else "square",
                                  "line": {"width": 1, "color": "black"}},
                       "hovertemplate": f"stopped: {escape(curves.stop_reason)} @%{{x}}<extra>{name}</extra>"})
    return traces


def curves_layout(score_label: str = metric_label(FID_INTRA)) -> dict[str, Any]:
    layout: dict[str, Any] = {"grid": {"rows": 2, "columns": 2, "pattern": "independent"}, "height": 620,
                              "margin": {"t": 40}, "legend": {"orientation": "h", "y": -0.12},
                              "annotations": []}
    for index, (xaxis, yaxis, title) in enumerate(PANELS):
        suffix = "" if index == 0 else str(index + 1)
        layout[f"xaxis{suffix}"] = {"title": {"text": "iteration"}}
        layout[f"yaxis{suffix}"] = {"title": {"text": title or score_label}}
    layout["yaxis2"]["range"] = [0, 1.02]
    layout["yaxis3"]["type"] = "log"
    layout["title"] = {"text": "Learning curves (solid: D loss / diversity; dotted: G loss / conditional accuracy; "
                               "triangles: D frozen / unfrozen; square or cross: stop)", "font": {"size": 13}}
    return layout

