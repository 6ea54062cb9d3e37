"""The ranking: every trial with its parameters and scores, in analysis._reader.rank's order (a table, not a plot)."""

from __future__ import annotations

from typing import Any, NamedTuple

from analysis._common import escape, finite, searched_params
from analysis._nodes import NodesInfo, get_nodes_info
from analysis._reader import Experiment, rank
from trainable.config import PAPER_PRESETS, TrainConfig, preset_label
from trainable.experiment import (COND_ACCURACY, COVERAGE, DIVERSITY_MIN, FID, FID_INTRA, FINAL_CAS, STOP_REASON,
                                  TRIAL_PREFIX, metric_label, trial_params)


class LeaderboardRow(NamedTuple):
    rank: int
    name: str
    baseline: str | None
    stop_reason: str
    evidence: str
    healthy: bool
    score: float | None  # the study's metric (intra-class judge Frechet distance by default), lower is better
    cond_accuracy: float | None
    diversity_min: float | None
    coverage: float | None
    final_cas: float | None  # CAS at the last evaluation, where the study asked for it (final_cas = true)
    iteration: int
    time_s: float | None
    params: dict[str, Any]
    changes: str  # "key=value, ..." of the params that differ from the paper's V0
    during: str  # its config's changes mid-training (PBT), "it 200 from trial_x: g_lr 0.002->0.0024; ..."
    nodes: tuple[str, ...] = ()  # the Ray nodes it reported from, in order (more than one: it moved)


class LeaderboardInfo(NamedTuple):
    params: list[str]
    rows: list[LeaderboardRow]
    metric: str = FID_INTRA  # the study's metric: the score column and the ranking
    nodes: NodesInfo | None = None  # where the trials ran

    @property
    def several_nodes(self) -> bool:
        """Whether the trials ran on more than one Ray node: the ranking then has a node column."""
        return self.nodes is not None and len(self.nodes.nodes) > 1


def get_leaderboard_info(experiment: Experiment) -> LeaderboardInfo:
    params = searched_params(experiment)
    paper = trial_params(TrainConfig())
    nodes = get_nodes_info(experiment)
    rows = []
    for position, trial in enumerate(rank(experiment.trials), 1):
        last = trial.last
        rows.append(LeaderboardRow(
            rank=position, name=trial.name, baseline=trial.baseline, stop_reason=trial.stop_reason,
            evidence=trial.evidence, healthy=trial.healthy, score=trial.score,
            cond_accuracy=finite(last.get(COND_ACCURACY)), diversity_min=finite(last.get(DIVERSITY_MIN)),
            coverage=finite(last.get(COVERAGE)), final_cas=finite(last.get(FINAL_CAS)),
            iteration=int(last.get("iteration", 0)),
            time_s=finite(last.get("time_total_s")),
            params={key: trial.params.get(key) for key in params},
            changes=", ".join(f"{key}={_cell(trial.params[key])}" for key in params
                              if key in trial.params and trial.params[key] != paper.get(key)),
            during=describe_config_changes(trial.config_changes),
            nodes=tuple(nodes.trial_nodes.get(trial.name, ()))))
    return LeaderboardInfo(params, rows, experiment.metric, nodes)


def short_value(value: Any, digits: int = 3) -> str:
    """A parameter's value to read: a float in ``digits`` significant digits (three for a changed
    value: a perturbation is a factor of 0.8 or 1.2), anything else as it is."""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def describe_config_changes(changes: list[dict[str, Any]]) -> str:
    """A trial's config changes mid-training, one clause each with the iteration it took effect."""
    clauses = []
    for change in changes:
        source = f" from {TRIAL_PREFIX}{change['from_trial']}" if change.get("from_trial") else ""
        values = ", ".join(f"{key} {short_value(old)}->{short_value(new)}"
                           for key, (old, new) in sorted(change.get("changes", {}).items()))
        clauses.append(f"it {change.get('iteration')}{source}: {values or 'same config'}")
    return "; ".join(clauses)


_METRICS = ((COND_ACCURACY, "acc", 3), (DIVERSITY_MIN, "div", 3), (COVERAGE, "cov", 3))
_CAS = ("final_cas", "CAS", 3)


