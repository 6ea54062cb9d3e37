"""Warm start: the finished trials of an earlier study, given to a new study's sampler before its
first draw (Optuna's ``Study.add_trials``), so that what one study learnt guides the next, on the
same data with another budget or on a new data set.

An earlier trial enters as the study's own searcher tells a trial (study/_search.py): COMPLETE
with its last score, or, stopped early by ASHA, with that score projected to a whole trial by the
earlier study's learning curves; a collapse PRUNED and infeasible; its reports as intermediate values
at Tune's report steps. Only points of the new space count: a trial whose searched value lies outside the new
space, or whose GAN differs in a field the new study fixes (a loss, the widths), trained something
the new study cannot draw and is left out, with the count said. Scores are taken as they were: on
another data set they are on that set's scale (TPE ranks trials by score).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from study._search import COLLAPSE_CONSTRAINT, WARM_START, WORKED_HERE, projected_score, score_at_length
from study.spec import StudySpec
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.experiment import (COLLAPSES, COMPLETED, DIVERSITY_MEAN, EARLY, RUN_FIELDS, WORKING_ACCURACY, read_study,
                                  reached_working)
from trainable.tune_adapter import score_of

SOURCE_TRIAL = "source_trial"  # the user attribute of a warm-start trial: its trial folder in the earlier study
SOURCE_STOP = "source_stop_reason"  # ... and why it ended there


@dataclasses.dataclass(frozen=True)
class WarmStart:
    source: str  # the earlier study's folder
    trials: tuple[Any, ...]  # optuna FrozenTrials, ready for Study.add_trials
    left_out: dict[str, int]  # why earlier trials were left out: count per reason
    stopped_early: int = 0  # of the trials, those ASHA or a collapse stopped
    data: str = ""  # the data set the earlier study ran on (its study.json)

    def describe(self, data: str = "") -> str:
        """What the study says of it; ``data``: the new study's data set, where a note is needed."""
        text = (f"warm start: {len(self.trials)} finished trials of {self.source} "
                f"({len(self.trials) - self.stopped_early} ran to their end, {self.stopped_early} were stopped early) "
                "given to the sampler")
        if worked := sum(bool(trial.user_attrs.get(WORKED_HERE)) for trial in self.trials):
            text += (f"; {worked} of them reached conditional accuracy {WORKING_ACCURACY} on this data within this "
                     "study's trial length")
        if self.left_out:
            text += "; left out: " + ", ".join(f"{count} {reason}" for reason, count in sorted(self.left_out.items()))
        if _same_data(data, self.data) is False:
            # Measured: warm-started from the built-in set, three studies of the shapes drew [0,1] in all 40
            # searched trials, as the earlier study's best had, and found none working (docs/search.md).
            text += (f"\nnote: that study ran on other data ({self.data}): its scores are on that set's scale, and "
                     "the sampler compares them with this study's as they are, so it keeps drawing near its best "
                     "trials where those score better than this set allows (and shuns them where they score worse)")
        return text

    def to_dict(self) -> dict[str, Any]:
        """What study.json records of it."""
        return {"source": self.source, "trials": len(self.trials), "left_out": dict(self.left_out)}


def _curve(record, metric: str) -> dict[int, float]:
    """A trial's scores by Tune's report count, the step a study's searcher records them at."""
    return {row.get("training_iteration", index): score_of(row, metric)
            for index, row in enumerate(record.rows, start=1) if isinstance(row.get("iteration"), int)}


def _whole_trial(experiment: Any, curves: dict[str, dict[int, float]]) -> tuple[int | None, int]:
    """(the earlier study's fixed length where it was not searched, else None; a whole trial's
    reports). The trials it lengthened ([study] lengthen) are told at its fixed length, as its searcher
    told them, and a whole trial's reports are those of the others."""
    from analysis import lengthened_trials

    length, longer = lengthened_trials(experiment)
    lengthened = {record.name for record in longer}
    return length, max((max(curve) for name, curve in curves.items() if curve and name not in lengthened), default=0)


def _told(rows: list[dict[str, Any]], length: Any, metric: str) -> float:
    """A finished trial's score as its study's searcher told it: at the study's fixed length where the
    study lengthened it (``score_at_length``), else its last."""
    longer = isinstance(length, int) and rows[-1]["iteration"] > length
    at_length = score_at_length({row["iteration"]: score_of(row, metric) for row in rows}, length) if longer else None
    return score_of(rows[-1], metric) if at_length is None else at_length


