import os

import numpy as np
import pytest

# Small machines: keep torch and Ray from over-subscribing the cores during tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def faces():
    """A small synthetic set at FER-2013's 48x48, shared by the data tests."""
    from trainable.data import generate_faces

    images, labels, who, split = generate_faces(140, seed=3)
    return images, labels, who, split


@pytest.fixture
def run_cli(capsys):
    """Run the console script in-process; returns (exit code, stdout, stderr)."""
    from study.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
