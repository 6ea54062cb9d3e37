"""A single trial without Ray: the same trainer, the same files as a Ray Tune trial folder."""

from __future__ import annotations

import dataclasses
import errno
import shutil
import sys
from pathlib import Path

from trainable._io import atomic_dir
from trainable.checkpoint import read_checkpoint, restore_newest_readable
from trainable.config import TrainConfig, preset
from trainable.data import PreparedDataset, builtin_dataset, load_prepared
from trainable.errors import ConfigError, UserError
from trainable.experiment import (CHECKPOINT_FILE, COND_ACCURACY, DIGEST_FILE, COVERAGE, DIVERSITY_MIN, FID_INTRA, GRID, INTERRUPTED,
                                  PARAMS_FILE, SCHEDULE, STOP_REASON, driver_lock, read_checkpoint_records, read_results,
                                  schedule_configs, split_params, thumb_name, trial_dir_name, trial_params)
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
                    judge: Judge | None = None, meta: dict | None = None,
                    dataset: PreparedDataset | None = None) -> TrialOutcome:
    """Run (or, with ``resume``, continue) one trial writing into ``directory``, holding its lock;
    ``meta``: more params.json keys of its context (trainable.experiment.META_KEYS). With a SCHEDULE
    in ``meta`` (a PBT schedule to replay), ``config`` is its first step's and the trainer switches
    to each next one at its iteration. ``dataset``: the trial's data set, where the caller has loaded it."""
    folder = TrialDirectory(directory)
    if resume:
        values, meta = split_params(folder.params())
        config = TrainConfig.from_dict(values)
        if iterations is not None:
            config = config.replace(iterations=iterations)
        data, judge_steps = meta.get("data", BUILTIN), meta.get("judge_steps", judge_steps)
    dataset = dataset if dataset is not None else load_data(data)  # bad data fails before anything is written
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


def continue_trial(source: str | Path, checkpoint: str | Path, directory: str | Path, *, iterations: int | None = None,
                   data: str | Path | None = None, judge_steps: int = DEFAULT_JUDGE_STEPS, meta: dict | None = None,
                   progress: bool = False, judge: Judge | None = None) -> TrialOutcome:
    """A new trial folder ``directory`` that goes on from ``checkpoint`` of the trial folder ``source``
    (a local trial's or a study trial's, only read): its weights, optimisers, random state and the
    config in force there (a PBT trial's last; a replayed schedule's steps still to come), to
    ``iterations`` (default: its own length), trained as that trial would have gone on, on as many
    threads. The reports up to the checkpoint come along (a study checkpoint's own history: under
    PBT its weights' lineage), so the collapse verdict and the dashboard see the whole run, with
    their grids where the weights are the trial's own. Nothing is written where it is refused: the
    folder is made beside ``directory`` and renamed when whole."""
    source, checkpoint, directory = Path(source).resolve(), Path(checkpoint), Path(directory).resolve()
    if directory == source or source in directory.parents:
        raise UserError(f"--out {directory}: inside the trial it goes on from, which is left as it is; "
                        "--out names a folder elsewhere")
    try:
        state = read_checkpoint(checkpoint)
    except UserError as exc:
        raise UserError(f"{exc}; --checkpoint K goes on from an earlier one") from None
    try:
        config, reached = TrainConfig.from_dict(state["config"]), int(state["iteration"])
    except (ConfigError, KeyError, TypeError, ValueError):
        raise UserError(f"{checkpoint}: a checkpoint from an older version (no config in it): it cannot be "
                        "continued; `trial --from` trains its configuration anew") from None
    length = iterations or config.iterations
    if length <= reached:
        ended = (f"the end of its {config.iterations} iterations" if reached >= config.iterations
                 else f"past the {length} asked for")
        raise UserError(f"{checkpoint}: at iteration {reached}, {ended}: nothing to go on with; "
                        f"--set iterations=N above {reached} trains on")
    dataset = load_data(data)  # bad data fails before anything is written
    if (directory / PARAMS_FILE).exists():
        raise UserError(f"{directory} already holds a trial; --resume {directory} goes on with it, or --out "
                        "names a new folder")
    schedule = split_params(TrialDirectory(source).params())[1].get(SCHEDULE)  # a replay's steps to come
    params = trial_params(config.replace(iterations=length), data=str(data or BUILTIN), judge_steps=judge_steps,
                          **{SCHEDULE: schedule} if schedule else {}, **(meta or {}))
    try:
        _write_continued(source, checkpoint, directory, params, *_continued_rows(source, checkpoint, reached))
    except FileExistsError:
        raise
    except OSError as exc:  # a read-only file system, a full disk; or a file of the source unreadable
        unread = exc.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT) and exc.filename \
            and source in Path(exc.filename).parents
        raise UserError(f"{exc.filename}: cannot read ({exc.strerror or exc})" if unread
                        else f"{directory}: cannot write there ({exc.strerror or exc})") from None
    if progress:
        print(f"going on from {checkpoint.name} (iteration {reached}) to {length}", flush=True)
    return run_local_trial(directory, resume=True, iterations=length, progress=progress, judge=judge, dataset=dataset)


def _write_continued(source: Path, checkpoint: Path, directory: Path, params: dict, rows: list[dict],
                     grids: list[str]) -> None:
    """The continued trial's folder, whole or not at all: its params, the checkpoint's trainer state
    (only that: the local loop names its checkpoints by report and reads no lineage), its reports
    and their grids."""
    with atomic_dir(directory) as staging:
        folder = TrialDirectory(staging)
        folder.create(params)
        copied = folder.checkpoint_dir(max(len(rows) - 1, 0))
        copied.mkdir()
        for name in (CHECKPOINT_FILE, DIGEST_FILE):
            if (checkpoint / name).is_file():
                shutil.copy2(checkpoint / name, copied / name)
        for grid in grids:
            for name in (grid, thumb_name(grid)):
                if (source / name).is_file():
                    (staging / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source / name, staging / name)
        folder.rewrite(rows)


def _continued_rows(source: Path, checkpoint: Path, reached: int) -> tuple[list[dict], list[str]]:
    """(the reports a continued trial starts with, the grids among them to copy): a study
    checkpoint's history (the reports of its weights' lineage), else the source's reports up to the
    checkpoint (a local trial). A grid comes along where the weights are the source trial's own."""
    own = [row for row in read_results(source) if isinstance(row.get("iteration"), int) and row["iteration"] <= reached]
    history, lineage = read_checkpoint_records(checkpoint)
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        return own, [row[GRID] for row in own if isinstance(row.get(GRID), str)]
    try:
        owners = {step["trial"] for step in lineage["schedule"]} | {lineage["trial"]}
    except (KeyError, TypeError):
        owners = set()
    grids = {row["iteration"]: row[GRID] for row in own if isinstance(row.get(GRID), str)}
    mine = len(owners) == 1 and source.name == trial_dir_name(next(iter(owners)))  # never took another's weights
    rows = [{**row, GRID: grids[row["iteration"]]} if mine and row.get("iteration") in grids else row
            for row in history if isinstance(row.get("iteration"), int) and row["iteration"] <= reached]
    return rows, [row[GRID] for row in rows if isinstance(row.get(GRID), str)]
