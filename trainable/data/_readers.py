"""Readers for the users' data sets in their published forms, producing a PreparedDataset.

Every error names the file and the row or image, so a user can fix the input.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
import numpy as np
from PIL import Image, ImageFile

from trainable.data._prepared import EXPRESSIONS, PreparedDataset
from trainable.errors import DataError
from trainable.progress import Progress

# A truncated download must be an error, never a silently half-grey face.
ImageFile.LOAD_TRUNCATED_IMAGES = False

FER_USAGE_SPLITS = {"training": "train", "publictest": "valid", "privatetest": "test"}
FOLDER_SPLITS = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "test": "test", "testing": "test"}
FORMATS = ("auto", "fer2013-csv", "fer2013", "mmafedb", "folders")


def resize(image: Image.Image, size: int) -> np.ndarray:
    """Grayscale, then resize to size x size.

    The paper (section 6) only says "resized to 28x28x1"; we choose Lanczos because it
    averages the 48x48 source instead of aliasing it, and apply it to every format alike so a
    CSV and an image folder of the same pictures prepare to identical arrays.
    """
    image = image.convert("L")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def read_fer_csv(path: str | Path, *, size: int = 28, source: str = "fer2013",
                 progress: bool = False) -> PreparedDataset:
    """The original ``fer2013.csv``: columns emotion, pixels (space-separated 0-255), Usage."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    images, labels, splits = [], [], []
    side = None
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            total = max(0, sum(1 for _ in handle) - 1)
            handle.seek(0)
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in (reader.fieldnames or [])}
            missing = [c for c in ("emotion", "pixels") if c not in columns]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; a FER-2013 CSV has emotion, pixels, Usage")
            meter = Progress(f"reading {path.name}", total, enabled=progress)
            for row in reader:
                line = reader.line_num
                where = f"{path} line {line}"
                label_text = (row[columns["emotion"]] or "").strip()
                if not label_text.isdigit() or int(label_text) >= len(EXPRESSIONS):
                    raise DataError(f"{where}: unknown label {label_text!r}; expected 0..{len(EXPRESSIONS) - 1}")
                usage_text = (row[columns["Usage".lower()]] if "usage" in columns else "Training") or ""
                split = FER_USAGE_SPLITS.get(usage_text.strip().lower())
                if split is None:
                    raise DataError(f"{where}: unknown Usage {usage_text!r}; expected Training, PublicTest or PrivateTest")
                pixels = _parse_pixels(row[columns["pixels"]] or "", where)
                if side is None:
                    side = math.isqrt(len(pixels))
                    if side < 2 or side * side != len(pixels):
                        raise DataError(f"{where}: wrong pixel count {len(pixels)}; expected a square image (2304 = 48x48)")
                if len(pixels) != side * side:
                    raise DataError(f"{where}: wrong pixel count {len(pixels)}; expected {side * side} ({side}x{side})")
                images.append(resize(Image.fromarray(pixels.astype(np.uint8).reshape(side, side)), size))
                labels.append(int(label_text))
                splits.append(split)
                meter.update(len(images))
            meter.close(len(images))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not images:
        raise DataError(f"{path}: no data rows")
    return _finish(str(path), images, labels, splits, EXPRESSIONS, source)


def _parse_pixels(text: str, where: str) -> np.ndarray:
    """Space-separated integers 0..255; fast path in C, exact path only to name a bad token."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            pixels = np.fromstring(text, dtype=np.int64, sep=" ")
        except (DeprecationWarning, ValueError):
            pixels = None
    if pixels is None:  # numpy stopped at a token it could not read: find and name it
        tokens = text.split()
        bad = next((t for t in tokens if not t.lstrip("-").isdigit()), None)
        if bad is not None:
            raise DataError(f"{where}: non-integer pixel {bad!r}")
        pixels = np.array(tokens, dtype=np.int64)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        value = int(pixels.max() if pixels.max() > 255 else pixels.min())
        raise DataError(f"{where}: pixel value {value} outside 0..255")
    return pixels


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(root: Path) -> list[tuple[str, Path]]:
    """(split, folder) of each split folder under ``root``, or ("train", root) where it has none."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    top = _subfolders(root)
    if not top:
        raise DataError(f"{root}: no class or split folders inside")
    split_named = [p for p in top if p.name.lower() in FOLDER_SPLITS]
    if split_named:
        others = [p.name for p in top if p.name.lower() not in FOLDER_SPLITS]
        if others:
            raise DataError(f"{root}: unknown folder {others[0]!r} beside split folders; expected {sorted(set(FOLDER_SPLITS))}")
        split_dirs = [(FOLDER_SPLITS[p.name.lower()], p) for p in top]
    else:
        split_dirs = [("train", root)]
    if not any(split == "train" for split, _ in split_dirs):
        raise DataError(f"{root}: no training split (expected a train/ folder beside {[p.name for _, p in split_dirs]})")
    return split_dirs


