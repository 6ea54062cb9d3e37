"""One self-contained HTML dashboard for a study or a single trial: plotly's JavaScript, the
figures' data and the sample grids are all inside the file, so it opens offline, anywhere.

Each figure is computed by a ``get_*_info`` function (plain data, tested) and drawn by a
``plot_*`` function; this module only puts them on one page.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from analysis._common import PALETTE, REASON_COLORS, escape, searched_params
from analysis._curves import curve_traces, curves_layout, get_curves_info
from analysis._grids import data_uri, get_grids_info, plan_frames, thumbnail_bytes
from analysis._history import get_history_info, plot_history
from analysis._factors import factors_html, get_factors_info
from analysis._importance import get_importance_info, plot_importance
from analysis._leaderboard import METRIC_HELP, get_leaderboard_info, leaderboard_html, metrics_legend
from analysis._nodes import nodes_html
from analysis._parallel import get_parallel_info, plot_parallel
from analysis._reader import Experiment, TrialRecord, rank, rankable, read_experiment
from analysis._replay import get_replay_info, plot_replay
from analysis._remedies import get_remedies_info, plot_remedies
from analysis._stops import get_stops_info, plot_collapse_map, plot_stop_counts
from trainable.config import preset_label
from trainable.experiment import DASHBOARD_FILE, NONE, write_text_atomic
from trainable.progress import Progress

DEFAULT_MAX_MB = 45.0  # the whole file stays under 50 MB for a 1000-trial study
DEFAULT_COMPARE = 5  # trials drawn in the learning curves when the page opens (baselines besides)


@dataclasses.dataclass
class DashboardResult:
    path: Path
    bytes: int
    trials: int
    frames_shown: int
    frames_total: int
    frame_level: str
    seconds: float
    skipped: list[str]


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' survives, so no text from a trial
    folder can close the element or start markup, and NaN is refused (JSON has none)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _grid_shape(trial: TrialRecord) -> tuple[int, int]:
    """(rows, columns) of a trial's grids: one row per class, grid_columns samples (default 8)."""
    return trial.class_count or 7, int(trial.params.get("grid_columns", 8))


def _frames_data(experiment: Experiment, max_bytes: float, progress: Progress | None) -> tuple[dict, Any]:
    info = get_grids_info(experiment)
    showcase = [{"name": s.name, "label": s.label, "kind": s.kind, "caption": s.caption,
                 "src": data_uri(s.grid.read_bytes()) if s.grid else None} for s in info.showcase]
    budget = plan_frames(info.timelines, int(max_bytes - sum(len(s["src"] or "") for s in showcase)))
    trials = {trial.name: trial for trial in experiment.trials}
    frames: dict[str, dict[str, Any]] = {}
    done = 0
    for name, timeline in info.timelines.items():
        shape = _grid_shape(trials[name])
        kept = [timeline[i] for i in budget.keep[name]]
        sources = [data_uri(f.grid.read_bytes() if budget.level == "full" else thumbnail_bytes(f, *shape))
                   for f in kept]
        frames[name] = {"it": [f.iteration for f in kept], "verdict": [f.verdict if f.verdict != NONE else ""
                                                                       for f in kept],
                        "src": sources, "total": len(timeline)}
        done += len(kept)
        if progress:
            progress.update(done, "grids")
    return {"frames": frames, "showcase": showcase}, budget


def _row_labels(classes: list[str], image: str) -> str:
    """A grid image with its rows named, a class per row, beside it."""
    names = "".join(f"<li>{escape(name)}</li>" for name in classes)
    return f'<div class="labelled"><ol class="rows">{names}</ol>{image}</div>'


def _showcase_html(showcase: list[dict[str, Any]], classes: list[str]) -> str:
    if not showcase:
        return "<p>No sample grids yet.</p>"
    cells = []
    for item in showcase:
        image = (_row_labels(classes, f'<img src="{item["src"]}" alt="last sample grid of {escape(item["label"])}">')
                 if item["src"] else "<p>no grid yet</p>")
        cells.append(f'<figure class="{item["kind"]}">{image}<figcaption>{escape(item["name"])}<br>'
                     f'{escape(item["caption"])}</figcaption></figure>')
    return "".join(cells)


