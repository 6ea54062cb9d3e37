"""The training loop: steps, and at each evaluation a report to a callback.

The reporter decides where results go (a local trial folder, or Ray Tune); the loop only
assembles one flat result row per evaluation, never with NaN in it (Optuna would leave the
trial RUNNING forever), and applies the collapse verdict.

On a GPU the loop never waits for a step: a step's statistics stay on the device and are summed
there, and the host reads them at a report, every NONFINITE_CHECK_EVERY iterations (to stop a
diverged trial) and when the progress line is redrawn. Reading them each step would stop the CPU
from queueing the next step's kernels while the GPU works.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from trainable.config import TrainConfig
from trainable.experiment import (COMPLETED, CONFIG_CHANGE, DIVERSITY_LOWEST_CLASS, DIVERSITY_PER_CLASS, FREEZE_EVENTS,
                                  HYPER, INTERRUPTED, STOP_REASON, config_change)
from trainable.progress import Progress
from trainable.training import STEP_STATISTICS, DeviceStepStats, Trainer
from trainable.verdict import verdict_for

# How often (in iterations) the host looks for a non-finite step between reports: a diverged
# trial is reported and stopped up to this many iterations after its first NaN.
NONFINITE_CHECK_EVERY = 50


class Reporter(Protocol):
    def __call__(self, row: dict, grid: np.ndarray, trainer: Trainer) -> None: ...


def clean(value):
    """JSON-safe and NaN-free: non-finite floats become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class _Window:
    """Means of the step statistics since the last report, summed on the device."""

    def __init__(self, device: torch.device) -> None:
        # float64: each sum is the same sequence of double additions as a sum of the steps' values
        # read as Python floats, so the means do not depend on where they were summed.
        self.sums = torch.zeros(len(STEP_STATISTICS), dtype=torch.float64, device=device)
        self.count = self.frozen = 0
        self.started = time.perf_counter()

    def add(self, stats: DeviceStepStats) -> None:
        self.sums += stats.values
        self.count += 1
        self.frozen += stats.frozen

    def nonfinite(self) -> bool:
        """Whether a step since the last report had a NaN or infinite statistic (a host sync). A
        float32 value summed in float64 cannot overflow, so a sum is finite exactly when its values are."""
        return not bool(torch.isfinite(self.sums).all())

    def row(self) -> dict:
        seconds = time.perf_counter() - self.started
        sums = self.sums.tolist()
        means = {key: total / max(1, self.count) for key, total in zip(STEP_STATISTICS, sums)}
        return {**means, "nonfinite": not all(math.isfinite(total) for total in sums),
                "frozen_share": self.frozen / max(1, self.count),
                "iterations_per_s": self.count / seconds if seconds > 0 else 0.0}


