"""Config changes mid-training (Population Based Training): a restore with a new config, the record
of what changed, and the replay of a schedule."""

import json

import pytest
import torch

from tests.conftest import TINY
from trainable.config import MUTABLE_FIELDS, TrainConfig
from trainable.errors import ConfigError
from trainable.experiment import CONFIG_CHANGE, HYPER, LINEAGE_FILE, SCHEDULE, read_schedule, trial_params
from trainable.local import run_local_trial
from trainable.training import Trainer
from trainable.tune_adapter import HISTORY_FILE, _after_restore, restore_study_trial

START = {**TINY, "g_lr": 1e-3, "d_lr": 2e-3, "g_beta1": 0.5, "d_beta2": 0.999, "d_dropout": 0.0}
NEW = {"g_lr": 3e-4, "d_lr": 7e-4, "g_beta1": 0.1, "g_beta2": 0.95, "d_beta1": 0.2, "d_beta2": 0.9, "d_dropout": 0.3}


def _dropout_rates(trainer):
    return [module.p for module in trainer.discriminator.modules() if hasattr(module, "p")]


@pytest.mark.parametrize("start_dropout", [0.0, 0.2])
def test_a_restore_with_a_new_config_puts_its_rates_betas_and_dropout_into_the_trainer(tiny_data, tmp_path,
                                                                                      start_dropout):
    _, dataset, _ = tiny_data
    before = Trainer(TrainConfig.from_dict({**START, "d_dropout": start_dropout}), dataset)
    for _ in range(3):
        before.step()
    before.save(tmp_path)
    # PBT's exploit and explore: the trial restarts from the checkpoint with a perturbed config.
    after = Trainer(TrainConfig.from_dict({**START, **NEW}), dataset)
    after.restore(tmp_path)
    assert after.iteration == 3 and after.checkpoint_config.g_lr == 1e-3
    for optimizer, prefix in ((after.g_optimizer, "g"), (after.d_optimizer, "d")):
        for group in optimizer.param_groups:
            assert group["lr"] == NEW[f"{prefix}_lr"]
            assert tuple(group["betas"]) == (NEW[f"{prefix}_beta1"], NEW[f"{prefix}_beta2"])
    assert max(_dropout_rates(after)) == 0.3 and after.discriminator.training
    assert {key: after.hyperparameters()[key] for key in NEW} == NEW
    # The optimiser state itself (Adam's moments) is the checkpoint's.
    state = after.g_optimizer.state_dict()["state"]
    assert torch.equal(state[0]["exp_avg"], before.g_optimizer.state_dict()["state"][0]["exp_avg"])
    after.step()  # and it trains on with them


def test_dropout_switched_on_mid_training_drops_activations(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict(START), dataset)
    images, labels = trainer.images[:16], trainer.eye[trainer.labels[:16]]
    torch.manual_seed(0)
    same = torch.equal(trainer.discriminator(images, labels), trainer.discriminator(images, labels))
    trainer.apply_config(trainer.config.replace(d_dropout=0.5))
    different = not torch.equal(trainer.discriminator(images, labels), trainer.discriminator(images, labels))
    assert same and different


def test_only_mutable_fields_may_change_mid_training(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict(START), dataset)
    assert trainer.apply_config(trainer.config.replace(g_lr=5e-4)) == {"g_lr": (1e-3, 5e-4)}
    with pytest.raises(ConfigError, match="latent_size: cannot change in the middle of a training"):
        trainer.apply_config(trainer.config.replace(latent_size=9))
    assert "latent_size" not in MUTABLE_FIELDS and "d_filters" not in MUTABLE_FIELDS


def _tune_checkpoint(trainer, folder, trial, schedule, history):
    trainer.save(folder)
    (folder / HISTORY_FILE).write_text(json.dumps(history))
    (folder / LINEAGE_FILE).write_text(json.dumps({"trial": trial, "iteration": trainer.iteration,
                                                   "schedule": schedule}))


