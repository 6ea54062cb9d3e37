"""The study trainable's restore, without a running Ray: Tune checkpoints on a local file system."""

import json

import pytest

from tests.conftest import TINY
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.training import Trainer
from trainable.tune_adapter import HISTORY_FILE, restore_study_trial


def _checkpoints(tmp_path, dataset):
    """A trial folder as Tune stores it: its last two checkpoints, each with its history."""
    trainer = Trainer(TrainConfig.from_dict(TINY), dataset)
    history = []
    for index in range(2):
        for _ in range(3):
            trainer.step()
        history.append({"iteration": trainer.iteration})
        folder = tmp_path / "trial_1" / f"checkpoint_{index:06d}"
        trainer.save(folder)
        (folder / HISTORY_FILE).write_text(json.dumps(history))
    return sorted((tmp_path / "trial_1").iterdir())


def test_a_study_trial_falls_back_to_the_checkpoint_tune_kept_before_a_damaged_one(tiny_data, tmp_path, capsys):
    from ray import tune

    previous, last = _checkpoints(tmp_path, tiny_data[1])
    (last / "trainer.pt").write_bytes((last / "trainer.pt").read_bytes()[:50])
    trainer = Trainer(TrainConfig.from_dict(TINY), tiny_data[1])
    history, lineage = restore_study_trial(trainer, tune.Checkpoint.from_directory(last), where="trial 1")
    assert trainer.iteration == 3 and history == [{"iteration": 3}] and lineage is None
    assert f"resuming from the previous readable one, {previous.name} (iteration 3)" in capsys.readouterr().err

    (previous / HISTORY_FILE).write_text("null")  # the older one unreadable too: one clear error
    with pytest.raises(UserError, match="trial 1: no readable checkpoint to resume from .*truncated"):
        restore_study_trial(trainer, tune.Checkpoint.from_directory(last), where="trial 1")


def test_a_workers_sigterm_exit_inside_a_gc_callback_prints_nothing_else_is_printed():
    import subprocess
    import sys

    script = """
import sys, weakref
from trainable.tune_adapter import quiet_ray_exit
if sys.argv[1] == "quiet":
    sys.unraisablehook = quiet_ray_exit
class Thing: pass
def sigterm(ref): raise SystemExit(1)  # what Ray's SIGTERM handler raises, landing in a weakref callback
thing = Thing(); first = weakref.ref(thing, sigterm); del thing
def bug(ref): raise ValueError("a real one")
other = Thing(); second = weakref.ref(other, bug); del other
print("alive")
"""
    runs = {how: subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, timeout=120)
            for how in ("quiet", "python")}
    assert all(run.returncode == 0 and run.stdout == "alive\n" for run in runs.values())
    assert runs["python"].stderr.count("Exception ignored") == 2 and "SystemExit: 1" in runs["python"].stderr
    assert runs["quiet"].stderr.count("Exception ignored") == 1 and "SystemExit" not in runs["quiet"].stderr
    assert "ValueError: a real one" in runs["quiet"].stderr
