"""The Optuna searcher, made to agree with why trials ended."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

from optuna.samplers import BaseSampler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from study._stopping import StopLedger, _mutation
from study.spec import StudySpec, define_by_run
from trainable.experiment import (COLLAPSES, COND_ACCURACY, CONTINUES, DIVERSITY_MEAN, EARLY, SCORE, STOP_REASON,
                                  WORKING_ACCURACY, judge_samples, too_short, trial_dir_name,
                                  trial_params)
from trainable.space import Choice, Domain, Range

# An Optuna constraint (Trial.set_constraint; > 0 is infeasible): a collapse is no bad score to
# interpolate between but a region to leave, and TPE puts infeasible trials in its "bad" group
# whatever their score (Optuna's constrained TPE).
COLLAPSE_CONSTRAINT = "collapse"
# The user attribute of an Optuna trial that an earlier study ran (study/_warm_start.py): its folder.
WARM_START = "warm_start"
# ... and, where that study ran on the same data, whether the trial reached WORKING_ACCURACY within this
# study's trial length (then the length suffices: the study does not lengthen its trials)
WORKED_HERE = "worked_on_this_data"
SLOTS_EVERY_S = 10.0  # how often the searcher asks Ray how many trials fit at once (StudySearcher._holds_back)
# Draws of the sampler for a point no trial has run before one is picked at random among those
# (TPE keeps proposing the best point of a small all-choice space, whatever its random state).
SAMPLER_REDRAWS = 10


class StudySearcher(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials stopped early (ASHA or collapse), and
    marks collapsed ones infeasible.

    Ray reports such trials to Optuna as COMPLETE with their last score, which would let
    the sampler learn from a truncated or collapsed run as if it had finished.
    """

    def __init__(self, *args, experiment_dir: str | Path, warm_start: tuple[Any, ...] = (), storage_uri: str = "",
                 trial_resources: Any = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._experiment_dir = str(experiment_dir)
        self._storage_uri = storage_uri or self._experiment_dir  # where the trials' checkpoints are
        self._trial_resources = trial_resources  # a trial's (study._session.Resources): how many fit at once
        self._fill_state()
        # An earlier study's finished trials, before the first draw (saved with the rest: a resumed
        # study's sampler has them without reading the earlier study again). One that worked on this
        # data within this study's trial length counts as a trial that worked: the length suffices.
        self._ot_study.add_trials(warm_start)
        self._worked = self._worked or any(trial.user_attrs.get(WORKED_HERE) for trial in warm_start)

    def _fill_state(self) -> None:
        """The searcher's own state, saved with Optuna's (``save``): what a searcher saved by an earlier
        version lacks is filled in (``restore``, and Tune's unpickling of the Tuner's searcher)."""
        defaults: dict[str, Callable[[], Any]] = {
            # every point suggested; None until the first suggestion, and in a searcher saved before it
            # kept them (rebuilt from its Optuna study then)
            "_points": lambda: None,
            "_reached": dict,  # the training iteration each trial has reached: the study's spent budget
            "_live": dict,  # trials suggested, not ended -> their length
            "_began": dict,  # a trial going on from another's end -> the iteration it began at
            "_searched": set,  # trials the sampler drew (not the baselines and given points)
            "_params": dict,  # a searched trial -> its point
            "_ended": list,  # searched trials that ran all their iterations, in the order they ended
            "_curves": dict,  # trial -> {report: score} (not one going on from another's end)
            "_accuracies": dict,  # trial -> {report: conditional accuracy}
            "_scores": dict,  # trial -> {training iteration: score}
            "_samples": dict,  # trial -> the samples its conditional accuracy is measured on (judge_samples)
            "_length": lambda: None,  # the lengthened trial length (_decide_length), once it is
            "_continue": lambda: None,  # the trial the next one goes on from, once the rule fired
            "_budget_said": bool,
            "_storage_uri": lambda: self._experiment_dir,
            "_trial_resources": lambda: None,
            "_slots": int, "_slots_at": float,
            # whether a trial has reported WORKING_ACCURACY (set by _record; asked on each of Tune's
            # polls while the study holds back): in a searcher saved before the flag, from its curves
            "_worked": lambda: any(value >= WORKING_ACCURACY for curve in self._accuracies.values()
                                   for value in curve.values()),
        }
        for key, default in defaults.items():
            if key not in self.__dict__:
                setattr(self, key, default())

    def restore(self, checkpoint_path: str) -> None:
        self.__dict__.pop("_worked", None)  # from the saved curves where the saved state has no flag
        super().restore(checkpoint_path)
        self._fill_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_experiment_dir" in state:
            self._fill_state()

    @property
    def spent(self) -> int:
        """Training iterations the study's trials have trained so far (the budget's measure): a trial that
        goes on from another's end counts from there."""
        return sum(self._reached.values()) - sum(self._began.values())

    def _may_still_train(self) -> int:
        """Iterations the live trials (suggested, not ended) may still train, each to its full length."""
        return sum(max(0, length - self._reached.get(trial_id, 0)) for trial_id, length in self._live.items())

    def _budget_waits(self) -> bool:
        """Whether a new trial must wait under a budget: while the live trials may still train the rest
        of it. Tune asks for trials ahead of free slots (as many as the slots); created on the mere
        fact that the budget was not spent yet, they started after it was (up to 2,400 iterations past
        a 12,000 budget at 2 slots, seen: random search, seed 2, a trial started at 12,000 of 12,000).
        When a live trial ends (ASHA cuts most early), Tune asks again and the room is counted anew."""
        budget = self._space.spec.budget
        return bool(budget) and bool(self._live) and self.spent + self._may_still_train() >= budget

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._began:  # (one going on from another's end has no Optuna trial)
            super().on_trial_result(trial_id, result)
        self._record(trial_id, result)

    def _record(self, trial_id: str, result: dict | None) -> None:
        """The trial's curves of scores and of conditional accuracy by report (Tune's
        training_iteration), and its training iteration."""
        result = result or {}
        step, iteration = result.get("training_iteration"), result.get("iteration")
        # (_curves, a whole trial's scores by report, projects the early-stopped: not from a trial that
        # goes on from another's end, whose reports begin there)
        going_on = trial_id in self._began
        for key, at, curves in ((SCORE, None if going_on else step, "_curves"), (COND_ACCURACY, step, "_accuracies"),
                                (SCORE, iteration, "_scores")):  # _scores: by training iteration
            value = result.get(key)
            if isinstance(at, int) and isinstance(value, (int, float)) and math.isfinite(value):
                getattr(self, curves).setdefault(trial_id, {})[at] = float(value)
        if isinstance(value := result.get(COND_ACCURACY), (int, float)) and value >= WORKING_ACCURACY:
            self._worked = True
        if trial_id not in self._samples:  # the same for every report of a trial
            per_class = (result.get("config") or {}).get("eval_samples_per_class")
            if per_class is None:
                per_class = self._space.spec.base_config().eval_samples_per_class
            if (samples := judge_samples(result, per_class)) is not None:
                self._samples[trial_id] = samples
        self._reach(trial_id, result)

    def _reach(self, trial_id: str, result: dict | None) -> None:
        if isinstance((result or {}).get("iteration"), int):
            self._reached[trial_id] = max(self._reached.get(trial_id, 0), result["iteration"])

    def suggest(self, trial_id: str) -> dict | str | None:
        """The sampler's point, never one an earlier trial ran: a small all-choice space (or an
        integer range) repeats, and a seeded trainer would only train the same trial again (and
        a draw equal to a baseline's point would be labelled that baseline). A repeat is told to
        the sampler as FAIL, which it ignores, and drawn again; after SAMPLER_REDRAWS repeats a
        point no trial ran is picked at random. Once every point of a finite space has started,
        the search ends, with a note. The baselines and given points run as given."""
        import optuna

        spec = self._space.spec
        if spec.budget and self.spent >= spec.budget:
            if not self._budget_said:
                self._budget_said = True
                print(f"note: the study's budget of {spec.budget} training iterations is spent ({self.spent}): "
                      "no more trials are started", file=sys.stderr, flush=True)
            return Searcher.FINISHED
        if self._waits_for_startup() or self._budget_waits() or self._holds_back():
            return None  # Tune asks again when a trial has finished
        self._decide_length()
        if (going_on := self._going_on(trial_id)) is not None:
            return going_on
        params = super().suggest(trial_id)
        if not isinstance(params, dict):
            return params
        points = self._points
        if points is None:  # the points its sampler was given (none in a new study)
            current = self._ot_trials[trial_id].number
            points = self._points = [dict(trial.params) for trial in self._ot_study.get_trials(deepcopy=False)
                                     if trial.state != optuna.trial.TrialState.WAITING and trial.number != current
                                     and WARM_START not in trial.user_attrs]
        searched = len(points) >= len(spec.start_points())  # the baselines and given points run as given
        if searched:
            def discard() -> None:
                self._ot_study.tell(self._ot_trials.pop(trial_id), state=optuna.trial.TrialState.FAIL)

            ran = [{key: point[key] for key in spec.search} for point in points]
            params, fresh = fresh_draw(spec, ran, params, lambda: OptunaSearch.suggest(self, trial_id), discard,
                                       self._ot_study.enqueue_trial)
            size = spec.space_size()
            if not fresh and size is not None:
                discard()
                print(f"note: the search space holds {size} distinct configurations and a trial has "
                      "started with each: no more trials are started", file=sys.stderr, flush=True)
                return Searcher.FINISHED
        points.append(params)
        if searched:
            self._searched.add(trial_id)
            self._params[trial_id] = params
            params = self._lengthened(params)
        length = params.get("iterations", spec.base_config().iterations)
        self._live[trial_id] = int(length)
        return params

    @property
    def length(self) -> int | None:
        """The iterations of the trials drawn from now on, where the study has lengthened them; else None."""
        return self._length

    def _decide_length(self) -> None:
        """Twice the fixed trial length from now on, once no trial has reached WORKING_ACCURACY while the
        searched trials that ran all their iterations were too short (``too_short``: at least two, and
        half of them, still rising at their end); and the next trial goes on from the end of the one of
        them with the highest accuracy (``_going_on``). On the shapes, studies of 1200-iteration
        trials found no working trial in 3 seeds of 5 (12 of 13 such trials ended rising at 0.35-0.49);
        with 2400-iteration trials the same seeds found one at 4,200 and 4,500 iterations, and the best
        of such trials, continued by hand, worked 300 iterations later in 3 seeds of 3 (docs/search.md).
        Once: trials that stay too short at twice the length are the "too short" line's to tell. Not
        where ``lengthen`` is off, the length is searched, or the study is multi-objective (its sampler
        is told both objectives at a trial's end)."""
        spec = self._space.spec
        if not self._may_lengthen():
            return
        accuracies = {trial_id: [curve[step] for step in sorted(curve)]
                      for trial_id, curve in ((trial_id, self._accuracies.get(trial_id, {})) for trial_id in self._ended)}
        rising = too_short({trial_id: (curve, self._samples.get(trial_id)) for trial_id, curve in accuracies.items()})
        if not rising:
            return
        self._length = 2 * spec.base_config().iterations
        best = max((trial_id for trial_id in rising if trial_id in self._params),
                   key=lambda trial_id: accuracies[trial_id][-1], default=None)
        self._continue = best
        going_on = (f"; the next goes on from the end of {trial_dir_name(best)} (accuracy {accuracies[best][-1]:.2f}, "
                    "still rising)") if best is not None else ""
        print(f"note: no trial has reached conditional accuracy {WORKING_ACCURACY} and the searched trials that "
              f"ran all their {self._length // 2} iterations were mostly still improving at their end: the "
              f"trials started from now on run {self._length}{going_on} ([study] lengthen = false keeps them at "
              f"{self._length // 2})", file=sys.stderr, flush=True)

    def _may_lengthen(self) -> bool:
        """Whether ``_decide_length`` may still lengthen the study's trials: on, not yet, none worked."""
        spec = self._space.spec
        return (self.length is None and spec.lengthen and not spec.multi_objective and "iterations" not in spec.search
                and not self._worked)

    def _holds_back(self) -> bool:
        """Whether a trial asked for ahead of the free slots waits for one to come free: while the study
        may still lengthen its trials. Tune asks for one trial ahead; drawn before the rule fired, it ran
        at the old length in the slot that came free next, and the trial going on from the best one's
        end waited for the slot after it (seen on the shapes, seed 4: 2,100 iterations of all trials
        later). Where Ray does not say how many trials fit (no Ray, no resources given), never."""
        import ray

        resources = self._trial_resources
        if resources is None or not self._may_lengthen() or not ray.is_initialized():
            return False
        now = time.time()
        if now - self._slots_at > SLOTS_EVERY_S:  # nodes come and go; asked each call, Ray is slow
            from study._session import trial_slots

            self._slots, self._slots_at = trial_slots(resources, ray.nodes()), now
        return len(self._live) >= self._slots

    def _going_on(self, trial_id: str) -> dict[str, Any] | None:
        """Where the study has just lengthened its trials: the config of a trial that goes on from the
        end of the best still-rising one (CONTINUES; its checkpoint, weights and optimisers), to the
        new length. Its point is that trial's, which the sampler has been told: no Optuna trial of its
        own. Else None."""
        source, self._continue = self._continue, None
        if source is None:
            return None
        reached, uri = self._reached.get(source, 0), self._storage_uri
        params = {**self._lengthened(self._params[source]),
                  CONTINUES: {"trial": source, "uri": f"{uri.rstrip('/')}/{trial_dir_name(source)}", "iteration": reached}}
        self._began[trial_id] = self._reached[trial_id] = reached
        self._live[trial_id] = int(params["iterations"])
        return params

    def _lengthened(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the study's trial length (``_decide_length``), where it has lengthened them."""
        spec = self._space.spec
        if self.length is None:
            return params
        base = spec.base_config()
        # The collapse verdict's grace in proportion (unless searched): at the fixed one it stopped
        # lengthened shapes trials at 1200 whose coverage sat near its threshold (0.04-0.05) while their
        # accuracy still rose; such a trial, continued, reached 0.59 by 1500 (docs/search.md).
        grace = {} if "collapse_grace" in spec.search else {
            "collapse_grace": base.collapse_grace * self.length // base.iterations}
        return {**params, "iterations": self.length, **grace}

    def _waits_for_startup(self) -> bool:
        """Whether the next draw should wait for a trial to finish. TPE draws at random until
        ``startup_trials`` trials have finished, and Tune asks for trials ahead of free slots: with
        the paper's V0 taking a whole trial's length, the first ten draws of a 2-slot study were
        all random (seen on the built-in set, seed 0) where the space-filling start meant four.
        Once that start has been drawn, the next draw waits until enough trials have finished, as
        long as one is running (a slot idles for an evaluation at most)."""
        import optuna

        spec = self._space.spec
        if spec.sampler != "tpe":
            return False
        states = {trial.state for trial in self._ot_study.get_trials(deepcopy=False)}
        if optuna.trial.TrialState.WAITING in states or optuna.trial.TrialState.RUNNING not in states:
            return False
        finished = self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                     optuna.trial.TrialState.PRUNED))
        return len(finished) < spec.startup_trials

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """The trial's end, as the sampler should weigh it. A collapse is PRUNED and infeasible. A trial
        ASHA stopped early is told COMPLETE with its score projected to the full length by the study's
        own learning curves (``projected_score``): Optuna's TPE ranks every finished trial above every
        pruned one, whatever their scores, so a young study's few finished trials (the baselines ASHA
        spares, a mediocre trial promoted while the rungs were still empty) drew the search to
        themselves, and a promising trial cut at 300 iterations counted for nothing (seen: seed 0 of
        the built-in set drew near the paper's V0 for 10 trials in a row)."""
        self._record(trial_id, result)  # the last result: Tune gives the searcher none it stopped a trial on
        length = self._live.pop(trial_id, None)
        if trial_id in self._began:
            return  # it goes on from another trial's end: its point was told with that trial
        if not error and trial_id in self._searched and length and self._reached.get(trial_id, 0) >= length:
            self._ended.append(trial_id)
        entry = StopLedger(self._experiment_dir).get(trial_id)
        collapsed = entry is not None and entry[STOP_REASON] in COLLAPSES
        stopped = entry is not None and entry[STOP_REASON] in EARLY
        curves, spec = self._curves, self._space.spec
        if not error and stopped and not spec.multi_objective:
            score = None if collapsed else projected_score(curves.get(trial_id, {}), curves.values(), spec.evaluations)
            result = None if score is None else {**(result or {}), SCORE: score}
        elif not error and length and length > (fixed := spec.base_config().iterations):
            # A lengthened trial is weighed at the fixed length, as every other trial is: its last score
            # would rank its (longer) training, not its point. (One the verdict stopped after the fixed
            # length stays a collapse: the study trains its trials that long now.)
            score = score_at_length(self._scores.get(trial_id, {}), fixed)
            result = result if score is None else {**(result or {}), SCORE: score}
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_constraint(COLLAPSE_CONSTRAINT, 1.0 if collapsed else -1.0)
        super().on_trial_complete(trial_id, result=result, error=error)


def projected_score(curve: dict[int, float], curves: Any, final: int) -> float | None:
    """A trial's last score projected to the full length of a trial (report ``final``): times the
    median, over the study's trials that reached both, of the score at the full length over the
    score at the report it stopped at (FD-intra keeps falling as a GAN trains: about 0.6x from 300
    to 1200 iterations on the built-in set). Without such trials yet, the score as it is. None for
    a trial with no score."""
    import statistics

    if not curve:
        return None
    step = max(curve)
    ratios = [other[final] / other[step] for other in curves
              if final in other and step in other and other[step] > 0 and other is not curve]
    return curve[step] * (statistics.median(ratios) if ratios and step < final else 1.0)


def score_at_length(scores: dict[int, float], length: int) -> float | None:
    """A trial's score (``scores`` by training iteration) as a trial of ``length`` iterations would
    have ended with it: its last report at or before ``length``; None where it has none."""
    before = [iteration for iteration in scores if iteration <= length]
    return scores[max(before)] if before else None


def fresh_draw(spec: StudySpec, ran: list[dict[str, Any]], params: dict[str, Any], redraw: Callable[[], dict],
               discard: Callable[[], None], enqueue: Callable[[dict], None]) -> tuple[dict[str, Any], bool]:
    """``params``, or a redraw of them, whose point (searched fields) is not in ``ran``: a repeat is
    discarded (told to the sampler as FAIL, which it ignores) and drawn again, and after
    SAMPLER_REDRAWS repeats a point of a finite space that no trial ran is enqueued for the next
    draw. Returns (params, True), or (the repeat, False) where a finite space has no point left,
    or a float range repeated SAMPLER_REDRAWS times (by chance alone: run it)."""
    size, redraws = spec.space_size(), 0
    while {key: params[key] for key in spec.search} in ran:
        unseen = unseen_point(spec, ran, seed=spec.seed + len(ran)) if size is not None else None
        if (size is None and redraws == SAMPLER_REDRAWS) or (size is not None and unseen is None):
            return params, False
        discard()
        if redraws >= SAMPLER_REDRAWS:
            enqueue(unseen)
        params, redraws = redraw(), redraws + 1
    return params, True


def unseen_point(spec: StudySpec, ran: list[dict[str, Any]], *, seed: int) -> dict[str, Any] | None:
    """A point of a finite search space that is not in ``ran`` (searched fields only): drawn at
    random (seeded), else the first in order; None once every point is in ``ran``."""
    import random

    keys = list(spec.search)
    domains = [spec.search[key] for key in keys]
    sizes = [domain.size() for domain in domains]

    def value(domain: Any, index: int) -> Any:
        return int(domain.low) + index * (domain.step or 1) if isinstance(domain, Range) else domain.drawn[index]

    def point(indices: list[int]) -> dict[str, Any]:
        return {key: value(domain, index) for key, domain, index in zip(keys, domains, indices)}

    rng = random.Random(seed)
    for _ in range(200):
        drawn = point([rng.randrange(size) for size in sizes])
        if drawn not in ran:
            return drawn
    for number in range(math.prod(sizes)):  # nearly run through: at most len(ran) + 1 steps
        indices = []
        for size in reversed(sizes):
            number, index = divmod(number, size)
            indices.insert(0, index)
        if point(indices) not in ran:
            return point(indices)
    return None


class DrawSampler(BaseSampler):
    """An Optuna sampler that draws a field with ``draw`` only within it, where Optuna's study holds
    the whole domain and the baselines and given points take any of its values (enqueued, which
    Optuna gives them before any sampler is asked). A range's field is drawn by the wrapped sampler
    within the drawn bounds, its model still fed every trial. A choice table's field is left out of
    the wrapped sampler's joint model (Optuna's categorical is an index into the whole list) and
    drawn on its own: one value is that value; of several, the wrapped sampler's draw where it falls
    among them, else one of them at random (seeded)."""

    def __init__(self, base: Any, search: dict[str, Domain], seed: int | None = None) -> None:
        import random

        self._base, self._rng = base, random.Random(seed)
        self._choices = {key: domain.draw for key, domain in search.items()
                         if isinstance(domain, Choice) and domain.draw is not None}
        self._ranges = {key: domain.distribution(drawn=True) for key, domain in search.items()
                        if isinstance(domain, Range) and domain.draw is not None}

    @staticmethod
    def wraps(search: dict[str, Domain]) -> bool:
        """Whether a space has a field with ``draw``."""
        return any(domain.draw is not None for domain in search.values())

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {name: self._ranges.get(name, distribution)
                for name, distribution in self._base.infer_relative_search_space(study, trial).items()
                if name not in self._choices}

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        if name in self._ranges:
            return self._base.sample_independent(study, trial, name, self._ranges[name])
        draw = self._choices.get(name)
        if draw is None:
            return self._base.sample_independent(study, trial, name, distribution)
        if len(draw) == 1:
            return draw[0]
        value = self._base.sample_independent(study, trial, name, distribution)
        return value if value in draw else self._rng.choice(draw)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._base.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._rng.seed()


def make_sampler(spec: StudySpec):
    """The study's Optuna sampler, seeded. "tpe": TPE after a space-filling start of
    ``startup_trials`` points (``space_filling_design``; the searcher waits for them to finish
    before the model draws), with a constant liar so that trials running at once are drawn apart;
    each field modelled on its own, which combined what different trials taught (the projection
    discriminator from one, a wide D and high learning rates from others) better than TPE's
    multivariate mode: on a surrogate of this GAN fitted to 130 real trials, 42 of 200 seeded
    studies found a working configuration within 12,000 iterations with it, 26 with the
    multivariate one, 13 with Optuna's TPE as it comes and 6 with random search (docs/search.md;
    that was the space before its draws: within them random search works too, and the model's
    gain over it is small, and not on every set).
    "plain-tpe": Optuna's TPESampler as it comes (10 random draws first, multivariate in Optuna 5);
    "random"."""
    from optuna.samplers import RandomSampler, TPESampler

    if spec.sampler == "random":
        sampler = RandomSampler(seed=spec.seed)
    elif spec.sampler == "plain-tpe":
        sampler = TPESampler(seed=spec.seed)
    else:  # (multivariate=False said outright: Optuna 5 makes TPE multivariate when it is left unset)
        sampler = TPESampler(seed=spec.seed, n_startup_trials=spec.startup_trials, constant_liar=True,
                             multivariate=False)
    return DrawSampler(sampler, spec.search, spec.seed) if DrawSampler.wraps(spec.search) else sampler


def space_filling_design(spec: StudySpec, count: int) -> list[dict[str, Any]]:
    """``count`` points that spread over the space (a Latin hypercube, seeded with the study's seed):
    each range cut into ``count`` equal slices (on its log scale where it has one), one point in
    each; each choice list's values dealt out in turn, so every value of a short list is tried
    before the model starts. Four random draws leave a two-valued field at one value with chance
    1/8 each (seen: the first four draws of seed 0 all at [0,1]), and TPE then barely tries the other."""
    import math
    import random

    rng = random.Random(spec.seed)
    columns: dict[str, list[Any]] = {}
    for key, domain in spec.search.items():
        if isinstance(domain, Range):
            low, high = (math.log(bound) for bound in domain.drawn) if domain.log else domain.drawn
            values = [low + (high - low) * (slot + rng.random()) / count for slot in range(count)]
            values = [math.exp(value) if domain.log else value for value in values]
            if domain.integer:
                step = domain.step or 1
                values = [int(domain.low) + step * round((value - domain.low) / step) for value in values]
                values = [min(value, int(domain.high)) for value in values]
        else:
            offset = rng.randrange(len(domain.drawn))
            values = [domain.drawn[(offset + slot) % len(domain.drawn)] for slot in range(count)]
        rng.shuffle(values)
        columns[key] = values
    return [{key: values[slot] for key, values in columns.items()} for slot in range(count)]


def initial_population(spec: StudySpec, warm_start: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """PBT's population: the baselines and given points, then draws of the study's sampler (seeded;
    TPE with nothing finished yet draws at random), each a whole trial config in the study's form."""
    import optuna

    fixed = {key: value for key, value in trial_params(spec.base_config()).items() if key not in spec.search}
    points = spec.start_points()[:spec.samples]
    draws = optuna.create_study(sampler=make_sampler(spec))
    draws.add_trials(warm_start)
    space, size = define_by_run(spec), spec.space_size()
    for _ in range(spec.samples - len(points)):
        # As the searcher does: no draw alike a member already in (a baseline's twin would also be
        # spared as one), unless the population outnumbers the space's configurations.
        trial = draws.ask()
        space(trial)

        def redraw() -> dict[str, Any]:
            nonlocal trial
            trial = draws.ask()
            space(trial)
            return trial.params

        params, _ = fresh_draw(spec, points, trial.params, redraw,
                               lambda: draws.tell(trial, state=optuna.trial.TrialState.FAIL), draws.enqueue_trial)
        points.append(dict(params))
    if size is not None and spec.samples > size:
        print(f"note: the population of {spec.samples} outnumbers the {size} distinct configurations of the search "
              f"space: some members start alike", file=sys.stderr, flush=True)
    return [{**fixed, **point} for point in points]


def make_searcher(spec: StudySpec, experiment_dir: str | Path, warm_start: tuple[Any, ...] = (),
                  storage_uri: str = "", trial_resources: Any = None) -> tuple[Any, dict[str, Any]]:
    """(search algorithm, Tune's param_space). The study's sampler over its define-by-run space, told
    of an earlier study's trials (``warm_start``: Optuna FrozenTrials), the baselines and given
    points first; with ``multi_objective``, the score is minimised and the
    mean diversity maximised. Under PBT, which refuses a searcher, the population is drawn up front
    and Tune's plain generator runs it point by point (it needs each key in the param_space)."""
    import optuna

    # Not "A new study created in memory with name: optuna" (the searcher's own study, or the
    # population's draws) on the user's terminal: the study's store is its journal.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.population_based:
        from ray.tune.search import BasicVariantGenerator

        from ray import tune

        population = initial_population(spec, warm_start)
        # The searched keys as Tune domains, not the first member's values: Tune warns of every
        # member whose value differs from a constant there ("Pre-set value ... is not equal").
        searched = {key: tune.choice(list(domain.values)) if isinstance(mutation := _mutation(domain), list)
                    else mutation for key, domain in spec.search.items()}
        return BasicVariantGenerator(points_to_evaluate=population), {**population[0], **searched}
    metric: Any = [SCORE, DIVERSITY_MEAN] if spec.multi_objective else SCORE
    mode: Any = ["min", "max"] if spec.multi_objective else "min"
    points = spec.start_points()
    if spec.sampler == "tpe":  # its startup draws as a design that covers the space
        points += space_filling_design(spec, max(0, spec.startup_trials - len(points) - len(warm_start)))
    return StudySearcher(space=define_by_run(spec), metric=metric, mode=mode,
                         points_to_evaluate=points or None, sampler=make_sampler(spec),
                         experiment_dir=experiment_dir, warm_start=warm_start, storage_uri=storage_uri,
                         trial_resources=trial_resources), {}