class _CtrlC:
    """Ctrl-C, kept out of the middle of a step. A KeyboardInterrupt raised between D's update and
    G's would leave the trainer half a step on, with the iteration not counted: its checkpoint then
    resumes into a different run (seen: stopped at iteration 128 and resumed to 400, FD-intra
    54.675 against 53.805 uninterrupted). The first Ctrl-C is noted and the loop stops after the
    step; a second one interrupts at once. Only the main thread can take signals: elsewhere (a Ray
    worker's training thread) nothing changes."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator["_CtrlC"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def note(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        previous = signal.signal(signal.SIGINT, note)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def train(trainer: Trainer, reporter: Reporter, *, history: list[dict] | None = None,
          stop_on_collapse: bool = True, progress: bool = False,
          describe: Callable[[dict], str] | None = None,
          on_complete: Callable[[Trainer], dict] | None = None,
          schedule: dict[int, TrainConfig] | None = None) -> str:
    """Train until the configured iterations, a collapse (if ``stop_on_collapse``) or Ctrl-C.

    ``history`` holds the rows already reported (on resume). ``on_complete`` adds its keys to the
    last row of a trial that reached its iterations, never to another row (a final-only metric
    such as CAS stays off the per-evaluation path). ``schedule`` ({iteration: config}, a replayed
    PBT schedule) switches to each config when the trainer is at its iteration; the next report
    says what changed (CONFIG_CHANGE). Returns the stop reason: completed, interrupted, or the
    collapse kind.
    """
    config = trainer.config
    reports = _Reports(trainer, reporter, history, stop_on_collapse, on_complete)
    meter = Progress("training", config.iterations, enabled=progress)
    window = _Window(trainer.device)
    latest = ""

    ctrl_c = _CtrlC()
    try:
        with ctrl_c.deferred():
            while trainer.iteration < config.iterations and not ctrl_c.requested:
                if schedule and trainer.iteration in schedule:
                    reports.changed(trainer.apply_config(schedule[trainer.iteration]))
                stats = trainer.advance()
                window.add(stats)
                finished = trainer.iteration >= config.iterations
                if (trainer.iteration % config.eval_every == 0 or finished
                        or (trainer.iteration % NONFINITE_CHECK_EVERY == 0 and window.nonfinite())):
                    row = reports.make(window, COMPLETED if finished else None)
                    window = _Window(trainer.device)
                    latest = describe(row) if describe else ""
                    if row[STOP_REASON]:
                        meter.close(trainer.iteration, latest)
                        return row[STOP_REASON]
                if meter.due():
                    d_loss, g_loss = stats.values[:2].tolist()
                    meter.update(trainer.iteration, f"D {d_loss:.3f} G {g_loss:.3f} {latest}")
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread: wherever it came
        pass
    else:
        if not ctrl_c.requested:
            meter.close(trainer.iteration, latest)
            return COMPLETED
    # Ctrl-C: one last report and checkpoint, so the trial can resume from here.
    if window.count:
        reports.make(window, INTERRUPTED)
    meter.close(trainer.iteration, INTERRUPTED)
    return INTERRUPTED


class _Reports:
    """The trial's reports: each evaluation's row, its verdict and stop reason, handed to the reporter."""

    def __init__(self, trainer: Trainer, reporter: Reporter, history: list[dict] | None, stop_on_collapse: bool,
                 on_complete: Callable[[Trainer], dict] | None) -> None:
        self.trainer, self.reporter, self.on_complete = trainer, reporter, on_complete
        self.stop_on_collapse = stop_on_collapse
        self.history = list(history or [])
        self.elapsed_before = self.history[-1]["time_total_s"] if self.history else 0.0
        self.started = time.perf_counter()
        self.change: dict | None = None  # a replayed schedule's change, said by the next report

    def changed(self, changes: dict) -> None:
        if changes:
            self.change = config_change(self.trainer.iteration, changes)

    def make(self, window: _Window, stop_reason: str | None) -> dict:
        trainer, config = self.trainer, self.trainer.config
        evaluation_started = time.perf_counter()
        scores, grid = trainer.evaluate()
        row = {"iteration": trainer.iteration, "training_iteration": len(self.history) + 1, **window.row(),
               "frozen": trainer.freeze.frozen, FREEZE_EVENTS: trainer.freeze.take_events(), HYPER: trainer.hyperparameters(),
               **scores,
               "eval_s": time.perf_counter() - evaluation_started}
        if DIVERSITY_PER_CLASS in row:
            row[DIVERSITY_LOWEST_CLASS] = trainer.class_names[int(np.argmin(row[DIVERSITY_PER_CLASS]))]
        if self.change is not None:
            row[CONFIG_CHANGE], self.change = self.change, None
        row = clean(row)
        verdict = verdict_for([*self.history, row], config)
        if stop_reason is None and verdict.collapsed and self.stop_on_collapse:
            stop_reason = verdict.kind
        row.update(verdict=verdict.kind, verdict_evidence=verdict.evidence,
                   time_total_s=self.elapsed_before + time.perf_counter() - self.started,
                   done=stop_reason is not None, stop_reason=stop_reason)
        if stop_reason == COMPLETED and self.on_complete is not None:
            row.update(clean(self.on_complete(trainer)))
        self.history.append(row)
        self.reporter(row, grid, trainer)
        return row