def _figure(fig_id: str, figure: dict[str, Any]) -> str:
    return f'<div class="figure" id="{fig_id}"></div><script type="application/json" class="fig" ' \
           f'data-target="{fig_id}">{script_json(figure)}</script>'


def build_dashboard(source: str | Path | Experiment, out: str | Path | None = None, *,
                    max_mb: float = DEFAULT_MAX_MB, progress: bool = False) -> DashboardResult:
    """Write the dashboard of an experiment, given as its folder or as already read
    (default file: FOLDER/dashboard.html)."""
    started = time.perf_counter()
    experiment = source if isinstance(source, Experiment) else read_experiment(source)
    out = Path(out) if out else experiment.path / DASHBOARD_FILE
    total_frames = sum(len(t.rows) for t in experiment.trials)
    bar = Progress(f"dashboard {experiment.path.name}", total_frames, enabled=progress)

    leaderboard = get_leaderboard_info(experiment)
    ranked = rank(experiment.trials)
    colors = {trial.name: PALETTE[i % len(PALETTE)] for i, trial in enumerate(ranked)}
    curves = get_curves_info(experiment)
    default = [t.name for t in ranked if rankable(t)][:DEFAULT_COMPARE]
    default += [t.name for t in ranked if t.baseline and t.name not in default]
    if not default:
        default = [t.name for t in ranked[:DEFAULT_COMPARE]]
    data = {
        "curves": {name: curve_traces(c, colors[name]) for name, c in curves.items()},
        "curves_layout": curves_layout(experiment.metric_label),
        "default_compare": default,
        "order": [t.name for t in ranked],
        "labels": {t.name: (f"#{i} " + t.name + (f" ({preset_label(t.baseline, short=True)})" if t.baseline else "") + f" - {t.stop_reason}")
                   for i, t in enumerate(ranked, 1)},
    }
    stops = get_stops_info(experiment)
    figures = {
        "history": plot_history(get_history_info(experiment)),
        "stops": plot_stop_counts(stops),
        "collapse": plot_collapse_map(stops),
        "parallel": plot_parallel(get_parallel_info(experiment)),
        "importance": plot_importance(get_importance_info(experiment)),
    }
    replay = get_replay_info(experiment)
    if replay is not None:
        figures["replay"] = plot_replay(replay)
    remedies = get_remedies_info(experiment)
    if remedies.effects:
        figures["remedies"] = plot_remedies(remedies)
    table = (leaderboard_html(leaderboard), metrics_legend(leaderboard))
    # The grids get what the rest of the page leaves of the size budget (showcase grids included).
    nodes = nodes_html(leaderboard.nodes) if leaderboard.nodes.nodes else ""
    rest = len(_page(experiment, table, "", figures, data, {}, None, nodes=nodes))
    grids, budget = _frames_data(experiment, max_mb * 1e6 - rest - 100_000, bar)
    showcase = _showcase_html(grids["showcase"], _classes(experiment))
    page = _page(experiment, table, showcase, figures, data, grids["frames"], budget, nodes=nodes)
    write_text_atomic(out, page)
    bar.close(budget.shown, "grids")
    return DashboardResult(out, out.stat().st_size, len(experiment.trials), budget.shown, budget.total,
                           budget.level, time.perf_counter() - started, experiment.skipped)


