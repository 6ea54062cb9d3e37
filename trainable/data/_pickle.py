"""The paper's pickle pair (images array, labels array), read through a restricted unpickler.

A pickle can run arbitrary code when loaded, and these files come from the internet, so
the unpickler resolves only the few numpy names a plain array needs and refuses the rest.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from trainable._io import atomic_path
from trainable.data._prepared import EXPRESSIONS, PreparedDataset
from trainable.errors import DataError

_ARRAY_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ARRAY_NAMES or (module.startswith("numpy") and name.endswith("DType")
                                              and module in ("numpy.dtypes", "numpy._core.dtypes")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are accepted")


def load_array_pickle(path: str | Path) -> np.ndarray:
    """Load one numpy array from a pickle, refusing any other object or code."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        value = _ArrayUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes fail the unpickler in any way (OverflowError, MemoryError, ...)
        raise DataError(f"{path}: not a pickled numpy array ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, np.ndarray):
        raise DataError(f"{path}: holds a {type(value).__name__}, expected a numpy array")
    if value.dtype.kind == "O":
        raise DataError(f"{path}: holds an object array; only numeric arrays are accepted")
    return value


def export_pickle(dataset: PreparedDataset, images_path: str | Path, labels_path: str | Path,
                  *, split: str | None = None) -> int:
    """Write the paper's pair: uint8 images (N, S, S, 1) and integer labels (N,)."""
    if split is not None:
        dataset = dataset.select(split)
    for path, array in ((images_path, dataset.images[..., None]), (labels_path, dataset.labels.astype(np.int64))):
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(array, protocol=4))
    return len(dataset.images)


def import_pickle(images_path: str | Path, labels_path: str | Path, *, class_names: tuple[str, ...] | None = None,
                  source: str = "pickle") -> PreparedDataset:
    """Read the paper's pair; images may be uint8 0-255 or float in [0,1], labels integers or one-hot."""
    images = load_array_pickle(images_path)
    labels = load_array_pickle(labels_path)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"{images_path}: images of shape {images.shape}; expected (N, S, S) or (N, S, S, 1)")
    if images.dtype.kind == "f":
        if not np.isfinite(images).all():
            raise DataError(f"{images_path}: images contain NaN or infinite values")
        low, high = float(images.min()), float(images.max())
        if low < 0 or high > 255:
            raise DataError(f"{images_path}: float pixel values span {low}..{high}; expected [0,1] or 0..255")
        images = np.rint(images * 255.0 if high <= 1.0 else images)
    elif images.dtype.kind not in "ui":
        raise DataError(f"{images_path}: images of dtype {images.dtype}; expected integers or floats")
    elif images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{images_path}: pixel values outside 0..255")
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1 or labels.dtype.kind not in "uif" or len(labels) != len(images):
        raise DataError(f"{labels_path}: labels of shape {labels.shape} do not match {len(images)} images")
    class_names = tuple(class_names or EXPRESSIONS)
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names) or (labels != np.rint(labels)).any()):
        raise DataError(f"{labels_path}: labels outside 0..{len(class_names) - 1}")
    return PreparedDataset(images=images.astype(np.uint8), labels=labels.astype(np.int64),
                           split=np.full(len(images), "train"), source=np.full(len(images), source),
                           class_names=class_names)
