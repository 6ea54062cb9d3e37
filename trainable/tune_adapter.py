"""The Ray Tune function trainable: the one module of ``trainable/`` that imports Ray.

A thin wrapper around the same Trainer and loop a local trial uses. It resumes from
``ray.tune.get_checkpoint()``, reports a result and a checkpoint at every evaluation with
``ray.tune.report``, and writes the sample grids into the trial's working folder (synced to
the study's storage as artifacts). The data set and the judge arrive through the object
store (``tune.with_parameters``), once per worker node, not once per trial from disk. With
$CGAN_STUDY_TIMINGS set, each trial logs where its time goes (benchmarks/study_overhead.py).

Under Population Based Training a trial restarts from another trial's checkpoint with a new
config (Ray's exploit and explore): the Trainer applies the new rates and the like on restore,
the first report after it says what changed (CONFIG_CHANGE), and each checkpoint carries the
schedule of configs its weights were trained with (LINEAGE_FILE), which a replay follows.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import posixpath
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from trainable.cas import final_cas_row
from trainable.checkpoint import checkpoint_bytes, restore_newest_readable, write_checkpoint
from trainable.config import TrainConfig
from trainable.data import PreparedDataset
from trainable.errors import UserError
from trainable.experiment import (CHECKPOINT_FILE, CONFIG_CHANGE, CONTINUES, FID_INTRA, GRID, HISTORY_FILE, LINEAGE_FILE,
                                  NODE_ID, SCORE, config_change, grid_file, read_checkpoint_records, split_params,
                                  trial_dir_name, trial_params)
from trainable.fusion_server import FusionServer
from trainable.judge import Judge
from trainable.loop import train
from trainable.training import Trainer
from trainable.trial_dir import write_grid

PENALTY = 1e6  # the score of a report with no finite quality value: never NaN, always worst
SERVER_RESTARTS = 5  # how often a study's fusion server is started again after its process died
SERVER_START_S = 600  # how long a study waits for its fusion server to start (a GPU to come free)
TIMINGS_ENV = "CGAN_STUDY_TIMINGS"  # a file path: each trial appends where its time went (benchmarks)


# Ray logs a line in a trial's worker at every report ("Checkpoint successfully created at ...")
# and every restore ("Restored on ... from checkpoint ..."), which its log monitor copies to the
# driver's terminal: under PBT dozens of lines that tell the user nothing. Set when the worker
# imports this module, which comes before both.
for _logger in ("ray.train._internal.storage", "ray.tune.trainable.trainable"):
    logging.getLogger(_logger).setLevel(logging.WARNING)


def log_timing(trial_id: str, event: str, **fields) -> None:
    """With $CGAN_STUDY_TIMINGS set, append one line of JSON: the trial, this worker, the event, the
    time and ``fields`` (benchmarks/study_overhead.py reads them; one short append is atomic)."""
    path = os.environ.get(TIMINGS_ENV)
    if path:
        line = json.dumps({"trial": trial_id, "pid": os.getpid(), "event": event, "time": time.time(), **fields})
        with open(path, "a") as stream:
            stream.write(line + "\n")


def score_of(row: dict, metric: str) -> float:
    """The finite number the scheduler and searcher see (NaN would leave an Optuna trial RUNNING)."""
    value = row.get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else PENALTY


def inject_faults(history: list[dict]) -> None:
    """Fault injection for the retry tests, after a report and its checkpoint. With
    CGAN_STUDY_FAIL_ONCE set to a file path, the first trial to report raises once (and creates
    the file). With CGAN_STUDY_DAMAGE_ONCE, the first trial to make its second report cuts the
    checkpoint it has just stored short, then raises once: its retry must fall back."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    fail = os.environ.get("CGAN_STUDY_FAIL_ONCE")
    if fail and not Path(fail).exists():
        Path(fail).write_text(f"{trial_id} failed at iteration {history[-1]['iteration']}")
        raise RuntimeError("injected failure (CGAN_STUDY_FAIL_ONCE): the trial must be retried from its checkpoint")
    damage = os.environ.get("CGAN_STUDY_DAMAGE_ONCE")
    if damage and len(history) >= 2 and not Path(damage).exists():
        stored = tune.get_checkpoint()  # the checkpoint just reported, where the study stores it
        path = posixpath.join(stored.path, CHECKPOINT_FILE)
        with stored.filesystem.open_input_stream(path) as stream:
            data = stream.read()
        with stored.filesystem.open_output_stream(path) as stream:
            stream.write(data[:len(data) // 2])
        Path(damage).write_text(f"{trial_id} {posixpath.basename(stored.path)}")
        raise RuntimeError("injected failure (CGAN_STUDY_DAMAGE_ONCE): the retry must fall back a checkpoint")


def trial_checkpoints(filesystem, folder: str) -> list:
    """A study trial's checkpoints in its ``folder`` of the study's storage, newest first
    (CheckpointConfig keeps the last two), on whatever file system the storage is."""
    from pyarrow.fs import FileSelector, FileType
    from ray import tune

    found = filesystem.get_file_info(FileSelector(folder, allow_not_found=True))
    names = sorted((info.base_name for info in found if info.type == FileType.Directory
                    and info.base_name.startswith("checkpoint_")), reverse=True)
    return [tune.Checkpoint(path=posixpath.join(folder, name), filesystem=filesystem) for name in names]


def older_checkpoints(checkpoint) -> list:
    """The trial's earlier checkpoints beside ``checkpoint`` in the study's storage, newest first."""
    parent, name = posixpath.split(checkpoint.path.rstrip("/"))
    return [older for older in trial_checkpoints(checkpoint.filesystem, parent)
            if posixpath.basename(older.path) < name]


def _restore(trainer: Trainer, checkpoint) -> tuple[list[dict], dict | None]:
    """Load one Tune checkpoint into ``trainer``; returns the history and the lineage saved with it
    (None in a checkpoint from before lineages were kept)."""
    with checkpoint.as_directory() as directory:
        trainer.restore(directory)
        path = Path(directory) / HISTORY_FILE
        history, lineage = read_checkpoint_records(directory)
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise UserError(f"{path}: unreadable (a list of reports expected)")
    return history, lineage if isinstance(lineage, dict) else None


def restore_study_trial(trainer: Trainer, checkpoint, *, where: str) -> tuple[list[dict], dict | None]:
    """Restore from Tune's latest checkpoint of a trial or, when it does not load, from the one Tune
    kept before it (said on stderr, which Ray shows in the driver's output); returns the history
    and the lineage."""
    return restore_newest_readable(trainer, [checkpoint, *older_checkpoints(checkpoint)],
                                   lambda candidate: _restore(trainer, candidate),
                                   name=lambda candidate: posixpath.basename(candidate.path), where=where)


def restore_continued(trainer: Trainer, source: dict, *, where: str) -> tuple[list[dict], dict | None]:
    """Restore a trial that goes on from another trial of its study ([study] lengthen; ``source``:
    the CONTINUES entry of its params) from that trial's newest checkpoint at or before the iteration
    it goes on from (an older one where that does not load); returns the history and the lineage."""
    from pyarrow.fs import FileSystem

    candidates = trial_checkpoints(*FileSystem.from_uri(source["uri"]))

    def restore(checkpoint) -> tuple[list[dict], dict | None]:
        history, lineage = _restore(trainer, checkpoint)
        if trainer.iteration > source["iteration"]:
            raise UserError(f"{checkpoint.path}: at iteration {trainer.iteration}, past {source['iteration']}")
        return history, lineage

    return restore_newest_readable(trainer, candidates, restore, name=lambda candidate: posixpath.basename(candidate.path),
                                   where=where)


def _after_restore(trainer: Trainer, lineage: dict | None, trial_id: str) -> tuple[dict | None, list[dict]]:
    """(CONFIG_CHANGE entry or None, the schedule of the restored weights from here on). The trainer
    has applied its config; this says how it differs from the one the checkpoint trained with, and
    whose weights it took (PBT's exploit: another trial's checkpoint)."""
    params = trial_params(trainer.config)
    before = trainer.checkpoint_config
    changes = trainer.config.changes_from(before) if before is not None else {}
    owner = (lineage or {}).get("trial", trial_id)
    schedule = list((lineage or {}).get("schedule") or [{"iteration": 0, "trial": owner,
                                                          "config": trial_params(before or trainer.config)}])
    from_trial = owner if owner != trial_id else None
    if not changes and from_trial is None:
        return None, schedule  # a retry or a resumed study: the trial goes on as it was
    # A step for each exploit, even one whose explore changed nothing, as Ray's policy file has.
    schedule.append({"iteration": trainer.iteration, "trial": trial_id, "config": params})
    return config_change(trainer.iteration, changes, from_trial), schedule


def _start(trainer: Trainer, checkpoint, source: dict | None, trial_id: str) -> tuple[list[dict], dict | None, list[dict]]:
    """(history, CONFIG_CHANGE entry or None, schedule) of a trial starting: from Tune's checkpoint of
    it (a retry, a resumed study, PBT's exploit), else from the end of the trial it goes on from
    (``source``, [study] lengthen), else afresh."""
    if checkpoint is None and not source:
        return [], None, [{"iteration": 0, "trial": trial_id, "config": trial_params(trainer.config)}]
    history, lineage = (restore_study_trial(trainer, checkpoint, where=f"trial {trial_id}") if checkpoint is not None
                        else restore_continued(trainer, source, where=f"trial {trial_id}, going on from "
                                                                      f"{trial_dir_name(source['trial'])}"))
    return history, *_after_restore(trainer, lineage, trial_id)


def quiet_ray_exit(unraisable, default=sys.unraisablehook) -> None:
    """``sys.unraisablehook`` of a trial's worker: Ray ends a trial's actor with SIGTERM, whose handler
    raises SystemExit; where that lands in a garbage-collection callback Python cannot raise it and
    printed "Exception ignored in ... SystemExit: 1" with a traceback, which Ray forwarded to the
    study's terminal (seen at the end of 2 of about 20 benchmark studies). Python drops that
    SystemExit either way (the actor is ended by Ray as before); this only keeps it off the
    terminal. Anything else is printed as Python would."""
    if isinstance(unraisable.exc_value, SystemExit):
        return
    default(unraisable)


def cgan_trainable(config: dict, dataset: PreparedDataset | None = None, judge: Judge | None = None,
                   metric: str = FID_INTRA, cas_steps: int | None = None, fusion: str | None = None) -> None:
    """``cas_steps``: train CAS's classifier that long at the trial's last evaluation (None: no CAS).
    ``fusion``: the name of the study's fusion server, which then trains the trial (with the others
    of its architecture fused; ``start_fusion_server``)."""
    entered = time.time()
    import ray
    import torch
    from ray import tune

    sys.unraisablehook, trial_id = quiet_ray_exit, tune.get_context().get_trial_id()
    log_timing(trial_id, "entered", at=entered)
    # Use exactly the CPUs this trial was given: two 1-CPU trials must not each start 2 threads.
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    params, meta = split_params(config)
    trainer = Trainer(TrainConfig.from_dict(params), dataset, judge)
    history, change, schedule = _start(trainer, tune.get_checkpoint(), meta.get(CONTINUES), trial_id)
    log_timing(trial_id, "ready")
    trial_dir = Path(os.getcwd())  # Ray runs the function in the trial's working folder
    node_id = ray.get_runtime_context().get_node_id()  # hostname and IP cannot tell two nodes of one host apart

    def report(row: dict, grid: np.ndarray, trainer: Trainer | bytes) -> None:
        """One report to Tune with its checkpoint: of the trainer, or of a trainer's state (bytes)
        that the fusion server trained."""
        nonlocal change
        started = time.perf_counter()
        write_grid(trial_dir, row["iteration"], grid)
        if change is not None:  # the first report since the config changed says so
            row[CONFIG_CHANGE], change = change, None
        history.append(row)
        with tempfile.TemporaryDirectory() as directory:
            gridded = time.perf_counter()
            write_checkpoint(trainer if isinstance(trainer, bytes) else trainer.state_dict(), directory)
            (Path(directory) / HISTORY_FILE).write_text(json.dumps(history))
            (Path(directory) / LINEAGE_FILE).write_text(json.dumps({"trial": trial_id, "iteration": row["iteration"],
                                                                        "schedule": schedule}))
            saved = time.perf_counter()
            metrics = {key: value for key, value in row.items() if key not in ("done",)}
            metrics.update({SCORE: score_of(row, metric), GRID: grid_file(row["iteration"]), NODE_ID: node_id})
            # Copies the checkpoint to storage, syncs the grids, then waits for the driver's next call.
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
            reported = time.perf_counter()
        log_timing(trial_id, "report", iteration=row["iteration"], eval_s=row["eval_s"], grid_s=gridded - started,
                   save_s=saved - gridded, report_s=reported - saved)
        inject_faults(history)

    if fusion is not None:
        _train_in_server(fusion, trial_id, trainer, history, report)
    else:
        on_complete = None if cas_steps is None else functools.partial(final_cas_row, real=dataset, steps=cas_steps)
        # Collapse stopping is the study's stoppers' job, so every trial ends the same way.
        train(trainer, report, history=history, stop_on_collapse=False, on_complete=on_complete)
    log_timing(trial_id, "ended")


def _train_in_server(name: str, trial_id: str, trainer: Trainer, history: list[dict], report) -> None:
    """The trial trained by the study's fusion server (trainable/fusion_server.py): it joins with its
    restored state, then reports each row the server trains it to, with that state's checkpoint."""
    import ray

    if trainer.iteration >= trainer.config.iterations:
        return  # restored at its end: nothing left to train or report (as loop.train)
    state = checkpoint_bytes(trainer.state_dict()) if trainer.iteration else None
    lost = 0
    while True:
        try:
            server = ray.get_actor(name)
            ray.get(server.join.remote(trial_id, trainer.config.to_dict(), state, list(history)))
            while (answer := ray.get(server.next_report.remote(trial_id))) is not None:
                row, grid, state = answer
                report(row, grid, state)
                if row["done"]:
                    return
            # The server dropped the trial (it did not ask for a long while): join again from its last state.
        except ray.exceptions.RayActorError:
            # The server's process died (Ray starts it again, empty): join again from the last
            # state reported, so the steps since are trained again, as a retry from a checkpoint would.
            lost += 1
            if lost > SERVER_RESTARTS:
                raise
            time.sleep(1.0)


class FusionServerActor(FusionServer):
    """The fusion server as the Ray actor a study starts (``start_fusion_server``)."""

    def __init__(self, dataset: PreparedDataset, judge: Judge | None, cas_steps: int | None) -> None:
        import torch

        sys.unraisablehook = quiet_ray_exit  # ended by SIGTERM as a trial's actor is
        torch.set_num_threads(os.cpu_count() or 1)  # this node's: the trials' CPUs, which wait on it
        on_complete = None if cas_steps is None else functools.partial(final_cas_row, real=dataset, steps=cas_steps)
        super().__init__(dataset, judge, on_complete=on_complete)

    def ready(self) -> str:
        return str(self.device)

    def on_round(self, groups: list[int]) -> None:
        log_timing("fusion-server", "round", groups=groups)
        # Fault injection for the tests: with CGAN_STUDY_KILL_SERVER_ONCE set to a file path, the server's
        # process dies once (and creates the file) at its fourth round, with trials mid-way.
        marker = os.environ.get("CGAN_STUDY_KILL_SERVER_ONCE")
        if marker and len(self.rounds) >= 4 and not Path(marker).exists():
            Path(marker).write_text(f"fusion server killed at round {len(self.rounds)}")
            os._exit(1)


_SERVERS: dict[str, tuple] = {}  # the driver's handles and the servers' data: they live as long as the driver


def start_fusion_server(name: str, dataset: PreparedDataset, judge: Judge | None, *, cas_steps: int | None,
                        gpu: bool) -> str:
    """Start the study's fusion server as a named actor (on the GPU it takes whole when ``gpu``) and
    wait until it is up; returns its name, which the trials find it by. Its CPUs are those the trials
    hold while they wait for it."""
    import ray

    actor = ray.remote(FusionServerActor).options(name=name, num_cpus=0, num_gpus=1 if gpu else 0,
                                                  max_concurrency=10_000, max_restarts=SERVER_RESTARTS)
    # In the object store, held here: a server started again after its process died is built from them again.
    data = (ray.put(dataset), ray.put(judge))
    handle = actor.remote(*data, cas_steps)
    ready, _ = ray.wait([handle.ready.remote()], timeout=SERVER_START_S)
    if not ready:
        raise UserError(f"the fusion server (fused_trials) did not start within {SERVER_START_S} s: it needs "
                        f"{'a whole GPU' if gpu else 'a place'} on one node")
    ray.get(ready[0])
    _SERVERS[name] = (handle, data)
    return name
