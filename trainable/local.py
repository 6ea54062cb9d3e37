"""A single trial without Ray: the same trainer, the same files as a Ray Tune trial folder."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from trainable.checkpoint import restore_newest_readable
from trainable.config import TrainConfig, preset
from trainable.data import PreparedDataset, builtin_dataset, load_prepared
from trainable.experiment import (COND_ACCURACY, COVERAGE, DIVERSITY_MIN, FID_INTRA, INTERRUPTED, SCHEDULE, STOP_REASON,
                                  driver_lock, schedule_configs, split_params, trial_params)
from trainable.judge import Judge, load_or_train_judge
from trainable.loop import train
from trainable.training import Trainer
from trainable.trial_dir import LocalReporter, TrialDirectory

BUILTIN = "builtin:synthetic"
DEFAULT_JUDGE_STEPS = 1500
CPU_PAPER_WIDTH_RATE = 1.5  # iterations/s of the paper's V0 width on a CPU (measured 1-2)


def load_data(data: str | Path | None) -> PreparedDataset:
    return builtin_dataset() if data in (None, BUILTIN) else load_prepared(data)


def describe(row: dict) -> str:
    if row.get(FID_INTRA) is None:
        return ""
    return (f"| FD-intra {row[FID_INTRA]:.2f} acc {row[COND_ACCURACY]:.2f} "
            f"div {row[DIVERSITY_MIN]:.2f} cov {row[COVERAGE]:.2f}")


def warn_if_slow(config: TrainConfig) -> None:
    """The paper's generator width is days of training on a CPU: say so before it starts."""
    paper = preset("V0").g_filters
    if config.g_filters != paper:
        return
    hours = config.iterations / CPU_PAPER_WIDTH_RATE / 3600
    print(f"note: on a CPU the paper's full width (g_filters {','.join(map(str, paper))}) trains at about 1-2 "
          f"iterations/s: {config.iterations} iterations take about {hours:.0f} h. A smaller generator learns in "
          "minutes: --set g_filters=32,16,8 (see the README's examples)", file=sys.stderr)


@dataclasses.dataclass
class TrialOutcome:
    directory: Path
    stop_reason: str
    rows: list[dict]


def run_local_trial(directory: str | Path, *, config: TrainConfig | None = None, preset: str | None = None,
                    data: str | Path | None = None, judge_steps: int = DEFAULT_JUDGE_STEPS,
                    resume: bool = False, iterations: int | None = None, progress: bool = False,
                    judge: Judge | None = None, meta: dict | None = None) -> TrialOutcome:
    """Run (or, with ``resume``, continue) one trial writing into ``directory``, holding its lock;
    ``meta``: more params.json keys of its context (trainable.experiment.META_KEYS). With a SCHEDULE
    in ``meta`` (a PBT schedule to replay), ``config`` is its first step's and the trainer switches
    to each next one at its iteration."""
    folder = TrialDirectory(directory)
    if resume:
        values, meta = split_params(folder.params())
        config = TrainConfig.from_dict(values)
        if iterations is not None:
            config = config.replace(iterations=iterations)
        data, judge_steps = meta.get("data", BUILTIN), meta.get("judge_steps", judge_steps)
    dataset = load_data(data)  # bad data fails before anything is written
    with driver_lock(folder.path, f"trial folder {folder.path}"):  # one driver at a time
        if not resume:
            config = config or TrainConfig()
            folder.create(trial_params(config, preset=preset, data=str(data or BUILTIN), judge_steps=judge_steps,
                                       **(meta or {})))
        if judge is None:
            judge, trained = load_or_train_judge(dataset, steps=judge_steps, progress=progress)
            if trained and progress:
                print(f"judge trained: held-out accuracy {judge.heldout_accuracy:.3f} (cached for this data set)",
                      file=sys.stderr)
        schedule = schedule_configs((meta or {}).get(SCHEDULE) or [])
        trainer = Trainer(config, dataset, judge)
        if progress and trainer.device.type == "cpu":
            warn_if_slow(config)
        history: list[dict] = []
        if resume:
            # The newest checkpoint that loads: a damaged last one falls back to the one before.
            restore_newest_readable(trainer, folder.checkpoints()[::-1], trainer.restore,
                                    name=lambda path: path.name, where=str(folder.path))
            history = [row for row in folder.results() if row["iteration"] <= trainer.iteration]
            passed = [step for step in sorted(schedule) if step < trainer.iteration]
            if passed:  # a replayed schedule: the config in force where the checkpoint was made
                trainer.apply_config(schedule[passed[-1]].replace(iterations=config.iterations))
            stopped = history[-1].get(STOP_REASON) if history else None
            if stopped not in (None, INTERRUPTED) and (iterations is None or trainer.iteration >= config.iterations):
                folder.rewrite(history)
                return TrialOutcome(folder.path, stopped, history)  # nothing left to do
            if stopped:
                # Training goes on from the row it stopped at (Ctrl-C, or more iterations): that row no
                # longer ends the trial, so only the history's last row says why the trial stopped.
                history[-1] = {**history[-1], STOP_REASON: None, "done": False}
            folder.rewrite(history)
        schedule = {step: value.replace(iterations=config.iterations) for step, value in schedule.items()}
        stop_reason = train(trainer, LocalReporter(folder), history=history, progress=progress, describe=describe,
                            schedule=schedule)
        return TrialOutcome(folder.path, stop_reason, folder.results())
