"""A PBT trial's config changes, as the ranking shows them."""

import json

from analysis import format_ranking, get_leaderboard_info, read_experiment
from analysis._leaderboard import leaderboard_html
from trainable.config import TrainConfig
from trainable.experiment import CONFIG_CHANGE, trial_params


def test_the_ranking_lists_each_change_with_the_iteration_it_took_effect(tmp_path):
    trial = tmp_path / "trial_b"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps(trial_params(TrainConfig(g_lr=2.4e-3))))
    rows = [{"iteration": 20, "fid_intra": 9.0},
            {"iteration": 40, "fid_intra": 7.0, CONFIG_CHANGE: {"iteration": 20, "from_trial": "a",
                                                                 "changes": {"g_lr": [2e-3, 2.4e-3]}}},
            {"iteration": 60, "fid_intra": 6.0, CONFIG_CHANGE: {"iteration": 40, "from_trial": None,
                                                                 "changes": {"d_dropout": [0.0, 0.1]}}}]
    (trial / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    experiment = read_experiment(trial)
    assert [change["iteration"] for change in experiment.trials[0].config_changes] == [20, 40]
    info = get_leaderboard_info(experiment)
    assert info.rows[0].during == ("it 20 from trial_a: g_lr 0.002->0.0024; it 40: d_dropout 0->0.1")
    assert f"config changes during training: {info.rows[0].during}" in format_ranking(info)
    assert "config changes during training</th>" in leaderboard_html(info)
    plain = get_leaderboard_info(read_experiment(tmp_path / "trial_b"))._replace(
        rows=[info.rows[0]._replace(during="")])
    assert "config changes during training" not in leaderboard_html(plain) + format_ranking(plain)
