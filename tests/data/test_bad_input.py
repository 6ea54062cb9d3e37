"""Every bad input gets one error line naming the file and row or image, exit 1, and no output file."""

import numpy as np
import pytest

from tests.conftest import write_png
from trainable.data import EXPRESSIONS

PIXELS = " ".join(["7"] * 2304)


def _csv(path, rows, header="emotion,pixels,Usage"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _assert_refused(run_cli, source, tmp_path, *patterns, extra=()):
    out = tmp_path / "out.npz"
    code, stdout, stderr = run_cli("data", "prepare", source, "--out", out, *extra)
    assert code == 1
    lines = [line for line in stderr.splitlines() if not line.startswith("reading ")]
    assert len(lines) == 1, stderr
    for pattern in patterns:
        assert pattern in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.npz")]  # no temporary left either


@pytest.mark.parametrize("row,message", [
    (f"0,{' '.join(['7'] * 2303)},Training", "line 3: wrong pixel count 2303"),
    (f"0,{PIXELS[:-1]}x,Training", "line 3: non-integer pixel 'x'"),
    (f"0,{PIXELS[:-1]}2.5,Training", "line 3: non-integer pixel '2.5'"),
    (f"0,{PIXELS[:-1]}300,Training", "line 3: pixel value 300 outside 0..255"),
    (f"7,{PIXELS},Training", "line 3: unknown label '7'"),
    (f"happy,{PIXELS},Training", "line 3: unknown label 'happy'"),
    (f"0,{PIXELS},Holdout", "line 3: unknown Usage 'Holdout'"),
])
def test_bad_csv_rows(run_cli, tmp_path, row, message):
    good = [f"{label},{PIXELS},Training" for label in range(7)]
    path = _csv(tmp_path / "fer2013.csv", [good[0], row, *good[1:]])
    _assert_refused(run_cli, path, tmp_path, str(path), message)


def test_csv_missing_column(run_cli, tmp_path):
    path = _csv(tmp_path / "fer2013.csv", [f"{PIXELS},Training"], header="pixels,Usage")
    _assert_refused(run_cli, path, tmp_path, str(path), "missing column(s) ['emotion']")


def test_csv_without_training_rows(run_cli, tmp_path):
    path = _csv(tmp_path / "fer2013.csv", [f"{label},{PIXELS},PublicTest" for label in range(7)])
    _assert_refused(run_cli, path, tmp_path, str(path), "no training split")


def test_csv_with_an_empty_class(run_cli, tmp_path):
    path = _csv(tmp_path / "fer2013.csv", [f"{label},{PIXELS},Training" for label in range(6)])
    _assert_refused(run_cli, path, tmp_path, str(path), "empty class 'surprise'")


def test_empty_csv(run_cli, tmp_path):
    path = _csv(tmp_path / "fer2013.csv", [])
    _assert_refused(run_cli, path, tmp_path, str(path), "no data rows")


def _folders(root, names=EXPRESSIONS, splits=("train", "test")):
    for split in splits:
        for name in names:
            write_png(root / split / name / "0.png", np.full((48, 48), 100))
    return root


def test_unknown_expression_folder(run_cli, tmp_path):
    root = _folders(tmp_path / "fer")
    write_png(root / "train" / "hapy" / "0.png", np.zeros((48, 48)))
    _assert_refused(run_cli, root, tmp_path, str(root / "train" / "hapy"), "unknown folder 'hapy'")


def test_unknown_folder_beside_splits(run_cli, tmp_path):
    root = _folders(tmp_path / "fer")
    write_png(root / "extras" / "happy" / "0.png", np.zeros((48, 48)))
    _assert_refused(run_cli, root, tmp_path, str(root), "unknown folder 'extras'")


def test_unreadable_image(run_cli, tmp_path):
    root = _folders(tmp_path / "fer")
    bad = root / "train" / "sad" / "1.png"
    bad.write_bytes(b"this is not a png")
    _assert_refused(run_cli, root, tmp_path, str(bad), "unreadable or truncated image")


def test_truncated_image(run_cli, tmp_path):
    root = _folders(tmp_path / "fer")
    bad = root / "train" / "fear" / "1.jpg"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)).save(bad, quality=90)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    _assert_refused(run_cli, root, tmp_path, str(bad), "unreadable or truncated image")


def test_empty_class_folder(run_cli, tmp_path):
    root = _folders(tmp_path / "fer")
    (root / "test" / "disgust" / "0.png").unlink()
    _assert_refused(run_cli, root, tmp_path, str(root / "test" / "disgust"), "empty class folder")


def test_missing_class_in_training(run_cli, tmp_path):
    root = _folders(tmp_path / "fer", names=EXPRESSIONS[:-1])
    _assert_refused(run_cli, root, tmp_path, str(root), "empty class 'surprise'")


def test_no_training_split_folder(run_cli, tmp_path):
    root = _folders(tmp_path / "fer", splits=("test", "valid"))
    _assert_refused(run_cli, root, tmp_path, str(root), "no training split")


def test_single_class_is_not_a_data_set(run_cli, tmp_path):
    write_png(tmp_path / "one" / "cats" / "0.png", np.zeros((8, 8)))
    _assert_refused(run_cli, tmp_path / "one", tmp_path, "need at least 2")


def test_missing_source(run_cli, tmp_path):
    _assert_refused(run_cli, tmp_path / "nowhere.csv", tmp_path, "nowhere.csv: no such file or folder")


def test_bad_size(run_cli, tmp_path):
    root = _folders(tmp_path / "fer")
    _assert_refused(run_cli, root, tmp_path, "size 1 out of range", extra=("--size", "1"))


def test_failed_prepare_keeps_an_existing_output(run_cli, tmp_path):
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous result")
    path = _csv(tmp_path / "fer2013.csv", [f"9,{PIXELS},Training"])
    code, _, _ = run_cli("data", "prepare", path, "--out", out)
    assert code == 1
    assert out.read_bytes() == b"previous result"
