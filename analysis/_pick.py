"""One trial picked from a trial folder or, by its rank, from a study folder (what generate,
trial --from, analyze cas and schedule work on), and the line that says which it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis._reader import TrialRecord, rank, read_experiment
from trainable.errors import UserError
from trainable.experiment import PARAMS_FILE, metric_label


def is_trial_folder(path: str | Path) -> bool:
    return (Path(path) / PARAMS_FILE).is_file()


def pick_trial(path: str | Path, rank_wanted: int = 1) -> tuple[TrialRecord, dict[str, Any]]:
    """(the trial, where it comes from: {"trial", "study", "rank"}) of a trial folder, or the trial
    of rank ``rank_wanted`` (1 = best) of a study folder."""
    path = Path(path)
    if rank_wanted < 1:
        raise UserError(f"--rank {rank_wanted}: ranks start at 1")
    if is_trial_folder(path):
        if rank_wanted != 1:
            raise UserError(f"--rank {rank_wanted}: {path} is one trial; --rank picks a trial of a study")
        trials = read_experiment(path).trials
        if not trials:
            raise UserError(f"{path / PARAMS_FILE}: unreadable")
        return trials[0], {"trial": str(path.resolve()), "study": None, "rank": None}
    ranked = rank(read_experiment(path).trials)
    if rank_wanted > len(ranked):
        raise UserError(f"--rank {rank_wanted}: study {path.name} has {len(ranked)} trial(s)")
    trial = ranked[rank_wanted - 1]
    return trial, {"trial": str(trial.path.resolve()), "study": path.name, "rank": rank_wanted}


def describe_pick(trial: TrialRecord, origin: dict[str, Any]) -> str:
    """e.g. "trial_00003 (rank 1 of study demo: completed at iteration 800, FD-intra 5.630)"."""
    where = f"rank {origin['rank']} of study {origin['study']}: " if origin["study"] else ""
    score = f", {metric_label(trial.metric)} {trial.score:.3f}" if trial.score is not None else ""
    return f"{trial.name} ({where}{trial.stop_reason} at iteration {trial.last.get('iteration', 0)}{score})"
