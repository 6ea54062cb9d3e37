import pickle

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_png
from trainable.data import (
    EXPRESSIONS, PreparedDataset, denormalize, export_pickle, fuse, import_pickle, load_prepared, normalize,
    one_hot, prepare_faces, read_any, read_fer_csv, read_image_folders, resize, write_fer_csv,
    write_image_folders,
)
from trainable.errors import DataError


def test_csv_round_trip_gives_identical_arrays(faces, tmp_path):
    images, labels, _, split = faces
    write_fer_csv(images, labels, split, tmp_path / "fer2013.csv")
    prepared = read_fer_csv(tmp_path / "fer2013.csv")
    expected = prepare_faces(images, labels, split)
    np.testing.assert_array_equal(prepared.images, expected.images)
    np.testing.assert_array_equal(prepared.labels, labels)
    np.testing.assert_array_equal(prepared.split, split)
    assert prepared.class_names == EXPRESSIONS
    assert prepared.images.shape == (len(images), 28, 28)


def test_folder_round_trip_gives_identical_arrays(faces, tmp_path):
    images, labels, _, split = faces
    write_image_folders(images, labels, split, tmp_path / "images")
    prepared = read_image_folders(tmp_path / "images")
    folder_split = np.where(split == "train", "train", "test")  # the folder form has no valid split
    # The reader walks split, class and file names in sorted order.
    order = sorted(range(len(images)), key=lambda i: (folder_split[i], EXPRESSIONS[labels[i]], i))
    expected = prepare_faces(images, labels, split)
    np.testing.assert_array_equal(prepared.images, expected.images[order])
    np.testing.assert_array_equal(prepared.labels, labels[order])
    np.testing.assert_array_equal(prepared.split, folder_split[order])


def test_csv_and_folders_prepare_the_same_pictures(faces, tmp_path):
    images, labels, _, split = faces
    write_fer_csv(images, labels, split, tmp_path / "fer2013.csv")
    write_image_folders(images, labels, split, tmp_path / "images")
    from_csv = read_any(tmp_path / "fer2013.csv")
    from_folders = read_any(tmp_path / "images")
    key = lambda d: sorted(zip(d.labels.tolist(), (img.tobytes() for img in d.images)))  # noqa: E731
    assert key(from_csv) == key(from_folders)