def test_history_and_lineage_across_an_exploit(tiny_data, tmp_path):
    from ray import tune

    _, dataset, _ = tiny_data
    donor_config = TrainConfig.from_dict(START)
    donor = Trainer(donor_config, dataset)
    for _ in range(4):
        donor.step()
    start = [{"iteration": 0, "trial": "donor", "config": trial_params(donor_config)}]
    _tune_checkpoint(donor, tmp_path / "checkpoint_000000", "donor", start, [{"iteration": 4}])

    # The trial "weak" takes the donor's weights with a perturbed config.
    new_config = donor_config.replace(g_lr=1.2e-3, d_dropout=0.1)
    weak = Trainer(new_config, dataset)
    history, lineage = restore_study_trial(weak, tune.Checkpoint.from_directory(tmp_path / "checkpoint_000000"),
                                           where="trial weak")
    change, schedule = _after_restore(weak, lineage, "weak")
    assert history == [{"iteration": 4}]
    assert change == {"iteration": 4, "from_trial": "donor", "changes": {"g_lr": [1e-3, 1.2e-3], "d_dropout": [0.0, 0.1]}}
    assert [(step["iteration"], step["trial"], step["config"]["g_lr"]) for step in schedule] == [
        (0, "donor", 1e-3), (4, "weak", 1.2e-3)]
    assert weak.g_optimizer.param_groups[0]["lr"] == 1.2e-3

    # Its own retry from its own later checkpoint changes nothing and records nothing.
    for _ in range(2):
        weak.step()
    _tune_checkpoint(weak, tmp_path / "trial_weak" / "checkpoint_000001", "weak", schedule, [{"iteration": 6}])
    again = Trainer(new_config, dataset)
    _, lineage = restore_study_trial(again, tune.Checkpoint.from_directory(tmp_path / "trial_weak" / "checkpoint_000001"),
                                     where="trial weak")
    assert _after_restore(again, lineage, "weak") == (None, schedule)
    assert read_schedule(tmp_path / "trial_weak") == schedule


def test_a_replayed_schedule_applies_each_change_at_its_iteration(tiny_data, tmp_path):
    path, dataset, judge = tiny_data
    base = TrainConfig.from_dict({**START, "iterations": 30, "eval_every": 10})
    steps = [base, base.replace(g_lr=4e-4, d_beta1=0.3), base.replace(g_lr=4e-4, d_beta1=0.3, d_dropout=0.25)]
    schedule = [{"iteration": it, "trial": name, "config": trial_params(config)}
                for it, name, config in zip((0, 10, 20), ("a", "b", "c"), steps)]
    outcome = run_local_trial(tmp_path / "replay", config=base, data=path, judge=judge, judge_steps=60,
                              meta={SCHEDULE: schedule})
    rows = outcome.rows
    assert [row["iteration"] for row in rows] == [10, 20, 30]
    # Each report's values are read back from the optimisers and D: the first ten iterations ran on
    # the first config, the next ten on the second, the last ten on the third.
    for row, config in zip(rows, steps):
        assert {key: row[HYPER][key] for key in ("g_lr", "d_beta1", "d_dropout")} == {
            "g_lr": config.g_lr, "d_beta1": config.d_beta1, "d_dropout": config.d_dropout}
    assert CONFIG_CHANGE not in rows[0]
    assert rows[1][CONFIG_CHANGE] == {"iteration": 10, "from_trial": None,
                                      "changes": {"g_lr": [1e-3, 4e-4], "d_beta1": [0.5, 0.3]}}
    assert rows[2][CONFIG_CHANGE]["iteration"] == 20 and rows[2][CONFIG_CHANGE]["changes"] == {"d_dropout": [0.0, 0.25]}
    assert read_schedule(tmp_path / "replay") == schedule

    # Resumed past a change, it goes on with the config in force there (and extends with --set iterations).
    more = run_local_trial(tmp_path / "replay", resume=True, iterations=40)
    assert [row["iteration"] for row in more.rows] == [10, 20, 30, 40]
    assert more.rows[-1][HYPER]["d_dropout"] == 0.25 and more.rows[-1][HYPER]["g_lr"] == 4e-4


def test_the_last_checkpoint_of_a_trial_that_took_anothers_weights_is_its_furthest(tmp_path):
    from trainable.generate import find_checkpoint

    # After an exploit Ray's checkpoint names restart: checkpoint_000000 is the newer one here.
    for name, iteration in (("checkpoint_000000", 80), ("checkpoint_000001", 40)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer.pt").write_bytes(b"")
        (tmp_path / name / LINEAGE_FILE).write_text(json.dumps({"trial": "t", "iteration": iteration, "schedule": []}))
    assert find_checkpoint(tmp_path).name == "checkpoint_000000"


def test_a_schedule_exported_as_a_ray_policy_file_replays_in_rays_pbt_replay(tmp_path):
    from ray.tune.schedulers import PopulationBasedTrainingReplay

    from trainable.experiment import ray_policy

    base = TrainConfig.from_dict({**START, "eval_every": 20})
    schedule = [{"iteration": it, "trial": name, "config": trial_params(base.replace(g_lr=lr))}
                for it, name, lr in ((0, "a", 1e-3), (40, "b", 1.2e-3), (80, "c", 9.6e-4))]
    path = tmp_path / "policy.txt"
    path.write_text("".join(json.dumps(row) + "\n" for row in ray_policy(schedule)))
    replay = PopulationBasedTrainingReplay(str(path))
    assert replay.config == schedule[0]["config"]
    assert replay._policy == [(2, schedule[1]["config"]), (4, schedule[2]["config"])]  # evaluations 2 and 4
    assert ray_policy(schedule[:1]) == []
