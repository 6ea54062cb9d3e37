"""A Population Based Training study end to end: a real local Ray, real files, tiny models."""

import json

import pytest

from analysis import read_experiment
from tests.e2e.test_study import check_optuna_agrees, cli, journal_trials, kill_study_driver
from trainable.experiment import CONFIG_CHANGE, HYPER, RESULT_FILE, STARTS_FILE, read_json_lines, read_schedule

pytestmark = pytest.mark.slow

PBT_STUDY = """
[study]
samples = 4
seed = 3
scheduler = "pbt"
perturbation_interval = 1
quantile_fraction = 0.5
baselines = ["V0"]
[fixed]
g_filters = "8,8,4"
iterations = 60
eval_every = 20
eval_samples_per_class = 10
batch_size = 16
collapse_grace = 100000
[search]
latent_size = [8, 100]
d_filters = ["4,8,8", "32,64,128"]
d_dropout = {low = 0.0, high = 0.5}
g_lr = {low = 1e-4, high = 3e-3, log = true}
"""


def test_a_pbt_study_exploits_records_each_change_and_keeps_the_stores_agreed(tmp_path, tiny_data):
    from ray.tune.schedulers import PopulationBasedTrainingReplay

    config = tmp_path / "study.toml"
    config.write_text(PBT_STUDY)
    storage = tmp_path / "studies"
    done = cli("study", "run", "--config", config, "--name", "pbt", "--storage", storage, "--data", tiny_data[0],
               "--judge-steps", "60")
    assert done.returncode == 0, done.stderr[-3000:]
    # None of Ray's lines per report, restore or member that tell the user nothing.
    for noise in ("Checkpoint successfully created", "Restored on", "Pre-set value", "A new study created"):
        assert noise not in done.stderr + done.stdout, noise
    experiment = read_experiment(storage / "pbt")
    # Every trial once, each ended once, and Optuna's journal holds each once, in the same state.
    assert len(experiment.trials) == 4 and {t.stop_reason for t in experiment.trials} == {"completed"}
    journal = journal_trials(experiment.path)
    assert set(journal) == {t.name.removeprefix("trial_") for t in experiment.trials}
    assert {trial.state.name for trial in journal.values()} == {"COMPLETE"}
    # The driver recorded what each trial started as, once: one V0, whatever params others took.
    started = read_json_lines(experiment.path / STARTS_FILE)
    assert sorted(e["trial_id"] for e in started) == sorted(t.name.removeprefix("trial_") for t in experiment.trials)
    v0, = [t for t in experiment.trials if t.baseline == "V0"]
    assert v0.config_changes == []  # the yardstick is never exploited
    changed = [t for t in experiment.trials if any(c["from_trial"] for c in t.config_changes)]
    assert changed, [t.rows[-1].get("config") for t in experiment.trials]
    for trial in experiment.trials:
        # Every report is in result.json: Tune's loggers copy it back from the storage when a
        # paused or exploited trial goes on, which lost rows not synced yet (study/_callbacks.py).
        assert [row["iteration"] for row in read_json_lines(trial.path / RESULT_FILE)] == [20, 40, 60], trial.name
        # Each report's rates were read back from the optimisers: the config PBT gave the trial.
        for row in read_json_lines(trial.path / RESULT_FILE):
            assert row[HYPER]["g_lr"] == pytest.approx(row["config"]["g_lr"])
            assert row[HYPER]["d_dropout"] == pytest.approx(row["config"]["d_dropout"])
        # params.json is the config it ended with; the Optuna store has it and the changes.
        assert trial.params["g_lr"] == pytest.approx(trial.rows[-1][HYPER]["g_lr"])
        record = journal[trial.name.removeprefix("trial_")]
        assert record.params["g_lr"] == pytest.approx(trial.params["g_lr"])
        assert record.user_attrs.get("config_changes", []) == trial.config_changes
    for trial in changed:
        change = next(c for c in trial.config_changes if c["from_trial"])
        row = next(r for r in trial.rows if r.get(CONFIG_CHANGE) == change)
        assert row["iteration"] == change["iteration"] + 20  # the first report after it
        schedule = read_schedule(trial.path)
        assert len(schedule) >= 2 and schedule[-1]["trial"] == trial.name.removeprefix("trial_")
        assert schedule[-1]["iteration"] == trial.config_changes[-1]["iteration"]
    # The schedule exported for Ray's own replay: the same steps, the same configs.
    policy = tmp_path / "policy.txt"
    exported = cli("analyze", "schedule", changed[0].path, "--out", policy)
    assert exported.returncode == 0 and "from iteration 0" in exported.stdout, exported.stderr[-2000:]
    schedule = read_schedule(changed[0].path)
    replay = PopulationBasedTrainingReplay(str(policy))
    assert [(step * 20, new) for step, new in replay._policy] == [
        (step["iteration"], step["config"]) for step in schedule[1:]]
    assert replay.config == schedule[0]["config"]

    # Our own replay: a local trial follows the best changed trial's schedule, change by change.
    source = changed[0]
    replayed = cli("trial", "--from", source.path, "--schedule", "--out", tmp_path / "replay")
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    rows = read_experiment(tmp_path / "replay").trials[0].rows
    schedule = read_schedule(source.path)
    assert [c["iteration"] for c in read_experiment(tmp_path / "replay").trials[0].config_changes] == [
        step["iteration"] for before, step in zip(schedule, schedule[1:]) if step["config"] != before["config"]]
    for row in rows:
        in_force = [step for step in schedule if step["iteration"] < row["iteration"]][-1]
        assert row[HYPER]["g_lr"] == pytest.approx(in_force["config"]["g_lr"])
    assert json.loads((tmp_path / "replay" / "params.json").read_text())["schedule"] == schedule


def test_a_pbt_study_whose_driver_was_killed_resumes_to_its_end(tmp_path, tiny_data):
    """Ray's synchronous PBT, restored, set its next perturbation time to the time the trials had
    reached and left them all PAUSED forever (study/_stopping.py); resumed, the study ends."""
    config = tmp_path / "study.toml"
    config.write_text(PBT_STUDY.replace("iterations = 60", "iterations = 140"))
    storage = tmp_path / "studies"
    kill_study_driver(tmp_path, config, storage, "pbt", tiny_data[0], reported=4, rows=3)
    resumed = cli("study", "resume", "pbt", "--storage", storage, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    experiment = read_experiment(storage / "pbt")
    assert len(experiment.trials) == 4 and {t.stop_reason for t in experiment.trials} == {"completed"}
    for trial in experiment.trials:  # every report once, the last at the end
        assert [row["iteration"] for row in trial.rows] == list(range(20, 141, 20)), trial.name
    assert [t.baseline for t in experiment.trials].count("V0") == 1
    assert len(read_json_lines(storage / "pbt" / STARTS_FILE)) == 4  # each start recorded once
    check_optuna_agrees(experiment)