def test_mmafedb_colour_images_of_other_sizes_become_grayscale(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for split in ("train", "valid", "test"):
        for label, name in enumerate(EXPRESSIONS):
            colour = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            folder = tmp_path / "mma" / split / name.capitalize()  # case must not matter
            folder.mkdir(parents=True)
            Image.fromarray(colour).save(folder / "a.jpg", quality=95)
            write_png(folder / "b.png", rng.integers(0, 256, size=(48, 48)))
            with Image.open(folder / "a.jpg") as reread:
                expected[(split, label)] = np.asarray(reread.convert("L").resize((28, 28), Image.Resampling.LANCZOS))
    dataset = read_any(tmp_path / "mma", fmt="mmafedb")
    assert dataset.class_names == EXPRESSIONS
    assert set(dataset.split.tolist()) == {"train", "valid", "test"}
    assert (dataset.source == "mmafedb").all()
    assert dataset.images.shape == (42, 28, 28) and dataset.images.dtype == np.uint8
    for (split, label), image in expected.items():
        rows = np.where((dataset.split == split) & (dataset.labels == label))[0]
        np.testing.assert_array_equal(dataset.images[rows[0]], image)


def test_any_class_folder_layout_takes_names_from_folders(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("zebra", "ant", "moth"):
        for i in range(3):
            write_png(tmp_path / "animals" / name / f"{i}.png", rng.integers(0, 256, size=(30, 30)))
    dataset = read_any(tmp_path / "animals", size=16)
    assert dataset.class_names == ("ant", "moth", "zebra")
    assert dataset.num_classes == 3
    assert np.bincount(dataset.labels).tolist() == [3, 3, 3]
    assert (dataset.split == "train").all()
    assert dataset.images.shape == (9, 16, 16)


def test_prepared_file_round_trip_and_hash(faces, tmp_path):
    images, labels, _, split = faces
    dataset = prepare_faces(images, labels, split)
    path = dataset.save(tmp_path / "set.npz")
    loaded = load_prepared(path)
    np.testing.assert_array_equal(loaded.images, dataset.images)
    assert loaded.content_hash == dataset.content_hash
    changed = PreparedDataset(dataset.images.copy(), dataset.labels, dataset.split, dataset.source, dataset.class_names)
    changed.images[0, 0, 0] ^= 1
    assert changed.content_hash != dataset.content_hash


def test_edited_prepared_file_is_refused(faces, tmp_path):
    images, labels, _, split = faces
    path = prepare_faces(images, labels, split).save(tmp_path / "set.npz")
    with np.load(path) as archive:
        fields = dict(archive)
    fields["labels"] = (fields["labels"] + 1) % 7
    np.savez_compressed(tmp_path / "edited.npz", **fields)
    with pytest.raises(DataError, match="content hash mismatch"):
        load_prepared(tmp_path / "edited.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.save(tmp_path / "array.npy", np.zeros(3))  # np.load gives an array, not an archive
    for name in ("junk.npz", "array.npy"):
        with pytest.raises(DataError, match=r"not a prepared data file \(not an \.npz archive"):
            load_prepared(tmp_path / name)


def test_fuse_records_sources_and_refuses_mismatches(faces):
    images, labels, _, split = faces
    a = prepare_faces(images[:70], labels[:70], split[:70])
    b = prepare_faces(images[70:], labels[70:], split[70:])
    b = PreparedDataset(b.images, b.labels, b.split, np.full(len(b.images), "mmafedb"), b.class_names)
    fused = fuse([a, b])
    assert len(fused.images) == 140
    assert fused.source.tolist() == ["synthetic"] * 70 + ["mmafedb"] * 70
    np.testing.assert_array_equal(fused.labels, labels)
    other_classes = PreparedDataset(b.images, b.labels % 2, b.split, b.source, ("x", "y"))
    with pytest.raises(DataError, match="classes"):
        fuse([a, other_classes])
    with pytest.raises(DataError, match="size"):
        fuse([a, prepare_faces(images[:70], labels[:70], split[:70], size=32)])


def test_pickle_pair_round_trip(faces, tmp_path):
    images, labels, _, split = faces
    dataset = prepare_faces(images, labels, split)
    count = export_pickle(dataset, tmp_path / "x.pkl", tmp_path / "y.pkl", split="train")
    assert count == int((split == "train").sum())
    with open(tmp_path / "x.pkl", "rb") as handle:
        assert pickle.load(handle).shape == (count, 28, 28, 1)
    back = import_pickle(tmp_path / "x.pkl", tmp_path / "y.pkl")
    np.testing.assert_array_equal(back.images, dataset.images[split == "train"])
    np.testing.assert_array_equal(back.labels, labels[split == "train"])


def test_pickle_import_accepts_paper_style_float_images_and_one_hot_labels(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(10, 28, 28, 1))
    labels = rng.integers(0, 7, size=10)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(pixels.astype(np.float32) / 255.0, protocol=5))
    (tmp_path / "y.pkl").write_bytes(pickle.dumps(np.eye(7, dtype=np.float32)[labels]))
    dataset = import_pickle(tmp_path / "x.pkl", tmp_path / "y.pkl")
    np.testing.assert_array_equal(dataset.images, pixels[..., 0])
    np.testing.assert_array_equal(dataset.labels, labels)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.target}",)


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Exploit(marker)))
    np_labels = tmp_path / "y.pkl"
    np_labels.write_bytes(pickle.dumps(np.zeros(3, dtype=np.int64)))
    with pytest.raises(DataError, match="refused to load posix.system|refused to load os.system"):
        import_pickle(tmp_path / "evil.pkl", np_labels)
    assert not marker.exists()
    # The same payload hidden inside a list beside a real array is refused too.
    (tmp_path / "nested.pkl").write_bytes(pickle.dumps([np.zeros(3), _Exploit(marker)]))
    with pytest.raises(DataError, match="refused"):
        import_pickle(tmp_path / "nested.pkl", np_labels)
    assert not marker.exists()
    (tmp_path / "objects.pkl").write_bytes(pickle.dumps(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(DataError):
        import_pickle(tmp_path / "objects.pkl", np_labels)


def test_a_garbage_pickle_is_one_clear_refusal(tmp_path):
    """Random bytes after a pickle header fail the unpickler in many ways (OverflowError,
    MemoryError, ...): 1.7% of such payloads escaped the old list of caught errors."""
    from trainable.data import load_array_pickle

    rng = np.random.default_rng(3)
    path = tmp_path / "x.pkl"
    for _ in range(600):
        path.write_bytes(b"\x80\x04" + rng.bytes(int(rng.integers(1, 2048))))
        with pytest.raises(DataError, match=f"^{path}: "):
            load_array_pickle(path)


@pytest.mark.parametrize("normalization,low,high", [("[0,1]", 0.0, 1.0), ("[-1,1]", -1.0, 1.0)])
def test_normalization_ranges_round_trip(normalization, low, high):
    images = np.array([[[0, 128], [255, 7]]], dtype=np.uint8)
    scaled = normalize(images, normalization)
    assert scaled.shape == (1, 1, 2, 2) and scaled.dtype == np.float32
    assert scaled.min() == low and scaled.max() == high
    np.testing.assert_array_equal(denormalize(scaled, normalization), images)
    with pytest.raises(DataError, match="normalization"):
        normalize(images, "[0,255]")


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(DataError):
        one_hot(np.array([3]), 3)


def test_resize_is_grayscale_and_sized():
    colour = Image.fromarray(np.full((48, 48, 3), (255, 0, 0), dtype=np.uint8))
    out = resize(colour, 28)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert int(out[0, 0]) == int(np.asarray(colour.convert("L"))[0, 0])
