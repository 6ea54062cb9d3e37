"""Sample grids: the final grids of the best trials beside the baselines', and each trial's
timeline of grids across its evaluations, fitted into a size budget for the dashboard."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import NamedTuple

from analysis._common import label
from analysis._reader import Experiment, rank
from trainable.config import PAPER_PRESETS, preset_label
from trainable.experiment import COMPLETED, GRID, NONE, VERDICT, thumb_name


class Frame(NamedTuple):
    iteration: int
    grid: Path  # the full grid (rows = classes)
    thumb: Path  # its thumbnail; may not exist for trials written before thumbnails
    verdict: str  # the collapse verdict at this evaluation ("none" when healthy)


class Showcase(NamedTuple):
    name: str
    label: str
    kind: str  # "best", "baseline" (the paper's) or "reference" (the recipe)
    grid: Path | None  # the last grid; None when the trial has none yet
    caption: str  # the kind, rank and stop reason, for a person


class GridsInfo(NamedTuple):
    showcase: list[Showcase]
    timelines: dict[str, list[Frame]]  # trial name -> frames in iteration order (rank order of trials)


def get_grids_info(experiment: Experiment, *, best: int = 4) -> GridsInfo:
    """The showcase holds the ``best`` healthy searched trials, then the baselines (V0, V1, V2)."""
    ranked = rank(experiment.trials)
    timelines = {}
    for trial in ranked:
        frames = []
        for row in trial.rows:
            grid = row.get(GRID)
            if not grid or not (trial.path / grid).is_file():
                continue
            frames.append(Frame(int(row.get("iteration", 0)), trial.path / grid, trial.path / thumb_name(grid),
                                str(row.get(VERDICT) or NONE)))
        timelines[trial.name] = frames

    positions = {trial.name: position for position, trial in enumerate(ranked, 1)}

    def shown(trial) -> Showcase:
        frames = timelines[trial.name]
        kind = "best" if not trial.baseline else "baseline" if trial.baseline in PAPER_PRESETS else "reference"
        caption = f"rank {positions[trial.name]} of {len(ranked)}, {trial.stop_reason}"
        caption = f"{preset_label(trial.baseline)}, {caption}" if trial.baseline else caption
        return Showcase(trial.name, label(trial), kind, frames[-1].grid if frames else None, caption)

    # The best searched trials that ran to their end (an ASHA-cut trial is no "best"), then the presets.
    showcase = [shown(t) for t in ranked if t.healthy and not t.baseline and t.stop_reason == COMPLETED][:best]
    showcase += [shown(t) for t in sorted((t for t in ranked if t.baseline), key=lambda t: t.baseline)]
    return GridsInfo(showcase, timelines)


class FrameBudget(NamedTuple):
    level: str  # "full" (the stored grids) or "thumbnail"
    keep: dict[str, list[int]]  # trial -> indices of its frames that are embedded
    shown: int
    total: int


def _evenly(count: int, keep: int) -> list[int]:
    """``keep`` indices out of ``count``, evenly spread, first and last always in."""
    if keep >= count:
        return list(range(count))
    if keep <= 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (keep - 1)) for i in range(keep)})


BASE64 = 4 / 3
THUMB_BYTES = 2300  # a typical 7-class 28x28 thumbnail; used only to plan, sizes are read when present


def plan_frames(timelines: dict[str, list[Frame]], budget_bytes: int) -> FrameBudget:
    """Full grids when they all fit the budget; otherwise thumbnails, and when even those do
    not fit, the same share of every trial's evaluations (first and last always kept)."""
    total = sum(len(frames) for frames in timelines.values())
    full = sum(f.grid.stat().st_size for frames in timelines.values() for f in frames) * BASE64
    if full <= budget_bytes:
        return FrameBudget("full", {name: list(range(len(frames))) for name, frames in timelines.items()}, total, total)
    sample = [f.thumb for frames in timelines.values() for f in frames[:1]][:50]
    sizes = [p.stat().st_size for p in sample if p.is_file()]
    per_frame = (sum(sizes) / len(sizes) if sizes else THUMB_BYTES) * BASE64 + 40
    share = min(1.0, budget_bytes / (per_frame * max(total, 1)))
    keep = {}
    for name, frames in timelines.items():
        chosen = set(_evenly(len(frames), max(2, int(len(frames) * share)))) if frames else set()
        # the first evaluation judged collapsed is the one a user looks for: always kept
        chosen.update(next(([i] for i, f in enumerate(frames) if f.verdict not in (NONE, "")), []))
        keep[name] = sorted(chosen)
    return FrameBudget("thumbnail", keep, sum(map(len, keep.values())), total)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnail_bytes(frame: Frame, rows: int, columns: int) -> bytes:
    """The stored thumbnail; for an older trial folder without one, made from the full grid."""
    try:
        return frame.thumb.read_bytes()
    except FileNotFoundError:
        import numpy as np
        from PIL import Image

        from trainable.grid import split_grid, thumbnail_png

        return thumbnail_png(split_grid(np.asarray(Image.open(frame.grid).convert("L")), rows, columns))
