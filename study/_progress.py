"""A study's live view on the terminal: one line per trial event (started, reported, ended), each
ended trial with the study's progress and an ETA. Tune's full status table comes every few minutes
only; ``cgan-study study status NAME`` shows it from disk at any time.

    [  0:41] trial_3a46ccd0 started   V1: latent_size 80, d_filters 16,32,64, d_dropout 0.3, ...
    [  1:12] trial_3a46ccd0 iter 300   FD-intra 41.2  acc 0.19  div 0.83
    [  3:05] trial_3a46ccd0 ended     completed at 1200: FD-intra 8.05, acc 0.54 | 3 of 12 trials, ETA 6:10
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback

from study._stopping import StopLedger
from study.spec import StudySpec
from trainable.experiment import (COND_ACCURACY, CONTINUES, DIVERSITY_MIN, ERROR, STOP_REASON, metric_label, start_iteration,
                                  trial_dir_name)

TABLE_EVERY_S = 300  # Tune's status table: every five minutes, beside these lines
WIDTH = 118  # a start line's parameters are cut here


def clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


class ProgressLines(Callback):
    """Prints the study's trial events (Tune calls it in the driver)."""

    def __init__(self, spec: StudySpec, experiment_dir: str) -> None:
        self.spec = spec
        self.experiment_dir = experiment_dir
        self._began = time.monotonic()
        self._reached: dict[str, int] = {}  # trial id -> its last reported iteration
        self._ended_ids: set[str] = set()
        self._began_at: dict[str, int] = {}  # trial id -> the iteration it started at, where not 0

    def __setstate__(self, state: dict[str, Any]) -> None:  # restored with the study's state: the clock is this driver's
        self.__dict__.update(state, _began=time.monotonic())

    def setup(self, **info) -> None:
        self._began = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"[{clock(time.monotonic() - self._began):>7}] {text}", flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        name = self.spec.baseline_of(trial.config) or "searched"
        params = ", ".join(f"{key} {_number(trial.config[key]) if isinstance(trial.config[key], float) else trial.config[key]}"
                           for key in self.spec.search if key in trial.config)
        length = trial.config.get("iterations")
        if "iterations" not in self.spec.search and length not in (None, self.spec.base_config().iterations):
            name += f" ({length} iterations)"  # lengthened by the study (StudySearcher.length)
        if began := start_iteration(trial.config):  # it goes on from another trial's end
            name += f", going on from {trial_dir_name(trial.config[CONTINUES]['trial'])} at {began}"
            self.__dict__.setdefault("_began_at", {})[trial.trial_id] = self._reached[trial.trial_id] = began
        line = f"{trial_dir_name(trial.trial_id)} started   {name}: {params}"
        self._say(line if len(line) <= WIDTH else line[:WIDTH - 3] + "...")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        reached = result.get("iteration")
        if isinstance(reached, int):
            self._reached[trial.trial_id] = reached
        self._say(f"{trial_dir_name(trial.trial_id)} iter {reached:<6} {metric_label(self.spec.metric)} "
                  f"{_number(result.get(self.spec.metric))}  acc {_number(result.get(COND_ACCURACY), 2)}  "
                  f"div {_number(result.get(DIVERSITY_MIN), 2)}")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._ended(trial, trials)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._ended(trial, trials)

    def _ended(self, trial, trials: list) -> None:
        self._ended_ids.add(trial.trial_id)
        last = trial.last_result or {}
        entry = StopLedger(self.experiment_dir).get(trial.trial_id) or {}
        reason = entry.get(STOP_REASON, "completed")
        if reason == ERROR:
            what = f"failed: {str(entry.get('evidence') or '')[:80]}"
        else:
            what = (f"{reason} at {last.get('iteration')}: {metric_label(self.spec.metric)} "
                    f"{_number(last.get(self.spec.metric))}, acc {_number(last.get(COND_ACCURACY), 2)}")
        self._say(f"{trial_dir_name(trial.trial_id)} ended     {what} | {self._progress()}")

    def _progress(self) -> str:
        """How far the study is, and when it ends at this pace: by iterations under a budget, else by
        trials."""
        elapsed = time.monotonic() - self._began
        ended = len(self._ended_ids)
        if self.spec.budget:
            spent = sum(self._reached.values()) - sum(self.__dict__.get("_began_at", {}).values())
            done, total, text = spent, self.spec.budget, f"{spent} of {self.spec.budget} iterations"
        else:
            done, total, text = ended, self.spec.samples, f"{ended} of {self.spec.samples} trials"
        if 0 < done < total and elapsed > 0:
            text += f", ETA {clock(elapsed * (total - done) / done)}"
        return text
