"""The Ray Tune function trainable: the one module of ``trainable/`` that imports Ray.

A thin wrapper around the same Trainer and loop a local trial uses. It resumes from
``ray.tune.get_checkpoint()``, reports a result and a checkpoint at every evaluation with
``ray.tune.report``, and writes the sample grids into the trial's working folder (synced to
the study's storage as artifacts). The data set and the judge arrive through the object
store (``tune.with_parameters``), once per worker node, not once per trial from disk.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from trainable.cas import final_cas_row
from trainable.config import TrainConfig
from trainable.data import PreparedDataset
from trainable.experiment import FID_INTRA, SCORE, grid_file, split_params
from trainable.judge import Judge
from trainable.loop import train
from trainable.training import Trainer
from trainable.trial_dir import write_grid

PENALTY = 1e6  # the score of a report with no finite quality value: never NaN, always worst
HISTORY_FILE = "history.json"


def score_of(row: dict, metric: str) -> float:
    """The finite number the scheduler and searcher see (NaN would leave an Optuna trial RUNNING)."""
    value = row.get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else PENALTY


def fail_once_marker() -> Path | None:
    """Fault injection for the retry test: with CGAN_STUDY_FAIL_ONCE set to a file path, the
    first trial to report raises once right after its checkpoint (and creates the file)."""
    path = os.environ.get("CGAN_STUDY_FAIL_ONCE")
    return Path(path) if path else None


def cgan_trainable(config: dict, dataset: PreparedDataset | None = None, judge: Judge | None = None,
                   metric: str = FID_INTRA, cas_steps: int | None = None) -> None:
    """``cas_steps``: train CAS's classifier that long at the trial's last evaluation (None: no CAS)."""
    import torch
    from ray import tune

    # Use exactly the CPUs this trial was given: two 1-CPU trials must not each start 2 threads.
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    train_config = TrainConfig.from_dict(split_params(config)[0])
    trainer = Trainer(train_config, dataset, judge)
    history: list[dict] = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.restore(directory)
            history = json.loads((Path(directory) / HISTORY_FILE).read_text())
    trial_dir = Path(os.getcwd())  # Ray runs the function in the trial's working folder
    fail_marker = fail_once_marker()

    def report(row: dict, grid: np.ndarray, trainer: Trainer) -> None:
        write_grid(trial_dir, row["iteration"], grid)
        history.append(row)
        with tempfile.TemporaryDirectory() as directory:
            trainer.save(directory)
            (Path(directory) / HISTORY_FILE).write_text(json.dumps(history))
            metrics = {key: value for key, value in row.items() if key not in ("done",)}
            metrics.update({SCORE: score_of(row, metric), "grid": grid_file(row["iteration"])})
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        if fail_marker is not None and not fail_marker.exists():
            fail_marker.write_text(f"{tune.get_context().get_trial_id()} failed at iteration {row['iteration']}")
            raise RuntimeError("injected failure (CGAN_STUDY_FAIL_ONCE): the trial must be retried from its checkpoint")

    on_complete = None if cas_steps is None else functools.partial(final_cas_row, real=dataset, steps=cas_steps)
    # Collapse stopping is the study's stoppers' job, so every trial ends the same way.
    train(trainer, report, history=history, stop_on_collapse=False, on_complete=on_complete)
