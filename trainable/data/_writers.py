"""Writers for the forms the readers load: a FER-2013 CSV, class image folders, a prepared file.

What one of them writes, the matching reader reads back to the same arrays, labels and splits
(tested). Every writer is atomic: an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from trainable._io import atomic_dir, atomic_path
from trainable.data._prepared import EXPRESSIONS, PreparedDataset
from trainable.errors import DataError
from trainable.progress import Progress

WRITE_FORMATS = ("npz", "folders", "csv")
_CSV_USAGE = {"train": "Training", "valid": "PublicTest", "test": "PrivateTest"}


def write_fer_csv(images: np.ndarray, labels: np.ndarray, split: np.ndarray, path: str | Path, *,
                  progress: bool = False) -> Path:
    """Write images in the original fer2013.csv form (emotion, pixels, Usage)."""
    meter = Progress(f"writing {Path(path).name}", len(images), enabled=progress)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, (image, label, part) in enumerate(zip(images, labels, split)):
            writer.writerow([int(label), " ".join(map(str, image.ravel().tolist())), _CSV_USAGE[str(part)]])
            meter.update(i + 1)
    meter.close(len(images))
    return Path(path)


def write_image_folders(images: np.ndarray, labels: np.ndarray, split: np.ndarray, root: str | Path, *,
                        class_names: tuple[str, ...] = EXPRESSIONS, progress: bool = False) -> Path:
    """Write images in FER-2013's image-folder form: train/<class>/*.png and test/<class>/*.png.

    That form has no validation split: PublicTest and PrivateTest both go to test/, as on Kaggle.
    """
    width = max(5, len(str(len(images) - 1)))
    meter = Progress(f"writing {Path(root).name}/", len(images), enabled=progress)
    with atomic_dir(root) as tmp:
        for i, (image, label, part) in enumerate(zip(images, labels, split)):
            folder = tmp / ("train" if part == "train" else "test") / class_names[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:0{width}d}.png", optimize=False)
            meter.update(i + 1)
    meter.close(len(images))
    return Path(root)


def write_dataset(dataset: PreparedDataset, path: str | Path, fmt: str = "npz", *, progress: bool = False) -> Path:
    """Write a prepared set as a prepared file (npz), class folders, or a FER-2013 CSV."""
    if fmt not in WRITE_FORMATS:
        raise DataError(f"unknown output format {fmt!r}; expected one of {list(WRITE_FORMATS)}")
    if fmt == "csv" and dataset.class_names != EXPRESSIONS:
        raise DataError(f"a FER-2013 CSV holds the 7 expressions only, not {list(dataset.class_names)}; "
                        "write npz or folders")
    if fmt == "npz":
        return dataset.save(path)
    if fmt == "folders":
        return write_image_folders(dataset.images, dataset.labels, dataset.split, path,
                                   class_names=dataset.class_names, progress=progress)
    return write_fer_csv(dataset.images, dataset.labels, dataset.split, path, progress=progress)
