"""Why the others failed: the searched fields that separate the trials that worked (judge conditional
accuracy >= 0.5 at a report) from those that did not, each claim with the trials behind it.

Where no trial worked, the best quarter by the study's score stands in for the working ones (said
so). Unlike an importance figure, this needs no model of the score: it says what the trials were,
so it holds from a handful of trials on, and it says how few those are.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, NamedTuple

from analysis._common import WORKING_ACCURACY, escape
from analysis._leaderboard import short_value
from analysis._reader import Experiment, TrialRecord
from trainable.experiment import COND_ACCURACY

SHOWN = 4  # factors at most
LEAST_SEPARATION = 0.3  # a factor that separates less is no claim


class Factor(NamedTuple):
    field: str
    claim: str  # "conditioning = projection in 3 of 3 working trials, 2 of 14 others"
    separation: float  # 0 (the same in both groups) .. 1 (no overlap)


class FactorsInfo(NamedTuple):
    good_label: str  # "working" or "best"
    basis: str  # what the groups are, with their counts
    good: list[str]
    rest: list[str]
    factors: list[Factor]  # most separating first
    note: str  # why there are none, where there are none


def _trials(count: int, label: str) -> str:
    return f"{count} {label} trial{'' if count == 1 else 's'}"


def _worked(trial: TrialRecord) -> bool:
    return any(isinstance(row.get(COND_ACCURACY), (int, float)) and row[COND_ACCURACY] >= WORKING_ACCURACY
               for row in trial.rows)


def _groups(experiment: Experiment) -> tuple[list[TrialRecord], list[TrialRecord], str, str]:
    trials = [trial for trial in experiment.trials if trial.rows]
    good = [trial for trial in trials if _worked(trial)]
    label = "working"
    if good:
        basis = (f"{_trials(len(good), label)} (conditional accuracy >= {WORKING_ACCURACY} at a report) against "
                 f"the {len(trials) - len(good)} others")
    else:
        scored = sorted((trial for trial in trials if trial.healthy), key=lambda trial: trial.score)
        good, label = scored[:max(1, len(trials) // 4)], "best"
        basis = (f"no trial worked: the best {len(good)} by {experiment.metric_label} against the "
                 f"{len(trials) - len(good)} others")
    names = {trial.name for trial in good}
    return good, [trial for trial in trials if trial.name not in names], label, basis


def _categorical(field: str, good: list[Any], rest: list[Any], label: str) -> Factor:
    best_value, best_gap = None, -1.0
    for value in dict.fromkeys(good):
        gap = good.count(value) / len(good) - rest.count(value) / len(rest)
        if gap > best_gap:
            best_value, best_gap = value, gap
    claim = (f"{field} = {short_value(best_value)} in {good.count(best_value)} of the {_trials(len(good), label)}, "
             f"{rest.count(best_value)} of the {len(rest)} others")
    return Factor(field, claim, max(best_gap, 0.0))


def _numeric(field: str, good: list[float], rest: list[float], label: str) -> Factor:
    # The chance that a good trial's value lies above another's (Mann-Whitney), as a spread from 0.5.
    above = sum((g > r) + 0.5 * (g == r) for g in good for r in rest) / (len(good) * len(rest))

    def span(values: list[float]) -> str:
        if min(values) == max(values):
            return short_value(values[0])
        return (f"{short_value(min(values))}-{short_value(max(values))} (median "
                f"{short_value(statistics.median(values))})")
    claim = f"{field} {span(good)} in the {_trials(len(good), label)}, {span(rest)} in the {len(rest)} others"
    return Factor(field, claim, abs(2 * above - 1))


def get_factors_info(experiment: Experiment) -> FactorsInfo:
    """The fields that separate the working (or best) trials from the others, most separating first."""
    search = experiment.search
    if not search:
        return FactorsInfo("", "", [], [], [], "needs a study (a single trial has nothing to compare)")
    good, rest, label, basis = _groups(experiment)
    names = ([t.name for t in good], [t.name for t in rest])
    if not good or not rest:
        return FactorsInfo(label, basis, *names, [], "needs trials on both sides to compare")
    factors = []
    for field, domain in search.items():
        good_values = [t.params[field] for t in good if field in t.params]
        rest_values = [t.params[field] for t in rest if field in t.params]
        if not good_values or not rest_values:
            continue
        values = good_values + rest_values
        numeric = hasattr(domain, "low") and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        factors.append((_numeric if numeric else _categorical)(field, good_values, rest_values, label))
    factors.sort(key=lambda factor: -factor.separation)
    shown = [factor for factor in factors if factor.separation >= LEAST_SEPARATION][:SHOWN]
    note = "" if shown else f"no searched field separates the {label} trials from the others"
    return FactorsInfo(label, basis, *names, shown, note)


def format_factors(info: FactorsInfo) -> list[str]:
    """The summary's lines: the groups, then a line per factor."""
    if not info.factors:
        return [f"why: {info.note}" + (f" ({info.basis})" if info.basis else "")]
    return [f"why ({info.basis}):"] + [f"  {factor.claim}" for factor in info.factors]


def factors_html(info: FactorsInfo) -> str:
    if not info.factors:
        return f'<p class="note">{escape(info.note)}{" (" + escape(info.basis) + ")" if info.basis else ""}</p>'
    items = "".join(f"<li>{escape(factor.claim)} <span class=\"note\">(separation {factor.separation:.2f})</span></li>"
                    for factor in info.factors)
    return (f"<p>What separated them: {escape(info.basis)}. Separation 1: no overlap between the groups, 0: the "
            f"same in both.</p><ul class=\"factors\">{items}</ul>")