def read_image_folders(root: str | Path, *, size: int = 28, layout: str = "auto", source: str | None = None,
                       progress: bool = False) -> PreparedDataset:
    """Image folders: ``<split>/<class>/*`` (FER-2013, MMAFEDB) or ``<class>/*`` (any class layout).

    ``layout`` "fer2013" and "mmafedb" require expression folder names; "folders" takes class
    names from folder names; "auto" uses the expression order when every class folder is an
    expression and refuses a mix of expression and other names (a likely typo).
    """
    root = Path(root)
    split_dirs = _split_folders(root)
    class_dirs = [(split, folder) for split, split_dir in split_dirs for folder in _subfolders(split_dir)]
    for split, split_dir in split_dirs:
        loose = _image_files(split_dir)
        if loose:
            raise DataError(f"{loose[0]}: image outside a class folder")
    names = sorted({folder.name.lower() for _, folder in class_dirs})
    expression_names = [n for n in names if n in EXPRESSIONS]
    if layout in ("fer2013", "mmafedb") or (layout == "auto" and expression_names):
        for split, folder in class_dirs:
            if folder.name.lower() not in EXPRESSIONS:
                raise DataError(f"{folder}: unknown folder {folder.name!r}; expected one of {list(EXPRESSIONS)} "
                                "(use --format folders for other class names)")
        class_names = EXPRESSIONS
    elif layout in ("auto", "folders"):
        class_names = tuple(names)
        if len(class_names) < 2:
            raise DataError(f"{root}: found {len(class_names)} class folder(s) {list(class_names)}; need at least 2")
    else:
        raise DataError(f"unknown layout {layout!r}; expected one of {list(FORMATS)}")

    index = {name: i for i, name in enumerate(class_names)}
    files = []
    for split, folder in class_dirs:
        members = _image_files(folder)
        if not members:
            raise DataError(f"{folder}: empty class folder")
        files.extend((path, index[folder.name.lower()], split) for path in members)
    meter = Progress(f"reading {root.name}", len(files), enabled=progress)
    images, labels, splits = [], [], []
    for path, label, split in files:
        images.append(_read_image(path, size))
        labels.append(label)
        splits.append(split)
        meter.update(len(images))
    meter.close(len(images))
    return _finish(str(root), images, labels, splits, class_names, source or root.name.lower())


def _read_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return resize(image, size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc})") from None


def _finish(where: str, images: list, labels: list, splits: list, class_names: tuple[str, ...],
            source: str) -> PreparedDataset:
    dataset = PreparedDataset(
        images=np.stack(images), labels=np.asarray(labels, dtype=np.int64),
        split=np.asarray(splits, dtype="U5"), source=np.full(len(images), source, dtype=f"U{max(1, len(source))}"),
        class_names=tuple(class_names),
    )
    train_counts = dataset.counts().get("train")
    if train_counts is None:
        raise DataError(f"{where}: no training split (no image is marked for training)")
    empty = [name for name, count in zip(class_names, train_counts) if count == 0]
    if empty:
        raise DataError(f"{where}: empty class {empty[0]!r}: no training images")
    return dataset


def read_any(path: str | Path, *, fmt: str = "auto", size: int = 28, source: str | None = None,
             progress: bool = False) -> PreparedDataset:
    """Pick the reader from ``fmt``, or from what ``path`` is when ``fmt`` is "auto"."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    if size < 4 or size > 256:
        raise DataError(f"size {size} out of range 4..256")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if fmt == "fer2013-csv" or (fmt in ("auto", "fer2013") and path.is_file()):
        return read_fer_csv(path, size=size, source=source or "fer2013", progress=progress)
    if path.is_file():
        raise DataError(f"{path}: format {fmt} expects a folder")
    layout = {"auto": "auto", "fer2013": "fer2013", "mmafedb": "mmafedb", "folders": "folders"}[fmt]
    default_source = fmt if fmt in ("fer2013", "mmafedb") else None
    return read_image_folders(path, size=size, layout=layout, source=source or default_source, progress=progress)