def _metrics(info: LeaderboardInfo | None) -> tuple[tuple[str, str, int], ...]:
    """The score columns, the study's metric first: CAS too where a trial has it (final_cas = true)."""
    score = ("score", metric_label(info.metric if info is not None else FID_INTRA), 3)
    with_cas = info is not None and any(row.final_cas is not None for row in info.rows)
    return (score, *_METRICS, _CAS) if with_cas else (score, *_METRICS)


# What each score column means, as the header's tooltip and the legend under the table.
METRIC_HELP = {
    FID_INTRA: "intra-class Frechet distance in the judge's feature space, the mean over classes (lower is better)",
    FID: "Frechet distance in the judge's feature space over all classes together (lower is better)",
    COND_ACCURACY: "conditional accuracy: share of samples the judge assigns to the class they were drawn for "
                     "(higher is better)",
    DIVERSITY_MIN: "lowest per-class diversity ratio: spread of generated / spread of real samples "
                     "(1 = as varied as the data)",
    COVERAGE: "coverage (Naeem et al. 2020): share of real samples with a generated one in their "
                "nearest-neighbour ball (higher is better)",
    "final_cas": "Classification Accuracy Score (Ravuri & Vinyals 2019) at the last evaluation: accuracy on real "
                 "held-out faces of the judge's classifier trained on generated faces only (higher is better; "
                 "the judge's own accuracy is its ceiling)",
}


def metrics_legend(info: LeaderboardInfo | None = None) -> str:
    """One line under the ranking saying what the score (FD-intra by default), acc, div, cov (and CAS) are."""
    return "; ".join(f"<b>{escape(title)}</b>: {escape(_help(key, info))}" for key, title, _ in _metrics(info)) + "."


def _help(key: str, info: LeaderboardInfo | None) -> str:
    return METRIC_HELP[(info.metric if info is not None else FID_INTRA) if key == "score" else key]


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.2e}"
    return str(value)


def format_ranking(info: LeaderboardInfo, top: int | None = None) -> str:
    """The ranking as a terminal table."""
    rows = info.rows[:top] if top else info.rows
    cas = _CAS in _metrics(info)

    def cas_cell(value: str) -> str:
        return f" {value:>6}" if cas else ""

    # On several nodes, where each trial ran: short node ids, in order.
    where = ({row.name: ">".join(info.nodes.nodes_short(row.nodes)) or "-" for row in rows}
             if info.several_nodes else {})
    width = max(map(len, where.values()), default=0)

    def node_cell(name: str | None) -> str:
        return f" {where[name] if name else 'node':<{width}}" if where else ""

    names = {row.name: row.name + (f" ({preset_label(row.baseline, short=True)})" if row.baseline else "")
             for row in rows}
    name_width = max([22, *map(len, names.values())])  # a baseline's label: "trial_x (ref. recipe)"
    header = (f"{'#':>3} {'trial':<{name_width}} {'stop':<13}{node_cell(None)} {'iter':>7} {metric_label(info.metric):>9} {'acc':>6} "
              f"{'div':>6} {'cov':>6}{cas_cell('CAS')}  changes from the paper's V0")
    lines = [header]
    for row in rows:
        lines.append(f"{row.rank:>3} {names[row.name]:<{name_width}} {row.stop_reason:<13}{node_cell(row.name)} {row.iteration:>7} "
                     f"{_cell(row.score):>9} {_cell(row.cond_accuracy):>6} {_cell(row.diversity_min):>6} "
                     f"{_cell(row.coverage):>6}{cas_cell(_cell(row.final_cas))}  {row.changes or '-'}")
        if row.during:
            lines.append(f"{'':>4}config changes during training: {row.during}")
    if top and len(info.rows) > top:
        lines.append(f"... {len(info.rows) - top} more")
    return "\n".join(lines)


