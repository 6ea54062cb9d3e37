"""A trial folder with the files a Ray Tune trial folder holds, so analysis reads both alike.

    params.json           the trial's parameters (config fields, plus preset, data, judge_steps)
    result.json           one JSON object per report, one per line
    progress.csv          the same rows as a table
    checkpoint_NNNNNN/    trainer.pt (the last CHECKPOINTS_KEPT are kept)
    grids/iteration_NNNNNNN.png   the sample grid at each evaluation (rows = classes)
    grids/iteration_NNNNNNN.thumb.png   its small version for dashboards
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trainable._io import atomic_path, write_text_atomic
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.grid import save_grid, thumbnail_png

CHECKPOINTS_KEPT = 2
META_KEYS = ("preset", "data", "judge_steps")


def split_params(params: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """params.json -> (config, meta): meta keys are the trial's context, the rest the config."""
    meta = {key: params[key] for key in META_KEYS if key in params}
    return TrainConfig.from_dict({k: v for k, v in params.items() if k not in META_KEYS}), meta


def grid_name(iteration: int) -> str:
    return f"iteration_{iteration:07d}.png"


def thumb_name(grid: str) -> str:
    """grids/iteration_0001000.png -> grids/iteration_0001000.thumb.png"""
    return grid[:-len(".png")] + ".thumb.png"


def write_grid(directory: Path, iteration: int, grid: np.ndarray) -> Path:
    """The sample grid and, beside it, its dashboard thumbnail (made here, from the array in
    memory, so a dashboard of thousands of grids never decodes them)."""
    path = save_grid(grid, Path(directory) / "grids" / grid_name(iteration))
    with atomic_path(path.with_name(thumb_name(path.name))) as tmp:
        Path(tmp).write_bytes(thumbnail_png(grid))
    return path


def flatten(row: dict) -> dict:
    """Lists and dicts as JSON text, for a CSV cell."""
    return {key: json.dumps(value) if isinstance(value, (list, dict)) else value for key, value in row.items()}


class TrialDirectory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def params_path(self) -> Path:
        return self.path / "params.json"

    def create(self, params: dict[str, Any]) -> None:
        if self.params_path.exists():
            raise UserError(f"{self.path} already holds a trial; use --resume {self.path} to continue it")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.params_path, json.dumps(params, indent=2) + "\n")

    def params(self) -> dict[str, Any]:
        try:
            return json.loads(self.params_path.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path}: no params.json, not a trial folder") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.params_path}: unreadable ({exc})") from None

    def results(self) -> list[dict]:
        path = self.path / "result.json"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything after it is lost anyway
        return rows

    def append(self, row: dict) -> None:
        with open(self.path / "result.json", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        progress = self.path / "progress.csv"
        flat = flatten(row)
        new = not progress.exists()
        with open(progress, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(flat), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(flat)

    def rewrite(self, rows: list[dict]) -> None:
        """Keep only ``rows`` (on resume, what the checkpoint covers)."""
        write_text_atomic(self.path / "result.json", "".join(json.dumps(row) + "\n" for row in rows))
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(flatten(rows[0])), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flatten(row) for row in rows)
        write_text_atomic(self.path / "progress.csv", buffer.getvalue())

    def checkpoints(self) -> list[Path]:
        return sorted(p for p in self.path.glob("checkpoint_*") if (p / "trainer.pt").is_file())

    def checkpoint_dir(self, index: int) -> Path:
        return self.path / f"checkpoint_{index:06d}"

    def prune_checkpoints(self) -> None:
        for old in self.checkpoints()[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)


class LocalReporter:
    """Writes each report into a TrialDirectory: result row first, then grid and checkpoint.

    A kill between the two leaves a row without its checkpoint; resume drops rows past the
    checkpoint it restores, so no row is ever duplicated or orphaned.
    """

    def __init__(self, directory: TrialDirectory) -> None:
        self.directory = directory

    def __call__(self, row: dict, grid: np.ndarray, trainer) -> None:
        row = {**row, "grid": f"grids/{grid_name(row['iteration'])}"}
        write_grid(self.directory.path, row["iteration"], grid)
        self.directory.append(row)
        trainer.save(self.directory.checkpoint_dir(row["training_iteration"] - 1))
        self.directory.prune_checkpoints()
