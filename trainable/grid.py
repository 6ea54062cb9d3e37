"""Image grids: rows are classes, columns are samples (fixed z for generated grids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from trainable._io import atomic_path


def grid_array(images: np.ndarray, *, padding: int = 1, fill: int = 255) -> np.ndarray:
    """uint8 (rows, cols, H, W) -> one uint8 (rows*(H+p)-p, cols*(W+p)-p) picture with light gutters."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 (rows, cols, H, W), got {images.dtype} {images.shape}")
    rows, cols, height, width = images.shape
    out = np.full((rows * (height + padding) - padding, cols * (width + padding) - padding), fill, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = r * (height + padding), c * (width + padding)
            out[top:top + height, left:left + width] = images[r, c]
    return out


def save_grid(images: np.ndarray, path: str | Path, *, scale: int = 2) -> Path:
    """Write a grid as a PNG, enlarged ``scale`` times with nearest-neighbour (pixels stay honest)."""
    picture = Image.fromarray(grid_array(images))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", optimize=True)
    return Path(path)


def class_grid(images: np.ndarray, labels: np.ndarray, num_classes: int, columns: int,
               *, seed: int = 0) -> np.ndarray:
    """Pick ``columns`` random images of each class into a (classes, columns, H, W) array."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        if len(members) == 0:
            rows.append(np.full((columns, *images.shape[1:]), 255, dtype=np.uint8))
            continue
        chosen = rng.choice(members, size=columns, replace=len(members) < columns)
        rows.append(images[chosen])
    return np.stack(rows)
