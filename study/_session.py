"""The Ray session a study runs in, and the per-trial resources the cluster can really give."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Iterator

from study.spec import StudySpec
from trainable.errors import UserError


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
