"""Data sets: readers for the published forms, the prepared file, and the built-in synthetic set."""

from trainable.data._pickle import export_pickle, import_pickle, load_array_pickle
from trainable.data._prepared import (
    EXPRESSIONS,
    NORMALIZATIONS,
    SPLITS,
    PreparedDataset,
    denormalize,
    fuse,
    load_prepared,
    normalize,
    one_hot,
)
from trainable.data._readers import FORMATS, read_any, read_fer_csv, read_image_folders, resize
from trainable.data._synthetic import builtin_dataset, generate_faces, prepare_faces, synthetic_dataset
from trainable.data._writers import WRITE_FORMATS, write_dataset, write_fer_csv, write_image_folders

__all__ = [
    "EXPRESSIONS", "builtin_dataset", "FORMATS", "NORMALIZATIONS", "SPLITS", "PreparedDataset", "denormalize", "export_pickle",
    "fuse", "generate_faces", "import_pickle", "load_array_pickle", "load_prepared", "normalize", "one_hot", "prepare_faces",
    "read_any", "read_fer_csv", "read_image_folders", "resize", "synthetic_dataset", "WRITE_FORMATS", "write_dataset",
    "write_fer_csv", "write_image_folders",
]