def _page(experiment: Experiment, table: tuple[str, str], showcase: str, figures: dict[str, dict], data: dict,
          frames: dict, budget, *, nodes: str = "") -> str:
    """The whole page; ``table`` is the ranking's HTML and the legend of its score columns, ``nodes``
    the table of where the trials ran (none when the reports do not say)."""
    import plotly.offline

    table, legend = table
    study = experiment.study or {}
    title = f"cgan-study: {study.get('name') or experiment.path.name}"
    kind = "study" if experiment.study else "trial folder"
    counts = Counter(trial.stop_reason for trial in experiment.trials)
    summary = ", ".join(f"{escape(reason)} {count}" for reason, count in sorted(counts.items()))
    figure_html = {key: _figure(f"fig-{key}", fig) for key, fig in figures.items()}
    study_nav, study_sections = _study_sections(experiment, figure_html, nodes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_asset("dashboard.css")}{_reason_css()}</style>
<script>{plotly.offline.get_plotlyjs()}</script>
</head><body>
<header><h1>{escape(title)}</h1>
<p>{kind} <code>{escape(experiment.path)}</code>: {len(experiment.trials)} trials ({summary}).
Score: {escape(METRIC_HELP[experiment.metric])}. Ranked by score, a collapsed trial
below every trial the collapse verdict judged healthy (a trial stopped before the verdict's window
was never judged and takes its place by score). Written {escape(time.strftime('%Y-%m-%d %H:%M'))}.</p>{_skipped_html(experiment)}
<nav><a href="#ranking">ranking</a> <a href="#samples">samples</a> <a href="#curves">learning curves</a>{study_nav}
<a href="#config">configuration</a></nav></header>
{_optional_section(figure_html, 'replay', 'Seed re-runs', _REPLAY_TEXT)}
<section id="ranking"><h2>Ranking</h2>
<p>Click a column to sort; tick <em>compare</em> to draw trials in the learning curves; click a trial for its samples.
Baselines (the paper's V0/V1/V2) and the reference recipe are marked.</p>
<label class="note"><input type="checkbox" id="all-params"> every parameter in a column of its own</label>
<div class="scroll">{table}</div>
<p class="note legend">{legend}</p></section>
<section id="samples"><h2>Samples</h2>
<p>Last grids of the best healthy searched trials, of the paper's baselines and of the reference recipe: a row per class, named beside it.</p>
<div class="showcase">{showcase}</div>
<h3>Timeline of one trial</h3>
<p class="note">Grids across evaluations ({escape(_frames_note(budget))}): slide to see when a trial collapsed.</p>
<div class="timeline"><label>trial <select id="timeline-trial"></select></label>
<label>evaluation <input type="range" id="timeline-slider" min="0" max="0" value="0"></label>
<span id="timeline-caption"></span>{_row_labels(_classes(experiment), '<img id="timeline-image" alt="sample grid">')}</div></section>
<section id="curves"><h2>Learning curves</h2>
<p><span id="compare-list"></span> <button id="compare-reset" type="button">reset to the best</button></p>
<div class="figure" id="fig-curves"></div></section>
{study_sections}
{_config_section(experiment)}
<script type="application/json" id="dashboard-data">{script_json(data)}</script>
<script type="application/json" id="dashboard-frames">{script_json(frames)}</script>
<script>{_asset("dashboard.js")}</script>
</body></html>
"""


def _asset(name: str) -> str:
    """The page's own CSS and JavaScript: real files in analysis/assets/, shipped as package data."""
    return (importlib.resources.files("analysis") / "assets" / name).read_text(encoding="utf-8")


def _skipped_html(experiment: Experiment) -> str:
    if not experiment.skipped:
        return ""
    items = "".join(f"<li>{escape(s)}</li>" for s in experiment.skipped[:50])
    more = f"<li>... {len(experiment.skipped) - 50} more</li>" if len(experiment.skipped) > 50 else ""
    return (f'<details class="skipped"><summary>{len(experiment.skipped)} entries skipped while reading'
            f'</summary><ul>{items}{more}</ul></details>')


def _frames_note(budget) -> str:
    if budget is None:
        return ""
    if budget.level == "full":  # full grids are embedded only when all of them fit
        return "every evaluation at full size"
    if budget.shown < budget.total:
        return f"thumbnails, {budget.shown} of {budget.total} evaluations (to keep the file small)"
    return "thumbnails of every evaluation"


def _study_sections(experiment: Experiment, figure_html: dict[str, str], nodes: str) -> tuple[str, str]:
    """(the navigation's links, the sections) of what compares trials: with one trial they say nothing."""
    if len(experiment.trials) == 1:
        return "", ""
    factors = factors_html(get_factors_info(experiment))
    nodes = "" if not nodes else f'<section id="nodes"><h2>Where trials ran</h2><p>{_NODES_TEXT}</p>{nodes}</section>'
    nav = ('\n<a href="#history">history</a> <a href="#stops">stop reasons</a> '
           '<a href="#remedies">remedies</a>\n<a href="#space">parameters</a>' + (' <a href="#nodes">nodes</a>' if nodes else ""))
    sections = (
        f"<section id=\"history\"><h2>Optimization history</h2>{figure_html['history']}</section>\n"
        f"<section id=\"stops\"><h2>Stop reasons</h2>{figure_html['stops']}{figure_html['collapse']}</section>\n"
        f"{_optional_section(figure_html, 'remedies', 'Remedies', _REMEDIES_TEXT)}\n"
        f"<section id=\"space\"><h2>Parameters</h2><h3>Why the others failed</h3>{factors}"
        f"{figure_html['parallel']}{figure_html['importance']}</section>\n"
        f"{nodes}")
    return nav, sections


def fixed_config(experiment: Experiment) -> dict[str, Any]:
    """The config fields the ranking does not show: a single trial's whole config, a study's
    fixed fields (from its spec, else the unsearched fields all its trials share)."""
    if len(experiment.trials) == 1:
        return dict(experiment.trials[0].params)
    fixed = ((experiment.study or {}).get("spec") or {}).get("fixed")
    if isinstance(fixed, dict) and fixed:
        return dict(fixed)
    searched = set(searched_params(experiment))
    first = experiment.trials[0].params if experiment.trials else {}
    return {key: value for key, value in first.items() if key not in searched
            and all(trial.params.get(key) == value for trial in experiment.trials)}


def _config_section(experiment: Experiment) -> str:
    config = fixed_config(experiment)
    what = ("This trial's configuration." if len(experiment.trials) == 1 else
            "Fields the study kept fixed (the searched ones are columns of the ranking).")
    if not config:
        return f'<section id="config"><h2>Configuration</h2><p>{what} None.</p></section>'
    rows = "".join(f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in config.items())
    return (f'<section id="config"><h2>Configuration</h2><p>{what}</p>'
            f'<table id="config-table" class="config">{rows}</table></section>')


_REMEDIES_TEXT = ("For each GAN remedy the study searched: the trials that had it against those with the "
                  "paper's value. Few trials per side make this a hint, not a measurement; "
                  "benchmarks/remedies.py compares them at equal budgets over seeds.")
_NODES_TEXT = ("The Ray nodes that ran the study's trials, by the node id every report carries (a host name or IP "
               "cannot tell two nodes of one machine apart); hover a node for its full id.")
_REPLAY_TEXT = ("The configurations ranked by their median score over the new seeds; the spread shows how much of "
                "a difference between them is luck.")


def _optional_section(figure_html: dict[str, str], key: str, title: str, text: str) -> str:
    """A section for a figure that only some experiments have (empty when this one has none)."""
    if key not in figure_html:
        return ""
    return f'<section id="{key}"><h2>{title}</h2><p>{text}</p>{figure_html[key]}</section>'


def _reason_css() -> str:
    """A stop reason's badge in the ranking has the colour the figures give that reason."""
    return "".join(f".r-{reason}{{background:{color}}}" for reason, color in REASON_COLORS.items()) + "\n"


def _classes(experiment: Experiment) -> list[str]:
    from trainable.data import EXPRESSIONS

    if experiment.class_names:
        return experiment.class_names
    count = experiment.class_count or len(EXPRESSIONS)
    return list(EXPRESSIONS) if count == len(EXPRESSIONS) else [str(i) for i in range(count)]
