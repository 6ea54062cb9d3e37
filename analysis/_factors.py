"""Why the others failed: the searched fields that separate the trials that worked (judge conditional
accuracy >= 0.5 at a report) from those that did not, each claim with the trials behind it.

Where no trial worked, the best quarter by the study's score stands in for the working ones (said
so). Unlike an importance figure, this needs no model of the score: it says what the trials were,
so it holds from a handful of trials on, and it says how few those are. A field is compared at the
value the trial ran with in effect: freezing D after more iterations than the trial ran is no
freezing, and an accuracy threshold D never passed is none (with 1200-iteration trials every
freeze_after of the default space was "off" in effect; on the shapes, freeze_accuracy 0.9 "in 3 of
the 5 best trials, 0 of the 16 others" was three trials whose D never froze).

Each claim carries its chance: how often a split at least as wide arises when the same values
are dealt to the trials at random (exact: the hypergeometric tail for a value, the permutation
distribution of Mann-Whitney's U for a number). A study compares a dozen fields, so a claim at
0.1 is what chance alone gives about once a study; claims above MOST_CHANCE are not made.
"""

from __future__ import annotations

import itertools
import math
import shlex
import statistics
from typing import Any, NamedTuple

from analysis._common import WORKING_ACCURACY, escape
from analysis._leaderboard import short_value
from analysis._reader import Experiment, TrialRecord, rank, rankable
from trainable.experiment import (COND_ACCURACY, ERROR, FREEZE_ACCURACY, FREEZE_EVENTS, FREEZE_RULES, judge_samples,
                                  reached_working, too_short)

SHOWN = 4  # factors at most
LEAST_SEPARATION = 0.3  # a factor that separates less is no claim
MOST_CHANCE = 0.2  # nor one that random dealing would give this often
_EXACT_DEALS = 5_000  # Mann-Whitney: every dealing up to this many, else the normal approximation


class Factor(NamedTuple):
    field: str
    claim: str  # "conditioning = projection in 3 of 3 working trials, 2 of 14 others"
    separation: float  # 0 (the same in both groups) .. 1 (no overlap)
    chance: float  # how often dealing the same values at random separates at least as much


class FactorsInfo(NamedTuple):
    good_label: str  # "working" or "best"
    basis: str  # what the groups are, with their counts
    good: list[str]
    rest: list[str]
    factors: list[Factor]  # least likely by chance first
    note: str  # why there are none, where there are none
    short: str = ""  # that most trials ran out of iterations still improving, where no trial worked
    lengthened: str = ""  # which trials the study lengthened (StudySearcher.length), where it did


def _trials(count: int, label: str) -> str:
    return f"{count} {label} trial{'' if count == 1 else 's'}"


def _points(experiment: Experiment) -> list[TrialRecord]:
    """The trials with reports, each point once: a trial another went on from at its end ([study]
    lengthen) is that one's start, which stands for the point trained on."""
    went_on = {trial.continues for trial in experiment.trials if trial.continues is not None}
    return [trial for trial in experiment.trials if trial.rows and trial.name not in went_on]


