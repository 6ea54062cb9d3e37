"""Running a study: where it lives, what study.json records, starting it, and resuming it after
a killed driver. The Ray session, the Tuner and the summary are study/_session.py,
study/_tuner.py and study/_summary.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from study._session import (DEFAULT_CONNECT_TIMEOUT, Resources, plan_resources, ray_session, storage_note,
                            trial_slots)
from study._tuner import build_tuner
from study.spec import StudySpec
from trainable.errors import UserError, first_line
from trainable.experiment import (LOCK_FILE, SESSION_FILE, STUDY_FILE, TRIAL_PREFIX, StudyRecord, driver_lock,
                                  is_study, read_study, write_study)
from trainable.local import BUILTIN, load_data

DEFAULT_STORAGE = "runs/studies"


# A study name is one folder name: no path separators, no "..", nothing a shell or a URI must quote.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"study name {name!r}: use letters, digits, '.', '_' and '-' (not first: '.' or '-'), "
                        "no path separators; --storage says where studies go")
    return name


def check_storage(storage: str) -> None:
    """A local --storage is, or can become, a folder we may write: refused now, not after Ray has started."""
    if "://" in storage:
        return
    path = Path(storage).expanduser().resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"--storage {storage}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--storage {storage}: {existing} is not writable")


def study_dir(storage: str, name: str) -> Path:
    """The study's folder on this machine (for remote storage, the driver's local state)."""
    check_name(name)
    if "://" in storage:
        return Path(os.environ.get("CGAN_STUDY_LOCAL_STATE", Path.home() / ".cache" / "cgan-study" / "state")) / name
    return Path(storage).expanduser().resolve() / name


def run_study(spec: StudySpec, *, name: str, data: str | None = None, storage: str = DEFAULT_STORAGE,
              address: str | None = None, judge_steps: int = 1500, wait_for_gpus: bool = False,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, extra: StudyRecord | None = None) -> StudyRecord:
    """Run a study; ``extra`` entries go into study.json (a seed re-run records its source there)."""
    experiment_dir = study_dir(storage, name)
    check_storage(storage)
    if data and data != BUILTIN and not Path(data).is_file():
        raise UserError(f"{data}: no such prepared data file")
    storage_path = storage if "://" in storage else str(Path(storage).expanduser().resolve())
    study: StudyRecord = {"name": name, "storage": storage_path, "storage_uri": f"{storage_path.rstrip('/')}/{name}",
             "experiment_dir": str(experiment_dir), "data": str(Path(data).resolve()) if data and data != BUILTIN else BUILTIN,
             "judge_steps": judge_steps, "spec": spec.to_dict(),
             "baselines": dict(zip(spec.baselines, spec.baseline_points())), **(extra or {})}
    study["classes"] = list(load_data(study["data"]).class_names)  # bad data fails before Ray starts
    warm = _warm_start(spec, storage, experiment_dir, study["data"])
    if warm is not None:
        study["warm_start"] = warm.to_dict()
    with _one_driver(experiment_dir, name):
        if is_study(experiment_dir):
            raise UserError(f"study {name!r} already exists in {storage}; continue it with: cgan-study study resume {name}")
        _say(warm and warm.describe(study["data"]))
        _start(spec, study, experiment_dir, address=address, connect_timeout=connect_timeout,
               wait_for_gpus=wait_for_gpus, warm_start=warm.trials if warm else ())
    return study


def _warm_start(spec: StudySpec, storage: str, experiment_dir: Path, data: str):
    """The earlier study's trials for the sampler (study/_warm_start.py), or None; bad input is refused
    here, before Ray starts."""
    if not spec.warm_start:
        return None
    from study._warm_start import warm_start_trials

    try:
        source = load_study(spec.warm_start, storage)
    except UserError as exc:
        raise UserError(f"--warm-start {spec.warm_start}: {exc}") from None
    if source.resolve() == experiment_dir.resolve():
        raise UserError(f"--warm-start {spec.warm_start}: that is this study; name an earlier one")
    return warm_start_trials(source, spec, data)


def _start(spec: StudySpec, study: dict[str, Any], experiment_dir: Path, *, address: str | None,
           connect_timeout: float, wait_for_gpus: bool, warm_start: tuple[Any, ...] = ()) -> None:
    with ray_session(address, connect_timeout=connect_timeout, record=experiment_dir / SESSION_FILE):
        import ray

        resources = plan_resources(spec, ray.nodes(), wait_for_gpus=wait_for_gpus)
        _say(resources.note, storage_note(study["storage"], ray.nodes(), joined=bool(address),
                                          more_coming=wait_for_gpus), spec.unjudged_note())
        study["resources"] = dataclasses.asdict(resources)
        tuner = build_tuner(spec, study, resources, restore=False, warm_start=warm_start)
        # Written only now: a study that failed before this point can simply be run again.
        study["started_at"] = time.time()
        write_study(experiment_dir, study)
        _fit(tuner, _pending_limit(spec, resources))


def _say(*notes: str | None) -> None:
    for note in notes:
        if note:
            print(f"note: {note}", file=sys.stderr)


@contextlib.contextmanager
def _one_driver(experiment_dir: Path, name: str) -> Iterator[None]:
    """The study folder's driver lock, held while the study runs. A folder made only to hold the
    lock goes again when the study never started, so the study can simply be run again; only the
    driver that held the lock removes it (a driver refused on a new name once removed the lock of
    the one that won, after which a third could lock while the first still ran)."""
    fresh = not experiment_dir.exists()
    with driver_lock(experiment_dir, f"study {name!r}"):
        try:
            yield
        finally:
            if fresh and not is_study(experiment_dir):
                (experiment_dir / LOCK_FILE).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    experiment_dir.rmdir()


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block, as they were after it (processes started in it,
    Ray's included, inherit them)."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _pending_limit(spec: StudySpec, resources: Resources) -> int | None:
    """How many trials may wait to start at once: as many as the live cluster runs at once, or
    None under PBT, whose population Tune's own generator runs with its own limit."""
    import ray

    return None if spec.population_based else trial_slots(resources, ray.nodes())


