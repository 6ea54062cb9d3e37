import os
import subprocess
import sys

import numpy as np
import pytest

# Small machines: keep torch and Ray from over-subscribing the cores during tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Judges and the built-in set are cached per session, never in the user's ~/.cache."""
    os.environ["CGAN_STUDY_CACHE"] = str(tmp_path_factory.mktemp("cache"))


TINY = dict(g_filters=(8, 8, 4), d_filters=(4, 8, 8), latent_size=8, batch_size=16, eval_every=10,
            eval_samples_per_class=10, grid_columns=3, collapse_grace=10**6)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A small prepared synthetic set on disk and a quickly trained judge for it."""
    from trainable.data import synthetic_dataset
    from trainable.judge import load_or_train_judge

    dataset = synthetic_dataset(280, seed=7)
    path = dataset.save(tmp_path_factory.mktemp("data") / "tiny.npz")
    judge, _ = load_or_train_judge(dataset, steps=60)
    return path, dataset, judge


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


HOLD_LOCK = """
import sys, time
from trainable.experiment import driver_lock
with driver_lock(sys.argv[1], "x"):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder():
    """Another process holding a folder's driver lock, as a running driver does; returns the
    process (kill it to play a crash); any left is killed at the end of the test."""
    holders = []

    def hold(folder):
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        holders.append(holder)
        assert holder.stdout.readline().strip() == "locked"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


@pytest.fixture
def small_file_system(tmp_path):
    """A small tmpfs of our own (a full disk, a read-only one), mounted for the test and gone after it;
    the test is skipped where this machine lets no process mount one (not root, no user namespaces)."""
    mounted = []

    def mount(size: str = "2m", read_only: bool = False):
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)
