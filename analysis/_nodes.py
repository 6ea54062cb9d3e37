"""Where trials ran: each report's Ray node (its id, host and IP), per node and per trial.

Ray's node id is the only name that tells two nodes of one machine apart; hostname and IP are
shown beside it. A trial that ran on more than one node was retried elsewhere, after the node
it ran on died (a table, not a plot).
"""

from __future__ import annotations

from typing import NamedTuple

from analysis._common import escape
from analysis._reader import Experiment, finite
from trainable.experiment import HOSTNAME, NODE_ID, NODE_IP

SHORT = 8  # hex digits of a node id shown, more only where two ids share them


class NodeRow(NamedTuple):
    node_id: str
    short: str  # the id's first SHORT hex digits (more where needed to tell it apart)
    hostname: str  # "" where the reports do not say
    node_ip: str
    trials: list[str]  # trials with at least one report from this node, in the order they first reported
    reports: int


class NodesInfo(NamedTuple):
    nodes: list[NodeRow]  # in the order of their first report
    trial_nodes: dict[str, list[str]]  # trial -> the node ids it reported from, in order (a repeat only after a move)

    @property
    def moved(self) -> list[str]:
        """Trials that ran on more than one node."""
        return [name for name, nodes in self.trial_nodes.items() if len(nodes) > 1]

    def node(self, node_id: str) -> NodeRow:
        return next(node for node in self.nodes if node.node_id == node_id)

    def where(self, node_id: str) -> str:
        """A node's host and IP ("" where the reports do not say)."""
        node = self.node(node_id)
        return ", ".join(part for part in (node.hostname, node.node_ip) if part)

    def label(self, node_id: str) -> str:
        """A node in a few words: short id, host and IP."""
        where = self.where(node_id)
        return f"{self.node(node_id).short} ({where})" if where else self.node(node_id).short

    def nodes_short(self, node_ids: tuple[str, ...] | list[str]) -> list[str]:
        return [self.node(node_id).short for node_id in node_ids]


def short_ids(node_ids: list[str]) -> dict[str, str]:
    """Each id's first SHORT characters, or as many more as it takes to tell all of them apart."""
    length = SHORT
    while length < max(map(len, node_ids), default=0) and len({i[:length] for i in node_ids}) < len(set(node_ids)):
        length += 1
    return {node_id: node_id[:length] for node_id in node_ids}


def _node_of(row: dict) -> str | None:
    node = row.get(NODE_ID)
    return node if isinstance(node, str) and node else None


def get_nodes_info(experiment: Experiment) -> NodesInfo:
    """Reports without a node id (a local trial, a study from before reports carried one) are left out."""
    trial_nodes: dict[str, list[str]] = {}
    for trial in experiment.trials:  # each trial's nodes in its own order of reports
        path = [node for node in map(_node_of, trial.rows) if node]
        if path:
            trial_nodes[trial.name] = [node for i, node in enumerate(path) if i == 0 or node != path[i - 1]]
    # Nodes in the order of their first report by the clock (a report without a time counts as first).
    reports = sorted(((finite(row.get("timestamp")) or 0.0, trial.name, row) for trial in experiment.trials
                      for row in trial.rows if _node_of(row)), key=lambda report: report[0])
    seen: dict[str, dict] = {}
    for _, name, row in reports:
        node = seen.setdefault(row[NODE_ID], {"hostname": "", "node_ip": "", "trials": [], "reports": 0})
        node["hostname"] = str(row.get(HOSTNAME) or node["hostname"])
        node["node_ip"] = str(row.get(NODE_IP) or node["node_ip"])
        node["reports"] += 1
        if name not in node["trials"]:
            node["trials"].append(name)
    shorts = short_ids(list(seen))
    return NodesInfo([NodeRow(node_id, shorts[node_id], node["hostname"], node["node_ip"], node["trials"],
                              node["reports"]) for node_id, node in seen.items()], trial_nodes)


def nodes_html(info: NodesInfo) -> str:
    """One row per node, then the trials that moved from one node to another. Text is escaped."""
    if not info.nodes:
        return "<p>The reports do not say which Ray node they came from.</p>"
    moved = set(info.moved)
    out = ['<table id="nodes" class="config"><tr><th>node</th><th>host</th><th>IP</th><th>trials</th>'
           '<th>reports</th><th>of them moved</th></tr>']
    for node in info.nodes:
        out.append(f'<tr><td title="{escape(node.node_id)}"><code>{escape(node.short)}</code></td>'
                   f"<td>{escape(node.hostname or '-')}</td><td>{escape(node.node_ip or '-')}</td>"
                   f"<td>{len(node.trials)}</td><td>{node.reports}</td>"
                   f"<td>{sum(1 for name in node.trials if name in moved)}</td></tr>")
    out.append("</table>")
    if moved:
        items = "".join(f"<li>{escape(name)}: {' &rarr; '.join(escape(info.label(n)) for n in info.trial_nodes[name])}"
                        f"</li>" for name in info.moved)
        out.append(f'<p class="note">{len(moved)} trial(s) ran on more than one node: each went on from its last '
                   f'checkpoint where Ray started it again (after its node died or its worker failed, or a pause).</p>'
                   f'<ul id="moved">{items}</ul>')
    return "".join(out)