def _fit(tuner, slots: int | None):
    """``tuner.fit()``, where Ctrl-C stops the study as Tune does (it saves its state and returns)
    but is then raised, so the command says the study was interrupted instead of summing it up
    as finished. Tune's own SIGINT handler is switched off for that, and its SIGUSR1 handler,
    always installed, does the graceful stop; a second Ctrl-C stops at once."""
    interrupted = False

    def on_ctrl_c(signum, frame):
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        print("interrupted: saving the study's state (Ctrl-C again to stop at once)", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGUSR1)

    handler = signal.signal(signal.SIGINT, on_ctrl_c)
    hint = _NoTuneRestoreHint()
    logging.getLogger("ray.tune.tune").addFilter(hint)
    # Tune lets a searcher other than its own random one keep only 1 trial pending at a time:
    # the second trial's worker would start only once the first's has, seconds later. As many
    # as the cluster can run at once start together (the user's own setting wins). Under PBT
    # (``slots`` None) Tune's own generator runs the population and keeps its own, larger limit.
    pending = {} if slots is None else {"TUNE_MAX_PENDING_TRIALS_PG": os.environ.get("TUNE_MAX_PENDING_TRIALS_PG",
                                                                                     str(slots))}
    with environment(TUNE_DISABLE_SIGINT_HANDLER="1", **pending):
        try:
            grid = tuner.fit()
        finally:
            signal.signal(signal.SIGINT, handler)
            logging.getLogger("ray.tune.tune").removeFilter(hint)
    if interrupted:
        raise KeyboardInterrupt
    return grid


class _NoTuneRestoreHint(logging.Filter):
    """Tune's "Resume experiment with: Tuner.restore(...)" after Ctrl-C is not what a user of this
    tool runs: the command says `cgan-study study resume NAME` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


class _NoMetricsFetchWarning(logging.Filter):
    """Tune's "Failed to fetch metrics for 2 trial(s): FileNotFoundError(... result.json and
    progress.csv were not found ...)" when it restores a killed study (seen in 3 of 3 resumes): its
    table of the results so far looks in the storage for the trials that were running when the driver
    died, whose first reports never got there; those trials go on from their last checkpoint. Nothing
    here reads that table (the study's files are read from disk and are whole: every report once,
    tests/e2e/test_study.py), so the traceback-like lines are not shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to fetch metrics for")


