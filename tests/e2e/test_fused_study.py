"""A study whose trials are trained by its fusion server (``[study] fused_trials``), end to end on a
real local Ray: each trial reports, stops and is recorded as in the same study without fusion,
through a trial that raises, the server's process dying, and the driver killed and resumed."""

import json

import pytest

from analysis import read_experiment
from tests.e2e.test_study import check_optuna_agrees, cli, kill_study_driver, without_worker_kill_noise

pytestmark = pytest.mark.slow

STUDY = """
[study]
samples = 4
seed = 5
baselines = []
early_stopping = false
cpus_per_trial = 0.5        # all four at once on 2 CPUs: the server trains them, the trials wait
{study}
[fixed]
g_filters = "8,8,4"
d_filters = "4,8,8"
iterations = {iterations}
eval_every = 20
eval_samples_per_class = 10
batch_size = 16
collapse_grace = 1000
precision = "fp32"         # bf16 agrees to its rounding only (tests/trainable/test_fused.py)
[search]
latent_size = [8, 12]
g_lr = {{low = 1e-4, high = 2e-3, log = true}}
d_beta1 = [0.0, 0.5]
"""


def _config(path, study="", iterations=60):
    path.write_text(STUDY.format(study=study, iterations=iterations))
    return path


def _trials(experiment_dir):
    experiment = read_experiment(experiment_dir)
    return experiment, {json.dumps(trial.params, sort_keys=True): trial for trial in experiment.trials}


def _run(tmp_path, data, name, study="", env=None, iterations=60):
    config = _config(tmp_path / f"{name}.toml", study, iterations)
    done = cli("study", "run", "--config", config, "--name", name, "--storage", tmp_path / "studies",
               "--data", data, "--judge-steps", "60", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return _trials(tmp_path / "studies" / name)


@pytest.fixture(scope="module")
def alone(tmp_path_factory, tiny_data):
    """The same studies without fusion, 60 and 100 iterations a trial: {length: {params: trial}}."""
    tmp_path = tmp_path_factory.mktemp("alone")
    return {length: _run(tmp_path, tiny_data[0], f"alone{length}", iterations=length)[1] for length in (60, 100)}


def _same_as_alone(fused_trials, alone_trials):
    assert set(fused_trials) == set(alone_trials) and len(fused_trials) == 4  # the same configs (seeded start-up draws)
    for key, trial in fused_trials.items():
        mine = alone_trials[key]
        assert trial.stop_reason == mine.stop_reason == "completed"
        assert [row["iteration"] for row in trial.rows] == [row["iteration"] for row in mine.rows]
        # Apart from the same trial alone (one CPU thread there, two in the server): the float
        # orders differ and a GAN's steps amplify it; still far from the other trials.
        for metric in ("d_loss", "g_loss", "fid_intra"):
            assert [row[metric] for row in trial.rows] == pytest.approx([row[metric] for row in mine.rows], rel=1e-2)
            assert not any([row[metric] for row in other.rows] == pytest.approx([row[metric] for row in mine.rows],
                                                                                rel=1e-2)
                           for other in alone_trials.values() if other is not mine)


def test_fused_trials_report_stop_and_recover_as_the_same_trials_alone(tmp_path, tiny_data, alone):
    timings, failed, killed = tmp_path / "timings.jsonl", tmp_path / "failed-once", tmp_path / "killed-once"
    # One trial raises after its first report (retried from its checkpoint, it joins again), and
    # the server's process dies once mid-study (started again, every trial joins again).
    fused, fused_trials = _run(tmp_path, tiny_data[0], "fused", study="fused_trials = true",
                               env={"CGAN_STUDY_TIMINGS": str(timings), "CGAN_STUDY_FAIL_ONCE": str(failed),
                                    "CGAN_STUDY_KILL_SERVER_ONCE": str(killed)})
    assert failed.exists() and killed.exists()
    _same_as_alone(fused_trials, alone[60])
    check_optuna_agrees(fused)
    rounds = [json.loads(line)["groups"] for line in timings.read_text().splitlines()
              if json.loads(line)["event"] == "round"]
    assert any(groups[0] >= 2 for groups in rounds), rounds  # trials of one architecture were fused


def test_a_fused_study_whose_driver_was_killed_resumes_as_if_never_stopped(tmp_path, tiny_data, alone):
    config = _config(tmp_path / "fused.toml", "fused_trials = true", iterations=100)
    storage = tmp_path / "studies"
    kill_study_driver(tmp_path, config, storage, "killed", tiny_data[0], reported=2, rows=2)
    resumed = cli("study", "resume", "killed", "--storage", storage)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    err = without_worker_kill_noise(resumed.stderr)
    assert "Traceback" not in err, err[-3000:]
    experiment, trials = _trials(storage / "killed")
    _same_as_alone(trials, alone[100])
    check_optuna_agrees(experiment)
