"""The Ray session a study runs in, and the per-trial resources the cluster can really give.

Joining a cluster fails in seconds where nothing answers; an embedded Ray records its
processes in the study folder, so that those a killed driver left running are ended by the
study's next driver; a plain local --storage on a cluster of several nodes is warned of.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from study.spec import StudySpec
from trainable.errors import UserError
from trainable.experiment import write_json


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


def trial_slots(resources: Resources, nodes: list[dict[str, Any]]) -> int:
    """How many trials the live nodes can run at once with ``resources`` each (at least 1)."""
    slots = 0
    for node in nodes:
        if node.get("Alive", True):
            have = node.get("Resources", {})
            fits = int(have.get("CPU", 0) // resources.cpus) if resources.cpus > 0 else 10**6
            if resources.gpus > 0:
                fits = min(fits, int(have.get("GPU", 0) // resources.gpus))
            slots += fits
    return max(1, min(slots, 10**4))


def storage_note(storage: str, nodes: list[dict[str, Any]], *, joined: bool, more_coming: bool = False) -> str:
    """A warning when a study on a cluster of several nodes (or of nodes still to come) stores its
    results under a plain local path: a worker on another machine writes its checkpoints and
    grids where the driver never looks, unless the path is a file system every node shares."""
    alive = sum(1 for node in nodes if node.get("Alive", True))
    if "://" in storage or not joined or (alive < 2 and not more_coming):
        return ""
    coming = " and more to come" if more_coming else ""
    return (f"--storage {storage} is a local path on a cluster of {alive} node(s){coming}: unless every node "
            "mounts it at the same path (NFS, EFS), use a URI such as s3://BUCKET/studies")


DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds a cluster's address may take to answer


def wait_for_address(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Refuse within ``timeout`` seconds an address where nothing listens: Ray itself retries for
    minutes. ``auto`` and addresses without a port are Ray's to read (it answers those at once)."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.1, min(5.0, left))):
                return
        except OSError as exc:
            if time.monotonic() + 1 > deadline:
                raise UserError(f"cannot join Ray at {address}: nothing answers there after {timeout:g} s "
                                f"({exc.strerror or exc}); is its head node up? (--connect-timeout waits longer)"
                                ) from None
            time.sleep(1)


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every process, from /proc (empty elsewhere)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
        except (OSError, IndexError):
            continue  # ended while we looked
        table[int(stat.parent.name)] = (int(fields[1]), int(fields[19]))
    return table


def record_session(path: Path) -> None:
    """Write the processes of the embedded Ray this driver started (all its descendants), with
    their start times, so that the next run can end what a killed driver left behind."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    write_json(path, {"driver": os.getpid(), "processes": [[pid, table[pid][1]] for pid in sorted(found)]})


def end_leftovers(path: Path) -> list[int]:
    """End the processes a killed driver's embedded Ray left running, as ``record_session`` wrote
    them: only those whose pid still names the same process (same start time), with SIGKILL, as
    Ray's agents ignore SIGTERM. Returns their pids."""
    try:
        recorded = json.loads(path.read_text())["processes"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    table = _processes()
    ended = []
    for pid, started in recorded:
        if table.get(pid, (None, None))[1] == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                ended.append(pid)
    path.unlink(missing_ok=True)
    return ended


def _end_monitor() -> None:
    """End the embedded Ray's autoscaler monitor before ``ray.shutdown``, which stops the GCS
    first: the monitor then answers its SIGTERM by reporting to the GCS that is gone, and is
    killed a second later (1.0 of the 1.4 s a shutdown takes, measured here). One machine has
    nothing to autoscale, so nothing is lost. Ray's private node object: skipped if it changes."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    for info in (getattr(node, "all_processes", None) or {}).get("monitor", []):
        process = getattr(info, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(Exception):
                process.wait(timeout=5)


@contextlib.contextmanager
def ray_session(address: str | None, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                record: Path | None = None) -> Iterator[None]:
    """Join a cluster at ``address`` or start an embedded Ray sized to this machine; always shut it down.

    With ``record`` (a file in the study folder), an embedded Ray's processes are written there
    while it runs, and what a killed earlier driver of the same study left running is ended first."""
    if record is not None:
        ended = end_leftovers(record)
        if ended:
            print(f"note: ended {len(ended)} Ray processes that a killed driver of this study left running "
                  f"(pids {', '.join(map(str, ended))})", file=sys.stderr)
    if address:
        wait_for_address(address, connect_timeout)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # small window for a killed driver to lose
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune warns that experiment-state snapshots came often whenever trials report faster than
    # every 5 s: the forced snapshot follows from the study's own checkpoint settings, and a user
    # can do nothing about it (seen in every short study).
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray

    try:
        if address:
            ray.init(address=address, logging_level="WARNING")
        else:
            # Token auth, the dashboard and usage stats cost seconds and memory on a small machine.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # The raylet would start one idle worker per CPU at once, which a Tune trial never
            # uses (its actor has a runtime env, Tune's env vars, so it gets a worker of its own):
            # on a small machine they only take CPU from the trials' start.
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                     _system_config={"enable_worker_prestart": False, "prestart_worker_first_driver": False})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot {'join Ray at ' + address if address else 'start Ray'}: {exc}") from None
    try:
        if record is not None and not address:
            record_session(record)
        yield
    finally:
        if not address:
            _end_monitor()
        ray.shutdown()
        if record is not None:
            record.unlink(missing_ok=True)
