"""The Optuna searcher, made to agree with why trials ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from study._stopping import StopLedger
from study.spec import StudySpec, define_by_run
from trainable.experiment import COLLAPSES, DIVERSITY_MEAN, EARLY, SCORE, trial_params

# An Optuna constraint (Trial.set_constraint; > 0 is infeasible): a collapse is no bad score to
# interpolate between but a region to leave, and TPE puts infeasible trials in its "bad" group
# whatever their score (Optuna's constrained TPE).
COLLAPSE_CONSTRAINT = "collapse"


class StudySearcher(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials stopped early (ASHA or collapse), and
    marks collapsed ones infeasible.

    Ray reports such trials to Optuna as COMPLETE with their last score, which would let
    the sampler learn from a truncated or collapsed run as if it had finished.
    """

    def __init__(self, *args, experiment_dir: str | Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._experiment_dir = str(experiment_dir)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        entry = StopLedger(self._experiment_dir).get(trial_id)
        if not error and entry is not None and entry["stop_reason"] in EARLY:
            result = None  # OptunaSearch records a trial without a value and without an error as PRUNED
        if trial_id in self._ot_trials:
            collapsed = entry is not None and entry["stop_reason"] in COLLAPSES
            self._ot_trials[trial_id].set_constraint(COLLAPSE_CONSTRAINT, 1.0 if collapsed else -1.0)
        super().on_trial_complete(trial_id, result=result, error=error)


def _sampler(spec: StudySpec):
    from optuna.samplers import RandomSampler, TPESampler

    return (TPESampler if spec.sampler == "tpe" else RandomSampler)(seed=spec.seed)


def initial_population(spec: StudySpec) -> list[dict[str, Any]]:
    """PBT's population: the baselines and given points, then draws of the study's sampler (seeded;
    TPE with nothing finished yet draws at random), each a whole trial config in the study's form."""
    import optuna

    fixed = {key: value for key, value in trial_params(spec.base_config()).items() if key not in spec.search}
    points = spec.start_points()[:spec.samples]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draws = optuna.create_study(sampler=_sampler(spec))
    space = define_by_run(spec)
    for _ in range(spec.samples - len(points)):
        trial = draws.ask()
        space(trial)
        points.append(dict(trial.params))
    return [{**fixed, **point} for point in points]


def make_searcher(spec: StudySpec, experiment_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """(search algorithm, Tune's param_space). TPE (or random) over the study's define-by-run space,
    the baselines and given points first; with ``multi_objective``, the score is minimised and the
    mean diversity maximised. Under PBT, which refuses a searcher, the population is drawn up front
    and Tune's plain generator runs it point by point (it needs each key in the param_space)."""
    if spec.population_based:
        from ray.tune.search import BasicVariantGenerator

        population = initial_population(spec)
        return BasicVariantGenerator(points_to_evaluate=population), dict(population[0])
    metric: Any = [SCORE, DIVERSITY_MEAN] if spec.multi_objective else SCORE
    mode: Any = ["min", "max"] if spec.multi_objective else "min"
    return StudySearcher(space=define_by_run(spec), metric=metric, mode=mode,
                         points_to_evaluate=spec.start_points() or None, sampler=_sampler(spec),
                         experiment_dir=experiment_dir), {}
