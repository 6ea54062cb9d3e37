import json

from tests.conftest import TINY
from trainable.config import TrainConfig
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