def _fixed_differently(params: dict[str, Any], spec: StudySpec) -> str | None:
    """The first field of the GAN that the new study fixes and the earlier trial had otherwise."""
    base = spec.base_config()
    for field in dataclasses.fields(TrainConfig):
        key = field.name
        if key in spec.search or key in RUN_FIELDS or key not in params:
            continue
        try:
            value = getattr(TrainConfig.from_dict({key: params[key]}), key)
        except Exception:  # noqa: BLE001 - a value this version cannot read is a difference too
            return key
        if value != getattr(base, key):
            return key
    return None


def _left_out(record: Any, rows: list[dict[str, Any]], spec: StudySpec) -> tuple[str, str] | None:
    """Why an earlier trial is left out (the reason counted, an example value to show, or ""), or None."""
    if record.stop_reason not in (COMPLETED, *EARLY) or not rows:
        return "unfinished or failed", ""
    if record.continues is not None:  # its point is that of the trial it went on from, told once
        return "going on from another trial's end", ""
    outside = [key for key, domain in spec.search.items()
               if key not in record.params or not domain.contains(record.params[key])]
    if outside:
        return "outside this search space", f"{record.name}: {outside[0]}={record.params.get(outside[0])!r}"
    differs = _fixed_differently(record.params, spec)
    if differs is not None:
        return f"with {differs} other than this study fixes", f"{record.name}: {differs}={record.params.get(differs)!r}"
    return None


def _same_data(new: str, earlier: str) -> bool | None:
    """Whether the new study runs on the earlier one's data set; None where either is not known."""
    return new == earlier if new and earlier else None


def warm_start_trials(source_dir: Path, spec: StudySpec, data: str = "") -> WarmStart:
    """The earlier study's finished trials that are points of ``spec``'s space, as Optuna trials;
    ``data``: the new study's data set (where it is the earlier study's, each trial says whether it
    worked within the new study's trial length: WORKED_HERE)."""
    import optuna

    from analysis import read_experiment

    study = read_study(source_dir)
    if study is None:
        raise UserError(f"--warm-start {source_dir}: not a study folder (no study.json)")
    experiment = read_experiment(source_dir)
    distributions = spec.distributions()
    trials, left_out, example = [], Counter(), ""
    # (by report: not of a trial that went on from another's end, whose reports begin there, as its searcher)
    curves = {record.name: _curve(record, spec.metric) for record in experiment.trials if record.continues is None}
    length, final = _whole_trial(experiment, curves)
    earlier_data = str(study.get("data") or "")
    same_data = _same_data(data, earlier_data) is True
    for record in experiment.trials:
        rows = [row for row in record.rows if isinstance(row.get("iteration"), int)]
        if (why := _left_out(record, rows, spec)) is not None:
            left_out[why[0]] += 1
            example = example or why[1]
            continue
        values: Any
        if spec.multi_objective:
            diversity = rows[-1].get(DIVERSITY_MEAN)
            if record.stop_reason != COMPLETED or not isinstance(diversity, (int, float)):
                left_out["without both objectives"] += 1
                continue
            values, intermediate = [score_of(rows[-1], spec.metric), float(diversity)], None
        else:
            # As the study's own searcher tells its trials (study._search): a collapse pruned, a trial
            # stopped early by its score projected to a whole trial with the earlier study's curves.
            intermediate = curves[record.name]
            values = None if record.stop_reason in COLLAPSES else [
                projected_score(intermediate, curves.values(), final) if record.stop_reason in EARLY
                else _told(rows, length, spec.metric)]
        state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.PRUNED
        trials.append(optuna.trial.create_trial(
            state=state, values=values, params={key: record.params[key] for key in spec.search},
            distributions=distributions, intermediate_values=intermediate,
            user_attrs={WARM_START: str(source_dir), SOURCE_TRIAL: record.name, SOURCE_STOP: record.stop_reason,
                        **({WORKED_HERE: reached_working(rows, spec.base_config().iterations)} if same_data else {})},
            system_attrs={f"constraints:{COLLAPSE_CONSTRAINT}": 1.0 if record.stop_reason in COLLAPSES else -1.0}))
    if not trials:
        why = ", ".join(f"{count} {reason}" for reason, count in sorted(left_out.items())) or "no trials"
        raise UserError(f"--warm-start {source_dir}: no finished trial there is a point of this study's space "
                        f"({why}{'; e.g. ' + example if example else ''})")
    early = sum(trial.user_attrs[SOURCE_STOP] in EARLY for trial in trials)
    return WarmStart(str(source_dir), tuple(trials), dict(left_out), early, earlier_data)
