"""Seed re-runs: the top K configurations of a finished study, trained again with S new seeds
through the same study machinery (Ray, the trainable, the files), so a ranking can be trusted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from analysis import Experiment, lengthened_trials, rank, read_experiment
from study.runner import DEFAULT_CONNECT_TIMEOUT, check_name, run_study, study_dir
from study.spec import StudySpec
from trainable.errors import UserError
from trainable.experiment import StudyRecord
from trainable.space import Choice


def replay_spec(experiment: Experiment, *, top: int, seeds: int):
    """(spec, extra study.json entries) for re-running a study's best ``top`` trials ``seeds``
    times each. Replays run to the end (no ASHA: trials compared by their median must have had
    the same budget) and the searched parameters become fixed choices holding only those points."""
    source = experiment.path
    if top < 1 or seeds < 1:
        raise UserError("--top and --seeds must be at least 1")
    if not experiment.study:
        raise UserError(f"{source}: not a study folder (no study.json); replay re-runs a study's best trials")
    if experiment.study.get("replay_of"):
        raise UserError(f"{source} is itself a seed re-run; replay its source study {experiment.study['replay_of']}")
    spec = StudySpec.from_dict(experiment.study["spec"])
    best = [trial for trial in rank(experiment.trials) if trial.healthy][:top]
    if not best:
        raise UserError(f"{source}: no healthy trial with a score to re-run")
    keys = list(spec.search)
    searched = {trial.name: {key: trial.params[key] for key in keys} for trial in best}
    default_seed = int(spec.fixed.get("seed", 0))
    used = {int(trial.params.get("seed", default_seed)) for trial in best}
    new_seeds = [seed for seed in range(1, seeds + len(used) + 1) if seed not in used][:seeds]
    points = [{**searched[trial.name], "seed": seed} for trial in best for seed in new_seeds]
    search = {key: Choice(tuple(dict.fromkeys(point[key] for point in points))) for key in [*keys, "seed"]}
    fixed = {key: value for key, value in spec.fixed.items() if key != "seed"} | _lengthened(experiment, spec, best)
    # A PBT study's trials re-run with the config each ended with (params.json), not their schedule:
    # `trial --from TRIAL --schedule` replays a schedule.
    replay = dataclasses.replace(spec, search=search, fixed=fixed, samples=len(points), baselines=(),
                                 points=tuple(points), early_stopping=False, sampler="random", scheduler="asha",
                                 mutate=())
    extra: StudyRecord = {
        "replay_of": str(experiment.path),
        "replayed": [{"name": trial.name, "rank": position, "score": trial.score, "baseline": trial.baseline,
                      "seed": int(trial.params.get("seed", default_seed)),
                      "params": searched[trial.name]}
                     for position, trial in enumerate(best, 1)],
        # the paper's points keep their mark in the re-run
        "baselines": {trial.baseline: searched[trial.name] for trial in best if trial.baseline},
    }
    return replay, extra


def _lengthened(experiment: Experiment, spec: StudySpec, best: list) -> dict:
    """Where the study lengthened trials among ``best`` ([study] lengthen): the fixed fields that
    re-run them all at that length (the collapse verdict's grace in proportion, as the study ran
    them), so each is re-run as long as it ran and all alike; else nothing."""
    chosen = [trial.params["iterations"] for trial in lengthened_trials(experiment)[1] if trial in best]
    if not chosen:
        return {}
    base, most = spec.base_config(), max(chosen)
    grace = {} if "collapse_grace" in spec.search else {"collapse_grace": base.collapse_grace * most // base.iterations}
    return {"iterations": most, **grace}


def replay_name(source: str | Path) -> str:
    return f"{Path(source).resolve().name}-replay"


def run_replay(source: str | Path, *, top: int, seeds: int, name: str | None = None, storage: str | None = None,
               address: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Path:
    if name is not None:
        check_name(name)
    experiment = read_experiment(source)
    spec, extra = replay_spec(experiment, top=top, seeds=seeds)
    storage = storage or experiment.study.get("storage") or str(Path(source).resolve().parent)
    name = name or replay_name(source)
    run_study(spec, name=name, data=experiment.study.get("data"), storage=storage, address=address,
              judge_steps=int(experiment.study.get("judge_steps", 1500)), connect_timeout=connect_timeout, extra=extra)
    return study_dir(storage, name)