def leaderboard_html(info: LeaderboardInfo) -> str:
    """A sortable table (the dashboard's script sorts on a header click, by data-value).
    Every text from a trial folder is escaped."""
    heads = [("rank", "#", "num"), ("compare", "compare", "none"), ("name", "trial", "text"),
             (STOP_REASON, "stop reason", "text")]
    metrics = _metrics(info)
    heads += [(key, title, "num") for key, title, _ in metrics]
    heads += [("iteration", "iterations", "num"), ("time_s", "time (s)", "num")]
    heads += [("node", "node", "text")] if info.several_nodes else []
    heads += [("changes", "changes from the paper's V0", "text")]
    during = any(row.during for row in info.rows)  # a PBT study: when each trial's config changed
    if during:
        heads.append(("during", "config changes during training", "text"))
    # every parameter also has a column of its own, shown on request (too wide for a screen by default)
    heads += [(f"param:{key}", key, "mixed") for key in info.params]
    out = ['<table id="leaderboard" class="leaderboard"><thead><tr>']
    for key, title, kind in heads:
        sortable = ' class="sortable"' if kind != "none" else ""
        tooltip = f' title="{escape(_help(key, info))}"' if kind == "num" and key in (k for k, _, _ in metrics) else ""
        # long parameter names may break after an underscore, so their columns stay narrow
        text = escape(title).replace("_", "_<wbr>") if key.startswith("param:") else escape(title)
        column = ' data-param="1"' if key.startswith("param:") else ""
        out.append(f'<th data-key="{escape(key)}" data-kind="{kind}"{column}{sortable}{tooltip}>{text}</th>')
    out.append("</tr></thead><tbody>")
    for row in info.rows:
        classes = (["baseline"] + ([] if row.baseline in PAPER_PRESETS else ["reference"])) if row.baseline else []
        classes.append("healthy" if row.healthy else "unhealthy")
        out.append(f'<tr class="{" ".join(classes)}" data-trial="{escape(row.name)}">')
        out.append(f'<td data-value="{row.rank}">{row.rank}</td>')
        out.append(f'<td><input type="checkbox" class="compare" value="{escape(row.name)}" '
                   f'aria-label="compare {escape(row.name)}"></td>')
        mark = (f' <span class="mark" title="{escape(preset_label(row.baseline))}">'
                f'{escape(preset_label(row.baseline, short=True))}</span>') if row.baseline else ""
        out.append(f'<td data-value="{escape(row.name)}"><a href="#samples" class="pick">{escape(row.name)}</a>{mark}</td>')
        title = f' title="{escape(row.evidence)}"' if row.evidence else ""
        out.append(f'<td data-value="{escape(row.stop_reason)}"{title}>'
                   f'<span class="reason r-{escape(row.stop_reason)}">{escape(row.stop_reason)}</span></td>')
        for key, _, digits in metrics:
            value = getattr(row, key)
            out.append(f'<td data-value="{"" if value is None else repr(value)}">{_cell(value, digits)}</td>')
        out.append(f'<td data-value="{row.iteration}">{row.iteration}</td>')
        out.append(f'<td data-value="{"" if row.time_s is None else round(row.time_s, 1)}">'
                   f'{_cell(row.time_s, 0) if row.time_s is not None else "-"}</td>')
        if info.several_nodes:
            out.append(_node_cell(row, info.nodes))
        out.append(f'<td data-value="{escape(row.changes)}" class="changes">{escape(row.changes or "-")}</td>')
        if during:
            out.append(f'<td data-value="{escape(row.during)}" class="changes">{escape(row.during or "-")}</td>')
        for key in info.params:
            value = row.params.get(key)
            out.append(f'<td data-value="{escape("" if value is None else value)}" data-param="1">'
                       f'{escape(_cell(value))}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _node_cell(row: LeaderboardRow, nodes: NodesInfo) -> str:
    """The nodes a trial reported from (short ids, in order) and the last one's host; all in full on hover."""
    if not row.nodes:
        return '<td data-value="">-</td>'
    shorts = " > ".join(nodes.nodes_short(row.nodes))
    host = nodes.node(row.nodes[-1]).hostname
    title = "ran on " + ", then on ".join(
        f"node {node_id}" + (f" ({nodes.where(node_id)})" if nodes.where(node_id) else "") for node_id in row.nodes)
    # One node a line, the host under them: the column stays narrow beside the changes column.
    lines = " &gt;<br>".join(f"<code>{escape(short)}</code>" for short in nodes.nodes_short(row.nodes))
    host_html = f'<br><span class="host">{escape(host)}</span>' if host else ""
    return f'<td data-value="{escape(shorts)}" class="node" title="{escape(title)}">{lines}{host_html}</td>'
