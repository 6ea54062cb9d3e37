import json

from tests.conftest import TINY
from trainable.config import TrainConfig
from trainable.local import run_local_trial


def test_local_params_are_in_the_study_form(tiny_data, tmp_path):
    path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, "iterations": 10})
    run_local_trial(tmp_path / "t", config=config, preset="V1", data=path, judge=judge)
    params = json.loads((tmp_path / "t" / "params.json").read_text())
    assert params["g_filters"] == "8,8,4" and params["freeze_after"] == "off" and params["preset"] == "V1"
    resumed = run_local_trial(tmp_path / "t", resume=True, iterations=20, judge=judge)
    assert [row["iteration"] for row in resumed.rows] == [10, 20]