class _NoGoneCheckpointError(logging.Filter):
    """Tune's "Trial ...: Error handling checkpoint" with a FileNotFoundError for a checkpoint
    folder, when it restores a killed study (seen once in CI, tests/e2e/test_fused_study.py): the
    experiment state Tune saved last still lists a checkpoint its driver deleted (the oldest of
    three, two are kept) just before it died, and Tune deletes it again when the resumed trial saves
    its next one. Tune drops the entry before it deletes the folder
    (ray/train/_internal/checkpoint_manager.py), and the new checkpoint is registered already, so
    the folder being gone loses nothing: the experiment state takes the new checkpoint in the next
    time Tune notes the trial (its next save, or its end). Any other error handling a checkpoint is shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage().startswith("Trial ") and "Error handling checkpoint" in record.getMessage()
                    and isinstance(error, FileNotFoundError) and "checkpoint_" in str(error))


@contextlib.contextmanager
def _quiet_restore():
    """Tune's logs, while it restores a killed study, less the two errors it makes of what the
    driver's death left behind (_NoMetricsFetchWarning, _NoGoneCheckpointError)."""
    filters = [("ray.tune.analysis.experiment_analysis", _NoMetricsFetchWarning()),
               ("ray.tune.execution.tune_controller", _NoGoneCheckpointError())]
    for name, quiet in filters:
        logging.getLogger(name).addFilter(quiet)
    try:
        yield
    finally:
        for name, quiet in filters:
            logging.getLogger(name).removeFilter(quiet)


def resume_study(name: str, *, storage: str = DEFAULT_STORAGE, address: str | None = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> dict[str, Any]:
    experiment_dir = study_dir(storage, name)
    study = read_study(experiment_dir)
    if study is None:
        raise UserError(f"no study {name!r} in {storage} (looked for {experiment_dir / STUDY_FILE})")
    spec = StudySpec.from_dict(study["spec"])
    from ray import tune

    with _one_driver(experiment_dir, name):
        if not tune.Tuner.can_restore(study["storage_uri"]):
            raise UserError(f"study {name!r} has no saved experiment state to resume from in {study['storage_uri']}")
        with ray_session(address, connect_timeout=connect_timeout, record=experiment_dir / SESSION_FILE):
            import ray

            _say(storage_note(study["storage"], ray.nodes(), joined=bool(address)))
            _resume(spec, study, experiment_dir)
    return study


def _resume(spec: StudySpec, study: dict[str, Any], experiment_dir: Path) -> None:
    resources = Resources(**study["resources"])
    with _quiet_restore():
        tuner = build_tuner(spec, study, resources, restore=True)
        grid = _fit(tuner, _pending_limit(spec, resources))
    known = {Path(result.path).name for result in grid if result.path}
    if "://" in study["storage_uri"]:
        _set_aside_remote_orphans(study["storage_uri"], known)
    _set_aside_orphans(experiment_dir, known)


def _set_aside_remote_orphans(uri: str, known: set[str]) -> None:
    """_set_aside_orphans in a study stored under a URI: there the folders are moved (copied, then
    deleted) to orphaned/ in the storage, where the readers do not fetch from."""
    import pyarrow.fs

    filesystem, root = pyarrow.fs.FileSystem.from_uri(uri)
    for info in filesystem.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True)):
        if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith(TRIAL_PREFIX) \
                and info.base_name not in known:
            target = f"{root}/orphaned/{info.base_name}"
            pyarrow.fs.copy_files(info.path, target, source_filesystem=filesystem, destination_filesystem=filesystem)
            filesystem.delete_dir(info.path)
            print(f"note: {info.base_name} was started after the driver's last save; moved to {uri}/orphaned/",
                  file=sys.stderr)


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
    """The folder of a study, named by its folder or by its name under ``storage``. A study stored
    under a URI (s3://...) is read from the driver's local folder of it, into which its trial
    folders are fetched first."""
    path = Path(name_or_path)
    if not is_study(path):
        if os.sep in name_or_path or "/" in name_or_path:
            raise UserError(f"{name_or_path}: not a study folder (no {STUDY_FILE})")
        path = study_dir(storage, name_or_path)
        if not is_study(path):
            raise UserError(f"no study {name_or_path!r} in {storage}")
    uri = (read_study(path) or {}).get("storage_uri", "")
    if "://" in uri:
        fetch_trials(uri, path)
    return path


def fetch_trials(uri: str, local: Path) -> None:
    """Copy the trial folders of a study stored under ``uri`` into ``local``, where the readers look:
    the files that are new or have changed size (result.json grows, checkpoints come and go)."""
    import pyarrow.fs

    from trainable.experiment import write_bytes_atomic

    try:
        filesystem, root = pyarrow.fs.FileSystem.from_uri(uri)
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
        for info in found:
            relative = info.path[len(root):].lstrip("/")
            if info.type != pyarrow.fs.FileType.File or not relative.startswith(TRIAL_PREFIX):
                continue  # Tune's own experiment state stays where Tune reads it
            target = local / relative
            if target.is_file() and target.stat().st_size == info.size:
                continue
            with filesystem.open_input_stream(info.path) as stream:
                write_bytes_atomic(target, stream.read())
    except OSError as exc:
        raise UserError(f"cannot read the study's trials from {uri} ({first_line(exc)})") from None
