import json
import os

import pytest

from tests.conftest import TINY
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.experiment import COMPLETED
from trainable.local import run_local_trial


def test_an_extended_trial_has_one_final_row(tiny_data, tmp_path):
    path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, "iterations": 20})
    first = run_local_trial(tmp_path / "t", config=config, data=path, judge=judge)
    assert first.stop_reason == COMPLETED and first.rows[-1]["done"]
    again = run_local_trial(tmp_path / "t", resume=True, judge=judge)  # nothing left: unchanged
    assert again.rows == first.rows
    extended = run_local_trial(tmp_path / "t", resume=True, iterations=40, judge=judge)
    assert [row["iteration"] for row in extended.rows] == [10, 20, 30, 40]
    assert [row["stop_reason"] for row in extended.rows] == [None, None, None, COMPLETED]
    assert [row["done"] for row in extended.rows] == [False, False, False, True]
    assert extended.rows == [json.loads(line) for line in (tmp_path / "t" / "result.json").read_text().splitlines()]
    assert (tmp_path / "t" / "progress.csv").read_text().count("\n") == 5


def test_local_params_are_in_the_study_form(tiny_data, tmp_path):
    path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, "iterations": 10})
    run_local_trial(tmp_path / "t", config=config, preset="V1", data=path, judge=judge)
    params = json.loads((tmp_path / "t" / "params.json").read_text())
    assert params["g_filters"] == "8,8,4" and params["freeze_after"] == "off" and params["preset"] == "V1"
    resumed = run_local_trial(tmp_path / "t", resume=True, iterations=20, judge=judge)
    assert [row["iteration"] for row in resumed.rows] == [10, 20]


def test_a_damaged_last_checkpoint_falls_back_to_the_one_before(tiny_data, tmp_path, capsys):
    path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, "iterations": 20})
    first = run_local_trial(tmp_path / "t", config=config, data=path, judge=judge)
    previous, last = sorted((tmp_path / "t").glob("checkpoint_*"))
    checkpoint = last / "trainer.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # cut short, as a full disk or a kill leaves it
    resumed = run_local_trial(tmp_path / "t", resume=True, iterations=30, judge=judge)
    err = capsys.readouterr().err
    assert f"{checkpoint}: unreadable checkpoint (truncated" in err
    assert f"resuming from the previous readable one, {previous.name} (iteration 10)" in err
    # Iteration 20 is trained again from 10; exact resume makes its report the same.
    assert [row["iteration"] for row in resumed.rows] == [10, 20, 30]
    assert resumed.rows[1]["d_loss"] == first.rows[1]["d_loss"]


def _unstarted_trial(folder, data):
    """A trial folder as `trial` writes it before its first report: params.json alone."""
    from trainable.experiment import trial_params
    from trainable.trial_dir import TrialDirectory

    TrialDirectory(folder).create(trial_params(TrainConfig.from_dict(TINY), data=str(data), judge_steps=60))
    return folder


def test_no_readable_checkpoint_is_one_clear_error(tiny_data, tmp_path):
    path, _, judge = tiny_data
    folder = _unstarted_trial(tmp_path / "t", path)
    for index, garbage in enumerate((b"not a checkpoint", bytes(range(256)) * 16)):
        (folder / f"checkpoint_{index:06d}").mkdir()
        (folder / f"checkpoint_{index:06d}" / "trainer.pt").write_bytes(garbage)
    with pytest.raises(UserError, match="no readable checkpoint to resume from") as refused:
        run_local_trial(folder, resume=True, judge=judge)
    assert "1 older ones unreadable too" in str(refused.value) and "weights_only" not in str(refused.value)


def test_one_driver_per_trial_folder_and_a_dead_one_blocks_nothing(tiny_data, tmp_path, lock_holder):
    from trainable.experiment import driver_lock

    path, _, judge = tiny_data
    folder = _unstarted_trial(tmp_path / "t", path)
    holder = lock_holder(folder)
    with pytest.raises(UserError, match=f"trial folder {folder} is in use by another driver \\(pid {holder.pid}\\)"):
        run_local_trial(folder, resume=True, judge=judge)
    assert sorted(p.name for p in folder.iterdir()) == ["driver.lock", "params.json"]  # nothing written
    holder.kill()  # as a crash would: the OS releases the lock
    holder.wait()
    with driver_lock(folder, "x"):  # free again at once
        assert (folder / "driver.lock").read_text().strip() == str(os.getpid())


def test_ctrl_c_in_the_middle_of_a_step_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    """Ctrl-C between two evaluations, arriving after D's update and before G's: the step finishes,
    the trial stops there, and resumed it trains the same numbers as a trial never stopped."""
    import signal

    import torch

    from trainable.experiment import INTERRUPTED
    from trainable.training import Trainer

    path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, "iterations": 40})
    through = run_local_trial(tmp_path / "through", config=config, data=path, judge=judge)

    advance = Trainer.advance

    def advance_with_ctrl_c(self):
        if self.iteration == 14:  # inside the step: after D's first optimiser step (of its real and fake
            step = self.d_optimizer.step  # batches), before G's

            def d_step_then_ctrl_c(*args, **kwargs):
                result = step(*args, **kwargs)
                if "step" in vars(self.d_optimizer):  # once
                    monkeypatch.delattr(self.d_optimizer, "step")
                    os.kill(os.getpid(), signal.SIGINT)
                return result
            monkeypatch.setattr(self.d_optimizer, "step", d_step_then_ctrl_c)
        return advance(self)

    monkeypatch.setattr(Trainer, "advance", advance_with_ctrl_c)
    stopped = run_local_trial(tmp_path / "stopped", config=config, data=path, judge=judge)
    monkeypatch.setattr(Trainer, "advance", advance)
    assert stopped.stop_reason == INTERRUPTED and stopped.rows[-1]["iteration"] == 15
    resumed = run_local_trial(tmp_path / "stopped", resume=True, judge=judge)
    assert [row["iteration"] for row in resumed.rows] == [10, 15, 20, 30, 40]
    keys = ("fid", "fid_intra", "cond_accuracy", "diversity_min")  # (losses are means since the report before)
    assert [[row[key] for key in keys] for row in resumed.rows[2:]] == \
           [[row[key] for key in keys] for row in through.rows[1:]]
    weights = [torch.load(folder / "checkpoint_000003" / "trainer.pt" if folder.name == "through" else
                          folder / "checkpoint_000004" / "trainer.pt", weights_only=False)["generator"]
               for folder in (tmp_path / "through", tmp_path / "stopped")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
