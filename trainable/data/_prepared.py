"""The prepared data set: one compressed ``.npz`` per data set, read by every later stage."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from trainable._io import atomic_path
from trainable.errors import DataError

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SPLITS = ("train", "valid", "test")
NORMALIZATIONS = ("[0,1]", "[-1,1]")
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedDataset:
    """Grayscale images with integer labels, per-image split and source, and class names.

    ``content_hash`` identifies the content (not the file): the judge classifier is cached
    under it, so every trial of a study on the same data shares one judge.
    """

    images: np.ndarray  # uint8, (N, size, size)
    labels: np.ndarray  # int64, (N,), 0 .. len(class_names) - 1
    split: np.ndarray  # str, (N,), one of SPLITS
    source: np.ndarray  # str, (N,), the data set each image came from
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 3 or self.images.shape[1] != self.images.shape[2]:
            raise DataError(f"images must be uint8 of shape (N, size, size), got {self.images.dtype} {self.images.shape}")
        for name in ("labels", "split", "source"):
            if len(getattr(self, name)) != n:
                raise DataError(f"{name} has {len(getattr(self, name))} entries for {n} images")
        if len(self.class_names) < 2:
            raise DataError(f"a data set needs at least 2 classes, got {list(self.class_names)}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"labels must lie in 0..{len(self.class_names) - 1}")
        unknown = set(np.unique(self.split).tolist()) - set(SPLITS)
        if unknown:
            raise DataError(f"unknown split names {sorted(unknown)}; expected {list(SPLITS)}")

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def content_hash(self) -> str:
        cached = self.__dict__.get("_content_hash")
        if cached is None:
            digest = hashlib.sha256()
            digest.update(repr((self.images.shape, self.class_names)).encode())
            for array in (self.images, self.labels.astype(np.int64), self.split.astype("U"), self.source.astype("U")):
                digest.update(np.ascontiguousarray(array).tobytes())
            cached = digest.hexdigest()[:16]
            object.__setattr__(self, "_content_hash", cached)
        return cached

    def select(self, split: str) -> "PreparedDataset":
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        mask = self.split == split
        return PreparedDataset(self.images[mask], self.labels[mask], self.split[mask], self.source[mask], self.class_names)

    def counts(self) -> dict[str, list[int]]:
        """Images per class for each split present."""
        return {split: np.bincount(self.labels[self.split == split], minlength=self.num_classes).tolist()
                for split in SPLITS if (self.split == split).any()}

    def save(self, path: str | Path) -> Path:
        """Write atomically: a failed or interrupted save leaves no partial file."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                images=self.images,
                labels=self.labels.astype(np.int64),
                split=self.split.astype("U"),
                source=self.source.astype("U"),
                class_names=np.array(self.class_names, dtype="U"),
                content_hash=np.array(self.content_hash),
                format_version=np.array(FORMAT_VERSION),
            )
        return path


def load_prepared(path: str | Path) -> PreparedDataset:
    """Read a prepared file, refusing anything that is not one (no pickles are ever loaded)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such prepared data file")
    if not zipfile.is_zipfile(path):  # np.load would read a .npy as one array, or name pickles for text
        raise DataError(f"{path}: not a prepared data file (not an .npz archive; cgan-study data prepare makes one)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            fields = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a prepared data file ({exc})") from None
    missing = {"images", "labels", "split", "source", "class_names", "content_hash"} - fields.keys()
    if missing:
        raise DataError(f"{path}: not a prepared data file (missing {sorted(missing)})")
    dataset = PreparedDataset(
        images=fields["images"], labels=fields["labels"].astype(np.int64), split=fields["split"],
        source=fields["source"], class_names=tuple(str(name) for name in fields["class_names"]),
    )
    if dataset.content_hash != str(fields["content_hash"]):
        raise DataError(f"{path}: content hash mismatch: the file is corrupt or was edited")
    return dataset


def fuse(datasets: list[PreparedDataset], *, names: list[str] | None = None) -> PreparedDataset:
    """Merge several prepared sets into one (the paper's "fuse", section 6), keeping each image's source."""
    if len(datasets) < 2:
        raise DataError("fuse needs at least two prepared data sets")
    names = names or [f"input {i + 1}" for i in range(len(datasets))]
    first = datasets[0]
    for name, other in zip(names[1:], datasets[1:]):
        if other.class_names != first.class_names:
            raise DataError(f"{name}: classes {list(other.class_names)} differ from {names[0]}'s {list(first.class_names)}")
        if other.size != first.size:
            raise DataError(f"{name}: image size {other.size} differs from {names[0]}'s {first.size}; prepare both with the same --size")
    return PreparedDataset(
        images=np.concatenate([d.images for d in datasets]),
        labels=np.concatenate([d.labels for d in datasets]),
        split=np.concatenate([d.split.astype("U") for d in datasets]),
        source=np.concatenate([d.source.astype("U") for d in datasets]),
        class_names=first.class_names,
    )


def normalize(images: np.ndarray, normalization: str) -> np.ndarray:
    """uint8 (N, S, S) -> float32 (N, 1, S, S) in the chosen range (the paper uses [0,1], section 6)."""
    if normalization not in NORMALIZATIONS:
        raise DataError(f"unknown normalization {normalization!r}; expected one of {list(NORMALIZATIONS)}")
    scaled = images.astype(np.float32)[:, None] / 255.0
    return scaled if normalization == "[0,1]" else scaled * 2.0 - 1.0


def denormalize(images: np.ndarray, normalization: str) -> np.ndarray:
    """float (N, 1, S, S) or (N, S, S) in the chosen range -> uint8 (N, S, S)."""
    if normalization not in NORMALIZATIONS:
        raise DataError(f"unknown normalization {normalization!r}; expected one of {list(NORMALIZATIONS)}")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[:, 0]
    unit = images if normalization == "[0,1]" else (images + 1.0) / 2.0
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must lie in 0..{num_classes - 1}")
    return np.eye(num_classes, dtype=np.float32)[labels]