def _groups(experiment: Experiment) -> tuple[list[TrialRecord], list[TrialRecord], str, str]:
    trials = _points(experiment)
    good = [trial for trial in trials if reached_working(trial.rows)]
    label = "working"
    if good:
        basis = (f"{_trials(len(good), label)} (conditional accuracy >= {WORKING_ACCURACY} at a report) against "
                 f"the {len(trials) - len(good)} others")
    else:
        scored = [trial for trial in rank(trials) if rankable(trial)]  # the ranking's, as the summary's best
        good, label = scored[:max(1, len(trials) // 4)], "best"
        basis = (f"no trial worked: the best {len(good)} by {experiment.metric_label} against the "
                 f"{len(trials) - len(good)} others")
    names = {trial.name for trial in good}
    return good, [trial for trial in trials if trial.name not in names], label, basis


def _accuracies(trial: TrialRecord) -> list[float]:
    return [row[COND_ACCURACY] for row in trial.rows if isinstance(row.get(COND_ACCURACY), (int, float))]


def _samples(trial: TrialRecord) -> int | None:
    return judge_samples(trial.last, trial.params.get("eval_samples_per_class"))


class ShortTrials(NamedTuple):
    ended: list[TrialRecord]  # the searched trials that ran all their iterations
    rising: list[TrialRecord]  # those of them still improving at their end, best ranked first
    ranks: list[int]  # the rising ones' ranks in the study's ranking (1 = best)
    length: int  # the longest of the ended trials' lengths


def short_trials(experiment: Experiment) -> ShortTrials | None:
    """The searched trials still improving at the end of their iterations, where they are too
    short (``trainable.experiment.too_short``: at least two, and half of those that ran all their
    iterations); else None. Whether any trial worked is the caller's to ask."""
    ended = [trial for trial in _points(experiment) if trial.stop_reason != ERROR and not trial.baseline
             and isinstance(trial.params.get("iterations"), int)
             and trial.last.get("iteration", 0) >= trial.params["iterations"]]
    names = set(too_short({trial.name: (_accuracies(trial), _samples(trial)) for trial in ended}))
    if not names:
        return None
    rising = [trial for trial in ended if trial.name in names]
    position = {trial.name: index for index, trial in enumerate(rank(experiment.trials), 1)}
    rising.sort(key=lambda trial: position[trial.name])
    return ShortTrials(ended, rising, [position[trial.name] for trial in rising],
                       max(trial.params["iterations"] for trial in ended))


def _too_short(experiment: Experiment) -> str:
    """``short_trials`` as a sentence, with the command that goes on with the best of them
    (``trial --continue``). Called only where no trial worked."""
    short = short_trials(experiment)
    if short is None:
        return ""
    lengths = {trial.params["iterations"] for trial in short.ended}
    length = f"{short.length} " if len(lengths) == 1 else ""
    accuracies = [_accuracies(trial)[-1] for trial in short.rising]
    return (f"{len(short.rising)} of the {len(short.ended)} searched trials that ran all their {length}iterations were "
            f"still improving at their end (conditional accuracy at its highest in their last report: "
            f"{min(accuracies):.2f}-{max(accuracies):.2f}): longer trials ([fixed] iterations = {2 * short.length}, "
            f"say) may reach {WORKING_ACCURACY}; the best of them goes on from where it ended with: cgan-study trial "
            f"--from {shlex.quote(str(experiment.path))} --rank {short.ranks[0]} --continue --set iterations={2 * short.length}")


def lengthened_trials(experiment: Experiment) -> tuple[int | None, list[TrialRecord]]:
    """(the study's fixed trial length where it is not searched, else None; the searched trials that
    ran longer than it: the study lengthened them, [study] lengthen)."""
    study = (experiment.study or {}).get("spec") or {}
    fixed = (study.get("fixed") or {}).get("iterations") if "iterations" not in (study.get("search") or {}) else None
    if not isinstance(fixed, int):
        return None, []
    return fixed, [trial for trial in experiment.trials if not trial.baseline
                   and isinstance(trial.params.get("iterations"), int) and trial.params["iterations"] > fixed]


def _lengthened(experiment: Experiment) -> str:
    """``lengthened_trials`` as a sentence; "" where none ran longer."""
    fixed, longer = lengthened_trials(experiment)
    if not longer:
        return ""
    lengths = "/".join(str(length) for length in sorted({trial.params["iterations"] for trial in longer}))
    going_on = next((trial for trial in longer if trial.continues is not None), None)
    went = f" ({going_on.name} going on from the end of {going_on.continues})" if going_on else ""
    return (f"{len(longer)} searched trial{'s' if len(longer) > 1 else ''}{went} ran {lengths} iterations, not {fixed}: the "
            f"study lengthened the trials it started once none had worked and those that had run all their {fixed} "
            f"were mostly still improving ([study] lengthen; the collapse verdict's grace in proportion); "
            f"{sum(reached_working(trial.rows) for trial in longer)} of them worked. The fields "
            f"compared here do not count the length")


def _effective(field: str, value: Any, trial: TrialRecord) -> Any:
    """The value ``trial`` ran with in effect: a freeze rule that never froze D is no freeze rule."""
    if field == "freeze_after":
        reached = max((row["iteration"] for row in trial.rows if isinstance(row.get("iteration"), int)), default=0)
        if not isinstance(value, (int, float)) or value >= reached:
            return "off"
    if field == "freeze_accuracy" and all(isinstance(row.get(FREEZE_EVENTS), list) for row in trial.rows):
        # Every report lists the freezes since the one before.
        if not any(_froze_on_accuracy(event) for row in trial.rows for event in row[FREEZE_EVENTS]):
            return "off"
    return value


def _froze_on_accuracy(event: Any) -> bool:
    """Whether a freeze event is D frozen by the accuracy threshold: its rules say so, or, in events
    written before they named their rules, its reason's text (as trainable/freeze.py words it)."""
    if not isinstance(event, dict) or event.get("event") != "freeze":
        return False
    rules = event.get(FREEZE_RULES)
    return FREEZE_ACCURACY in rules if isinstance(rules, list) else "D accuracy" in str(event.get("reason"))


def _categorical(field: str, good: list[Any], rest: list[Any], label: str) -> Factor:
    best_value, best_gap = None, -1.0
    for value in dict.fromkeys(good):
        gap = good.count(value) / len(good) - rest.count(value) / len(rest)
        if gap > best_gap:
            best_value, best_gap = value, gap
    claim = (f"{field} = {short_value(best_value)} in {good.count(best_value)} of the {_trials(len(good), label)}, "
             f"{rest.count(best_value)} of the {len(rest)} others")
    # The hypergeometric tail: at least this many of the value's trials among the good ones.
    total, hit = len(good) + len(rest), good.count(best_value)
    having = hit + rest.count(best_value)
    chance = sum(math.comb(having, k) * math.comb(total - having, len(good) - k)
                 for k in range(hit, min(having, len(good)) + 1)) / math.comb(total, len(good))
    return Factor(field, claim, max(best_gap, 0.0), chance)


def _u_statistic(good: list[float], rest: list[float]) -> float:
    """Mann-Whitney's U of ``good`` over ``rest``: pairs where the good value is above, ties half."""
    return sum((g > r) + 0.5 * (g == r) for g in good for r in rest)


def _u_chance(good: list[float], rest: list[float]) -> float:
    """Two-sided: how often a random split of the values into groups of these sizes has a U at
    least as far from the middle."""
    values, size, middle = good + rest, len(good), len(good) * len(rest) / 2
    seen = abs(_u_statistic(good, rest) - middle)
    if math.comb(len(values), size) <= _EXACT_DEALS:
        deals = [abs(_u_statistic([values[i] for i in chosen], [values[i] for i in range(len(values)) if i not in chosen])
                     - middle) for chosen in map(set, itertools.combinations(range(len(values)), size))]
        return sum(deal >= seen - 1e-9 for deal in deals) / len(deals)
    spread = math.sqrt(len(good) * len(rest) * (len(values) + 1) / 12)
    return math.erfc(max(seen - 0.5, 0.0) / spread / math.sqrt(2))


def _numeric(field: str, good: list[float], rest: list[float], label: str) -> Factor:
    # The chance that a good trial's value lies above another's (Mann-Whitney), as a spread from 0.5.
    above = _u_statistic(good, rest) / (len(good) * len(rest))

    def span(values: list[float]) -> str:
        if min(values) == max(values):
            return short_value(values[0])
        return (f"{short_value(min(values))}-{short_value(max(values))} (median "
                f"{short_value(statistics.median(values))})")
    claim = f"{field} {span(good)} in the {_trials(len(good), label)}, {span(rest)} in the {len(rest)} others"
    return Factor(field, claim, abs(2 * above - 1), _u_chance(good, rest))


def get_factors_info(experiment: Experiment) -> FactorsInfo:
    """The fields that separate the working (or best) trials from the others, least likely by chance first."""
    search = experiment.search
    if not search:
        return FactorsInfo("", "", [], [], [], "needs a study (a single trial has nothing to compare)")
    good, rest, label, basis = _groups(experiment)
    names = ([t.name for t in good], [t.name for t in rest])
    short = _too_short(experiment) if label == "best" else ""  # "best": no trial worked (_groups)
    lengthened = _lengthened(experiment)
    if not good or not rest:
        return FactorsInfo(label, basis, *names, [], "needs trials on both sides to compare", short, lengthened)
    factors = []
    for field, domain in search.items():
        good_values = [_effective(field, t.params[field], t) for t in good if field in t.params]
        rest_values = [_effective(field, t.params[field], t) for t in rest if field in t.params]
        if not good_values or not rest_values:
            continue
        values = good_values + rest_values
        numeric = hasattr(domain, "low") and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        factors.append((_numeric if numeric else _categorical)(field, good_values, rest_values, label))
    factors.sort(key=lambda factor: (factor.chance, -factor.separation))
    shown = [factor for factor in factors
             if factor.separation >= LEAST_SEPARATION and factor.chance <= MOST_CHANCE][:SHOWN]
    note = "" if shown else (f"no searched field separates the {label} trials from the others more than "
                             f"dealing its values at random would ({len(good) + len(rest)} trials)")
    return FactorsInfo(label, basis, *names, shown, note, short, lengthened)


def format_factors(info: FactorsInfo) -> list[str]:
    """The summary's lines: the groups, then a line per factor; that the trials were too short, where
    they were."""
    short = ([f"too short: {info.short}"] if info.short else []) + ([f"lengthened: {info.lengthened}"]
                                                                   if info.lengthened else [])
    if not info.factors:
        return [f"why: {info.note}" + (f" ({info.basis})" if info.basis else "")] + short
    return ([f"why ({info.basis}; chance: how often dealing the values at random splits as wide):"]
            + [f"  {factor.claim} (chance {factor.chance:.2g})" for factor in info.factors] + short)


def factors_html(info: FactorsInfo) -> str:
    short = ((f"<p><b>Too short:</b> {escape(info.short)}.</p>" if info.short else "")
             + (f"<p><b>Lengthened:</b> {escape(info.lengthened)}.</p>" if info.lengthened else ""))
    if not info.factors:
        return (f'<p class="note">{escape(info.note)}{" (" + escape(info.basis) + ")" if info.basis else ""}</p>'
                + short)
    items = "".join(f"<li>{escape(factor.claim)} <span class=\"note\">(separation {factor.separation:.2f}, "
                    f"chance {factor.chance:.2g})</span></li>" for factor in info.factors)
    return (f"<p>What separated them: {escape(info.basis)}. Separation 1: no overlap between the groups, 0: the "
            f"same in both. Chance: how often dealing the same values to the trials at random separates them at "
            f"least as much; with a dozen fields compared, one claim at 0.1 is what chance alone gives.</p>"
            f"<ul class=\"factors\">{items}</ul>{short}")
