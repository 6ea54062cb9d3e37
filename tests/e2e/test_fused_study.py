"""A study whose trials are trained by its fusion server (``[study] fused_trials``), end to end on a
real local Ray: each trial reports, stops and is recorded as in the same study without fusion."""

import json

import pytest

from analysis import read_experiment
from tests.e2e.test_study import check_optuna_agrees, cli

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
iterations = 60
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


def _run(tmp_path, tiny_data, name, study="", env=None):
    config = tmp_path / f"{name}.toml"
    config.write_text(STUDY.format(study=study))
    done = cli("study", "run", "--config", config, "--name", name, "--storage", tmp_path / "studies",
               "--data", tiny_data[0], "--judge-steps", "60", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    experiment = read_experiment(tmp_path / "studies" / name)
    return experiment, {json.dumps(trial.params, sort_keys=True): trial for trial in experiment.trials}


def test_fused_trials_report_stop_and_resume_as_the_same_trials_alone(tmp_path, tiny_data):
    timings, failed = tmp_path / "timings.jsonl", tmp_path / "failed-once"
    alone, alone_trials = _run(tmp_path, tiny_data, "alone")
    # Fused, with one trial raising after its first report: it is retried from its checkpoint and joins again.
    fused, fused_trials = _run(tmp_path, tiny_data, "fused", study="fused_trials = true",
                               env={"CGAN_STUDY_TIMINGS": str(timings), "CGAN_STUDY_FAIL_ONCE": str(failed)})
    assert set(fused_trials) == set(alone_trials) and len(fused_trials) == 4  # the same configs (seeded start-up draws)
    for key, trial in fused_trials.items():
        mine = alone_trials[key]
        assert trial.stop_reason == mine.stop_reason == "completed"
        assert [row["iteration"] for row in trial.rows] == [row["iteration"] for row in mine.rows] == [20, 40, 60]
        # 60 steps apart from the same trial alone (one CPU thread there, two in the server): the
        # float orders differ and a GAN's steps amplify it; still far from the other trials.
        for metric in ("d_loss", "g_loss", "fid_intra"):
            assert [row[metric] for row in trial.rows] == pytest.approx([row[metric] for row in mine.rows], rel=1e-2)
            assert not any([row[metric] for row in other.rows] == pytest.approx([row[metric] for row in mine.rows],
                                                                                rel=1e-2)
                           for other in alone_trials.values() if other is not mine)
    check_optuna_agrees(fused)
    rounds = [json.loads(line)["groups"] for line in timings.read_text().splitlines()
              if json.loads(line)["event"] == "round"]
    assert any(groups[0] >= 2 for groups in rounds), rounds  # trials of one architecture were fused
    assert failed.exists()  # the retried trial's reports are the same as alone: resumed exactly
