"""The Optuna searcher, made to agree with why trials ended."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Callable

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from study._stopping import StopLedger, _mutation
from study.spec import Range, StudySpec, define_by_run
from trainable.experiment import COLLAPSES, DIVERSITY_MEAN, EARLY, SCORE, trial_params

# An Optuna constraint (Trial.set_constraint; > 0 is infeasible): a collapse is no bad score to
# interpolate between but a region to leave, and TPE puts infeasible trials in its "bad" group
# whatever their score (Optuna's constrained TPE).
COLLAPSE_CONSTRAINT = "collapse"
# Draws of the sampler for a point no trial has run before one is picked at random among those
# (TPE keeps proposing the best point of a small all-choice space, whatever its random state).
SAMPLER_REDRAWS = 10


class StudySearcher(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials stopped early (ASHA or collapse), and
    marks collapsed ones infeasible.

    Ray reports such trials to Optuna as COMPLETE with their last score, which would let
    the sampler learn from a truncated or collapsed run as if it had finished.
    """

    def __init__(self, *args, experiment_dir: str | Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._experiment_dir = str(experiment_dir)
        # Every point suggested, saved with the searcher; None until the first suggestion, and in a
        # searcher saved before it kept them (rebuilt from its Optuna study then).
        self._points: list[dict[str, Any]] | None = None

    def suggest(self, trial_id: str) -> dict | str | None:
        """The sampler's point, never one an earlier trial ran: a small all-choice space (or an
        integer range) repeats, and a seeded trainer would only train the same trial again (and
        a draw equal to a baseline's point would be labelled that baseline). A repeat is told to
        the sampler as FAIL, which it ignores, and drawn again; after SAMPLER_REDRAWS repeats a
        point no trial ran is picked at random. Once every point of a finite space has started,
        the search ends, with a note. The baselines and given points run as given."""
        import optuna

        params = super().suggest(trial_id)
        if not isinstance(params, dict):
            return params
        spec = self._space.spec
        points = self.__dict__.get("_points")
        if points is None:  # the points its sampler was given (none in a new study)
            current = self._ot_trials[trial_id].number
            points = self._points = [dict(trial.params) for trial in self._ot_study.get_trials(deepcopy=False)
                                     if trial.state != optuna.trial.TrialState.WAITING and trial.number != current]
        if len(points) >= len(spec.start_points()):  # the baselines and given points run as given
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
        return params

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        entry = StopLedger(self._experiment_dir).get(trial_id)
        if not error and entry is not None and entry["stop_reason"] in EARLY:
            result = None  # OptunaSearch records a trial without a value and without an error as PRUNED
        if trial_id in self._ot_trials:
            collapsed = entry is not None and entry["stop_reason"] in COLLAPSES
            self._ot_trials[trial_id].set_constraint(COLLAPSE_CONSTRAINT, 1.0 if collapsed else -1.0)
        super().on_trial_complete(trial_id, result=result, error=error)


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
        return int(domain.low) + index * (domain.step or 1) if isinstance(domain, Range) else domain.values[index]

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


def _sampler(spec: StudySpec):
    from optuna.samplers import RandomSampler, TPESampler

    return (TPESampler if spec.sampler == "tpe" else RandomSampler)(seed=spec.seed)


def initial_population(spec: StudySpec) -> list[dict[str, Any]]:
    """PBT's population: the baselines and given points, then draws of the study's sampler (seeded;
    TPE with nothing finished yet draws at random), each a whole trial config in the study's form."""
    import optuna

    fixed = {key: value for key, value in trial_params(spec.base_config()).items() if key not in spec.search}
    points = spec.start_points()[:spec.samples]
    draws = optuna.create_study(sampler=_sampler(spec))
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


def make_searcher(spec: StudySpec, experiment_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """(search algorithm, Tune's param_space). TPE (or random) over the study's define-by-run space,
    the baselines and given points first; with ``multi_objective``, the score is minimised and the
    mean diversity maximised. Under PBT, which refuses a searcher, the population is drawn up front
    and Tune's plain generator runs it point by point (it needs each key in the param_space)."""
    import optuna

    # Not "A new study created in memory with name: optuna" (the searcher's own study, or the
    # population's draws) on the user's terminal: the study's store is its journal.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.population_based:
        from ray.tune.search import BasicVariantGenerator

        from ray import tune

        population = initial_population(spec)
        # The searched keys as Tune domains, not the first member's values: Tune warns of every
        # member whose value differs from a constant there ("Pre-set value ... is not equal").
        searched = {key: tune.choice(list(domain.values)) if isinstance(mutation := _mutation(domain), list)
                    else mutation for key, domain in spec.search.items()}
        return BasicVariantGenerator(points_to_evaluate=population), {**population[0], **searched}
    metric: Any = [SCORE, DIVERSITY_MEAN] if spec.multi_objective else SCORE
    mode: Any = ["min", "max"] if spec.multi_objective else "min"
    return StudySearcher(space=define_by_run(spec), metric=metric, mode=mode,
                         points_to_evaluate=spec.start_points() or None, sampler=_sampler(spec),
                         experiment_dir=experiment_dir), {}
