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


THUMB_COLUMNS = 4  # samples per class kept in a thumbnail
THUMB_LEVELS = 16  # grey levels: 4-bit PNG, visually the same as 256 at this size, 1/2 the bytes


def thumbnail_array(images: np.ndarray, *, columns: int = THUMB_COLUMNS) -> np.ndarray:
    """A small picture of a (rows, cols, H, W) grid for dashboards: ``columns`` samples per row,
    each face halved (2x2 box mean), 16 grey levels. ~2.2 kB as PNG for 7 classes at 28x28."""
    images = images[:, :columns]
    rows, cols, height, width = images.shape
    half = images[:, :, :height - height % 2, :width - width % 2].astype(np.float32)
    half = half.reshape(rows, cols, height // 2, 2, width // 2, 2).mean(axis=(3, 5))
    step = 256 / THUMB_LEVELS
    levels = np.floor(half / step) * step + step / 2
    return grid_array(levels.clip(0, 255).astype(np.uint8))


def thumbnail_png(images: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(thumbnail_array(images)).quantize(THUMB_LEVELS).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def split_grid(picture: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Undo save_grid: a stored grid picture -> (rows, columns, S, S), for grids written before
    thumbnails were stored beside them. Finds the enlargement and the cell size from the shape."""
    height, width = picture.shape
    for scale in range(1, 9):
        if height % scale or width % scale:
            continue
        pitch_h, rem_h = divmod(height // scale + 1, rows)
        pitch_w, rem_w = divmod(width // scale + 1, columns)
        if rem_h == rem_w == 0 and pitch_h == pitch_w > 1:
            small = picture[::scale, ::scale]
            size = pitch_h - 1
            return np.stack([np.stack([small[r * pitch_h:r * pitch_h + size, c * pitch_h:c * pitch_h + size]
                                       for c in range(columns)]) for r in range(rows)])
    raise ValueError(f"a {width}x{height} picture is not a grid of {rows} rows and {columns} columns")
