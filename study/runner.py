"""Running a study: Ray (embedded or joined), the Tuner, resume after a killed driver, summary."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

from study.spec import StudySpec, define_by_run
from trainable.errors import UserError
from trainable.experiment import (COND_ACCURACY, DIVERSITY_MEAN, DIVERSITY_MIN, FID_INTRA, JOURNAL_FILE, SCORE,
                                  STUDY_FILE, TRIAL_PREFIX, is_study, read_study, trial_dir_name, write_study)
from trainable.local import BUILTIN, load_data

DEFAULT_STORAGE = "runs/studies"


@dataclasses.dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float
    note: str = ""


def plan_resources(spec: StudySpec, nodes: list[dict[str, Any]], *, wait_for_gpus: bool = False) -> Resources:
    """Per-trial resources the cluster can really give, or a clear refusal.

    A GPU fraction on a cluster without GPUs leaves Ray trials PENDING forever with no
    error, so without GPUs the study runs on CPU instead (unless the user says GPU workers
    will be started on demand); a request no node can ever hold is refused at once.
    """
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    largest_cpu = max((r.get("CPU", 0) for r in alive), default=0)
    largest_gpu = max((r.get("GPU", 0) for r in alive), default=0)
    cpus, gpus, note = spec.cpus_per_trial, spec.gpus_per_trial, ""
    if cpus > largest_cpu and not wait_for_gpus:
        raise UserError(f"--cpus-per-trial {cpus:g} can never be satisfied: the largest node has {largest_cpu:g} CPUs")
    if gpus > 0 and largest_gpu == 0 and not wait_for_gpus:
        note = (f"no GPU in the cluster: running on CPU instead of --gpus-per-trial {gpus:g} "
                "(pass --wait-for-gpus if GPU workers start on demand)")
        gpus = 0.0
    elif gpus > largest_gpu > 0:
        raise UserError(f"--gpus-per-trial {gpus:g} can never be satisfied: the largest node has {largest_gpu:g} GPU(s)")
    return Resources(cpus, gpus, note)


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join a cluster at ``address`` or start an embedded Ray sized to this machine; always shut it down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # small window for a killed driver to lose
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    try:
        if address:
            ray.init(address=address, logging_level="WARNING")
        else:
            # Token auth, the dashboard and usage stats cost seconds and memory on a small machine.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot {'join Ray at ' + address if address else 'start Ray'}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _experiment_dir(storage: str, name: str) -> Path:
    if "://" in storage:
        return Path(os.environ.get("CGAN_STUDY_LOCAL_STATE", Path.home() / ".cache" / "cgan-study" / "state")) / name
    return Path(storage).expanduser().resolve() / name


def _build_tuner(spec: StudySpec, study: dict[str, Any], resources: Resources, *, restore: bool):
    from optuna.samplers import RandomSampler, TPESampler
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from study._callbacks import StudyCallback
    from study._search import StudySearcher
    from study._stopping import CollapseStopper, RecordingASHA
    from trainable.judge import load_or_train_judge
    from trainable.tune_adapter import cgan_trainable

    experiment_dir = Path(study["experiment_dir"])
    dataset = load_data(study["data"])
    # The judge is trained once per study, here on the driver, unless it is already cached.
    judge, trained = load_or_train_judge(dataset, steps=study["judge_steps"], progress=True)
    if trained:
        print(f"judge trained: held-out accuracy {judge.heldout_accuracy:.3f}", file=sys.stderr)
    trainable = tune.with_resources(
        tune.with_parameters(cgan_trainable, dataset=dataset, judge=judge, metric=spec.metric),
        {"cpu": resources.cpus, "gpu": resources.gpus})
    if restore:
        return tune.Tuner.restore(study["storage_uri"], trainable=trainable, resume_unfinished=True,
                                  resume_errored=True)
    evaluations = spec.evaluations
    metric: Any = [SCORE, DIVERSITY_MEAN] if spec.multi_objective else SCORE
    mode: Any = ["min", "max"] if spec.multi_objective else "min"
    searcher = StudySearcher(space=define_by_run(spec), metric=metric, mode=mode,
                             points_to_evaluate=spec.start_points() or None,
                             sampler=(TPESampler if spec.sampler == "tpe" else RandomSampler)(seed=spec.seed),
                             experiment_dir=experiment_dir)
    scheduler = RecordingASHA(experiment_dir, time_attr="training_iteration", metric=SCORE, mode="min",
                              max_t=evaluations, grace_period=min(spec.grace_period, evaluations),
                              reduction_factor=spec.reduction_factor) if spec.early_stopping else FIFOScheduler()
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.samples,
                                    trial_dirname_creator=lambda trial: trial_dir_name(trial.trial_id),
                                    trial_name_creator=lambda trial: trial_dir_name(trial.trial_id)),
        run_config=tune.RunConfig(
            name=study["name"], storage_path=study["storage"],
            stop=CollapseStopper(experiment_dir) if spec.early_stopping else None,
            callbacks=[StudyCallback(experiment_dir, spec, study["name"])],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # Sample grids are written in the trial's working folder: sync them to storage too.
            sync_config=tune.SyncConfig(sync_artifacts=True),
            progress_reporter=tune.CLIReporter(
                metric_columns={"iteration": "iter", FID_INTRA: "FD-intra", COND_ACCURACY: "acc",
                                DIVERSITY_MIN: "div", "verdict": "verdict"},
                parameter_columns=list(spec.search)[:6], max_report_frequency=15),
            verbose=1,
        ),
    )


def run_study(spec: StudySpec, *, name: str, data: str | None = None, storage: str = DEFAULT_STORAGE,
              address: str | None = None, judge_steps: int = 1500, wait_for_gpus: bool = False,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a study; ``extra`` entries go into study.json (a seed re-run records its source there)."""
    experiment_dir = _experiment_dir(storage, name)
    if is_study(experiment_dir):
        raise UserError(f"study {name!r} already exists in {storage}; continue it with: cgan-study study resume {name}")
    if data and data != BUILTIN and not Path(data).is_file():
        raise UserError(f"{data}: no such prepared data file")
    storage_path = storage if "://" in storage else str(Path(storage).expanduser().resolve())
    study = {"name": name, "storage": storage_path, "storage_uri": f"{storage_path.rstrip('/')}/{name}",
             "experiment_dir": str(experiment_dir), "data": str(Path(data).resolve()) if data and data != BUILTIN else BUILTIN,
             "judge_steps": judge_steps, "spec": spec.to_dict(),
             "baselines": dict(zip(spec.baselines, spec.baseline_points())), **(extra or {})}
    load_data(study["data"])  # bad data fails before Ray starts
    with ray_session(address):
        import ray

        resources = plan_resources(spec, ray.nodes(), wait_for_gpus=wait_for_gpus)
        if resources.note:
            print(f"note: {resources.note}", file=sys.stderr)
        study["resources"] = dataclasses.asdict(resources)
        tuner = _build_tuner(spec, study, resources, restore=False)
        # Written only now: a study that failed before this point can simply be run again.
        experiment_dir.mkdir(parents=True, exist_ok=True)
        write_study(experiment_dir, study)
        tuner.fit()
    return study


