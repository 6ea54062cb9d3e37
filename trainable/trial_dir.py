"""A local trial folder: the files a Ray Tune trial folder holds (trainable/experiment.py lists
them), so analysis reads both alike. Checkpoints hold trainer.pt; the last CHECKPOINTS_KEPT stay.
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
from trainable.errors import UserError
from trainable.experiment import (CHECKPOINT_FILE, GRID, PARAMS_FILE, PROGRESS_FILE, RESULT_FILE, grid_file,
                                  read_results, thumb_name)
from trainable.grid import save_grid, thumbnail_png

CHECKPOINTS_KEPT = 2


def write_grid(directory: Path, iteration: int, grid: np.ndarray) -> Path:
    """The sample grid and, beside it, its dashboard thumbnail (made here, from the array in
    memory, so a dashboard of thousands of grids never decodes them)."""
    path = save_grid(grid, Path(directory) / grid_file(iteration))
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
        return self.path / PARAMS_FILE

    def create(self, params: dict[str, Any]) -> None:
        if self.params_path.exists():
            raise UserError(f"{self.path} already holds a trial; use --resume {self.path} to continue it")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.params_path, json.dumps(params, indent=2) + "\n")

    def params(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise UserError(f"{self.path}: {'not a folder' if self.path.exists() else 'no such folder'}; "
                            "--resume takes a trial folder")
        try:
            params = json.loads(self.params_path.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path}: no {PARAMS_FILE}, not a trial folder") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{self.params_path}: unreadable ({exc})") from None
        if not isinstance(params, dict):
            raise UserError(f"{self.params_path}: unreadable (a JSON object expected)")
        return params

    def results(self) -> list[dict]:
        return read_results(self.path)

    def append(self, row: dict) -> None:
        with open(self.path / RESULT_FILE, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        progress = self.path / PROGRESS_FILE
        flat = flatten(row)
        new = not progress.exists()
        with open(progress, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(flat), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(flat)

    def rewrite(self, rows: list[dict]) -> None:
        """Keep only ``rows`` (on resume, what the checkpoint covers)."""
        write_text_atomic(self.path / RESULT_FILE, "".join(json.dumps(row) + "\n" for row in rows))
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(flatten(rows[0])), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flatten(row) for row in rows)
        write_text_atomic(self.path / PROGRESS_FILE, buffer.getvalue())

    def checkpoints(self) -> list[Path]:
        return sorted(p for p in self.path.glob("checkpoint_*") if (p / CHECKPOINT_FILE).is_file())

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
        row = {**row, GRID: grid_file(row["iteration"])}
        write_grid(self.directory.path, row["iteration"], grid)
        self.directory.append(row)
        trainer.save(self.directory.checkpoint_dir(row["training_iteration"] - 1))
        self.directory.prune_checkpoints()