def resume_study(name: str, *, storage: str = DEFAULT_STORAGE, address: str | None = None) -> dict[str, Any]:
    experiment_dir = _experiment_dir(storage, name)
    study = read_study(experiment_dir)
    if study is None:
        raise UserError(f"no study {name!r} in {storage} (looked for {experiment_dir / STUDY_FILE})")
    spec = StudySpec.from_dict(study["spec"])
    from ray import tune

    if not tune.Tuner.can_restore(study["storage_uri"]):
        raise UserError(f"study {name!r} has no saved experiment state to resume from in {study['storage_uri']}")
    with ray_session(address):
        resources = Resources(**study["resources"])
        tuner = _build_tuner(spec, study, resources, restore=True)
        grid = tuner.fit()
        known = {Path(result.path).name for result in grid if result.path}
        _set_aside_orphans(experiment_dir, known)
    return study


def _set_aside_orphans(experiment_dir: Path, known: set[str]) -> None:
    """A trial folder Tune's restored state does not know was started after its last save:
    Tune ran that point again under a new id, so the folder is moved aside, not counted twice."""
    for trial_dir in experiment_dir.glob(f"{TRIAL_PREFIX}*"):
        if trial_dir.is_dir() and trial_dir.name not in known:
            target = experiment_dir / "orphaned" / trial_dir.name
            target.parent.mkdir(exist_ok=True)
            shutil.move(str(trial_dir), target)
            print(f"note: {trial_dir.name} was started after the driver's last save; moved to {target}",
                  file=sys.stderr)


def load_study(name_or_path: str, storage: str = DEFAULT_STORAGE) -> Path:
    path = Path(name_or_path)
    if is_study(path):
        return path
    path = _experiment_dir(storage, name_or_path)
    if not is_study(path):
        raise UserError(f"no study {name_or_path!r} in {storage}")
    return path


def summary(experiment_dir: Path) -> str:
    """The end-of-study summary: best trial against the paper's baselines, stop reasons, where it is."""
    from collections import Counter

    from analysis import rank, read_experiment

    experiment = read_experiment(experiment_dir)
    ranked = rank(experiment.trials)
    lines = [f"study {experiment_dir.name}: {len(experiment.trials)} trials in {experiment_dir}"]
    counts = Counter(trial.stop_reason for trial in experiment.trials)
    lines.append("stop reasons: " + ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())))
    healthy = [t for t in ranked if t.healthy]
    if healthy:
        best = healthy[0]
        lines.append(f"best: {best.name} FD-intra {best.score:.3f}, conditional accuracy "
                     f"{best.last.get(COND_ACCURACY, float('nan')):.3f} at iteration {best.last.get('iteration')}"
                     + (f" (the paper's {best.baseline})" if best.baseline else ""))
        searched = (experiment.study or {}).get("spec", {}).get("search", {})
        lines.append("  params: " + ", ".join(f"{k}={best.params[k]}" for k in searched if k in best.params))
    else:
        lines.append("best: no healthy trial with a score yet")
    for trial in experiment.trials:
        if trial.baseline:
            score = f"FD-intra {trial.score:.3f}" if trial.score is not None else "no score"
            lines.append(f"baseline {trial.baseline}: {score}, {trial.stop_reason}"
                         + (f" ({trial.evidence})" if trial.evidence and trial.collapsed else ""))
    if experiment.skipped:
        lines.append(f"skipped {len(experiment.skipped)} unreadable entries (first: {experiment.skipped[0]})")
    lines.append(f"optuna journal: {experiment_dir / JOURNAL_FILE} (optuna-dashboard can open it)")
    lines.append(f"dashboard: cgan-study analyze {experiment_dir}")
    return "\n".join(lines)
