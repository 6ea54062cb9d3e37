"""End to end on a real local Ray (2 CPUs), real Optuna and real files, with tiny models."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
import pytest

from analysis import read_experiment
from tests.tensorboard_events import tensorboard_scalars

pytestmark = pytest.mark.slow

TINY_STUDY = """
[study]
samples = {samples}
grace_period = 1
seed = 3
{study}
[fixed]
g_filters = "8,8,4"
iterations = {iterations}
eval_every = 20
eval_samples_per_class = 10
batch_size = 16
collapse_grace = {grace}
{fixed}
[search]
latent_size = [8, 80, 100]
d_filters = ["4,8,8", "16,32,64", "32,64,128"]
d_dropout = {{low = 0.0, high = 0.5}}
freeze_accuracy = ["off", 0.95]
freeze_after = ["off", 50000]
"""


def write_study(tmp_path, samples=5, iterations=60, fixed="", grace=40, study=""):
    path = tmp_path / "study.toml"
    path.write_text(TINY_STUDY.format(samples=samples, iterations=iterations, fixed=fixed, grace=grace, study=study))
    return path


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "study", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


_WORKER_LINE = re.compile(r"^(?:\x1b\[\d+m)?\((\S+ pid=\d+)\)(?:\x1b\[0m)? ?(.*)$")


def without_worker_kill_noise(stderr: str) -> str:
    """``stderr`` less the traceback a Ray worker prints when the raylet ends it with SIGTERM
    (Ray's own ``sigterm_handler`` raising SystemExit wherever the worker happens to be, at
    times inside a weakref callback: "Exception ignored in ..."): Ray's shutdown, not the
    study's. Any other traceback, the driver's or a worker's, stays."""
    kept, blocks = [], {}  # blocks: worker -> the lines of a traceback still open
    for line in stderr.splitlines():
        match = _WORKER_LINE.match(line)
        if match is None:
            kept.append(line)
            continue
        worker, text = match.groups()
        if worker in blocks:
            blocks[worker].append(line)
            if re.match(r"^\w+(Error|Exit|Exception)\b", text):  # the traceback's last line
                block = blocks.pop(worker)
                if not (text.startswith("SystemExit") and any("sigterm_handler" in b for b in block)):
                    kept += block
        elif text.startswith(("Exception ignored in", "Traceback (most recent call last)")):
            blocks[worker] = [line]
        else:
            kept.append(line)
    for block in blocks.values():
        kept += block
    return "\n".join(kept)


def test_only_rays_worker_kill_noise_is_taken_out_of_stderr():
    w = "\x1b[36m(cgan_trainable pid=6780)\x1b[0m "
    noise = [w + "Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7f7b>",
             w + "Traceback (most recent call last):",
             w + '  File "ray/_private/worker.py", line 1063, in sigterm_handler',
             w + "SystemExit: 1"]
    ours = [w + "Traceback (most recent call last):", w + '  File "trainable/cgan.py", line 9, in step',
            w + "RuntimeError: boom"]
    driver = ["UserWarning: something", "Traceback (most recent call last):", "FileNotFoundError: x"]
    assert without_worker_kill_noise("\n".join(["a", *noise, "b"])) == "a\nb"
    assert without_worker_kill_noise("\n".join([*noise, *ours])) == "\n".join(ours)
    assert without_worker_kill_noise("\n".join(driver)) == "\n".join(driver)
    assert without_worker_kill_noise("\n".join(noise[:2])) == "\n".join(noise[:2])  # an unfinished one stays


def journal_trials(experiment_dir):
    storage = JournalStorage(JournalFileBackend(str(experiment_dir / "optuna.log")))
    name = optuna.get_all_study_names(storage)[0]
    return {t.user_attrs["tune_trial_id"]: t for t in optuna.load_study(study_name=name, storage=storage).trials}


def check_optuna_agrees(experiment):
    """The study's Optuna store holds every trial once, as the trial folders say it ran: state, stop
    reason, real times, the metric at each report's iteration, each report's grid as an artifact."""
    from optuna.artifacts import get_all_artifact_meta

    trials = journal_trials(experiment.path)
    assert len(trials) == len(experiment.trials)
    expected = {"completed": "COMPLETE", "asha": "PRUNED", "mode-collapse": "PRUNED", "loss-collapse": "PRUNED",
                "error": "FAIL"}
    storage = JournalStorage(JournalFileBackend(str(experiment.path / "optuna.log")))
    records = [json.loads(line) for line in (experiment.path / "optuna.log").read_text().splitlines()]
    assert sum(record["op_code"] == 0 for record in records) == 1  # the study is created once
    for trial in experiment.trials:
        ours = trials[trial.name.removeprefix("trial_")]
        assert ours.state.name == expected[trial.stop_reason], (trial.name, trial.stop_reason, ours.state)
        assert ours.user_attrs["stop_reason"] == trial.stop_reason
        assert ours.user_attrs.get("baseline") == trial.baseline
        assert ours.datetime_start < ours.datetime_complete
        assert ours.intermediate_values == {row["iteration"]: row["score"] for row in trial.rows}
        assert sorted(meta.filename for meta in get_all_artifact_meta(ours, storage=storage)) == \
            sorted(row["grid"].rsplit("/", 1)[1] for row in trial.rows)
        if trial.stop_reason != "error":  # the last result says why the trial ended (Tune's own files too)
            assert trial.rows[-1]["stop_reason"] == trial.stop_reason, (trial.name, trial.rows[-1])
    return trials


def test_study_runs_baselines_records_stop_reasons_and_summary(tmp_path):
    config = write_study(tmp_path)
    timings = tmp_path / "timings.jsonl"
    # No GPU here: a GPU share must run on CPU, not leave trials PENDING forever.
    done = cli("study", "run", "--config", config, "--name", "tiny", "--storage", tmp_path / "studies",
               "--gpus-per-trial", "0.25", env={"CGAN_STUDY_TIMINGS": str(timings)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no GPU in the cluster: running on CPU" in done.stderr
    # Not Tune's warning of frequent experiment-state snapshots, which its reports every second
    # trigger and a user can do nothing about.
    assert "Experiment state snapshotting" not in done.stderr + done.stdout
    experiment = read_experiment(tmp_path / "studies" / "tiny")
    assert len(experiment.trials) == 5
    assert sorted(t.baseline for t in experiment.trials if t.baseline) == ["V0", "V1", "V2"]
    from trainable.data import EXPRESSIONS
    assert experiment.class_names == list(EXPRESSIONS)  # the data set's, as study.json records them
    # A finished trial's worker ran a later trial (5 trials, 2 at a time, fewer workers)...
    entered = [entry for entry in map(json.loads, timings.read_text().splitlines()) if entry["event"] == "entered"]
    assert sorted(entry["trial"] for entry in entered) == sorted(t.name.removeprefix("trial_") for t in experiment.trials)
    assert len({entry["pid"] for entry in entered}) < 5, entered
    for trial in experiment.trials:
        assert trial.stop_reason in ("completed", "asha")
        assert (trial.path / "stop_reason.json").exists()
        # ...each from a fresh start, its grids in its own folder: every report's grid, synced from the
        # worker into the study's storage, and no other.
        assert trial.rows[0]["iteration"] == 20
        assert {row["grid"] for row in trial.rows} == {
            str(path.relative_to(trial.path)) for path in trial.path.glob("grids/*.png") if ".thumb" not in path.name}
        for row in trial.rows:
            assert row["node_id"] and row["hostname"] and row["node_ip"]  # where it ran, node by node
        # TensorBoard's files, stepped by the training iteration
        assert tensorboard_scalars(trial.path)["ray/tune/score"] == pytest.approx(
            {row["iteration"]: row["score"] for row in trial.rows})
    assert any(t.stop_reason == "completed" for t in experiment.trials)
    check_optuna_agrees(experiment)
    assert "study tiny: 5 trials" in done.stdout
    for name in ("V0", "V1", "V2"):
        assert f"the paper's {name}: FD-intra" in done.stdout
    best = min((t for t in experiment.trials if t.score is not None), key=lambda t: t.score)
    assert f"best: {best.name}" in done.stdout
    status = cli("study", "status", "tiny", "--storage", tmp_path / "studies")
    assert status.returncode == 0 and best.name in status.stdout
    again = cli("study", "run", "--config", config, "--name", "tiny", "--storage", tmp_path / "studies")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_diverging_trial_ends_as_loss_collapse_and_is_pruned(tmp_path):
    # Learning rates of 1.0 with no momentum damping: D wins within the first reports. (Not the
    # paper's Adam, so no paper baseline: the study file would be refused with them.)
    config = write_study(tmp_path, samples=3, iterations=200, study="baselines = []",
                         fixed='g_lr = 1.0\nd_lr = 1.0\ncollapse_patience = 2\n')
    done = cli("study", "run", "--config", config, "--name", "diverge", "--storage", tmp_path / "studies")
    assert done.returncode == 0, done.stderr[-3000:]
    experiment = read_experiment(tmp_path / "studies" / "diverge")
    collapsed = [t for t in experiment.trials if t.stop_reason == "loss-collapse"]
    assert collapsed, [(t.name, t.stop_reason, t.last.get("d_loss")) for t in experiment.trials]
    for trial in collapsed:
        assert trial.evidence and trial.last["iteration"] < 200
        assert "NaN" not in (trial.path / "result.json").read_text()
    trials = check_optuna_agrees(experiment)
    assert {trials[t.name.removeprefix("trial_")].state.name for t in collapsed} == {"PRUNED"}


def test_trial_that_raises_once_is_retried_from_its_checkpoint(tmp_path, tiny_data):
    marker, damaged = tmp_path / "failed-once", tmp_path / "damaged-once"
    config = write_study(tmp_path, samples=3, iterations=60)
    # One trial raises after its first report; one cuts its second checkpoint short, then raises.
    done = cli("study", "run", "--config", config, "--name", "retry", "--storage", tmp_path / "studies",
               "--data", tiny_data[0], "--judge-steps", "60", env={"CGAN_STUDY_FAIL_ONCE": str(marker), "CGAN_STUDY_DAMAGE_ONCE": str(damaged)})
    assert done.returncode == 0, done.stderr[-3000:]
    failed_id = marker.read_text().split()[0]
    experiment = read_experiment(tmp_path / "studies" / "retry")
    trial = next(t for t in experiment.trials if t.name == f"trial_{failed_id}")
    iterations = [row["iteration"] for row in trial.rows]
    # Resumed from the checkpoint at iteration 20: 20 is not trained (or reported) twice.
    assert iterations == sorted(set(iterations)) and iterations[0] == 20
    # The damaged checkpoint is not retried until the trial errors: its retry falls back to the one before.
    damaged_id, checkpoint = damaged.read_text().split()
    output = done.stdout + done.stderr
    assert f"{checkpoint}/trainer.pt: unreadable checkpoint (truncated" in output, output[-3000:]
    assert "resuming from the previous readable one, checkpoint_" in output
    trial = next(t for t in experiment.trials if t.name == f"trial_{damaged_id}")
    assert [row["iteration"] for row in trial.rows] == [20, 40, 60]
    # Its own files too: the iteration trained again after the fallback is written once, not twice.
    raw = [json.loads(line)["iteration"] for line in (trial.path / "result.json").read_text().splitlines()]
    with open(trial.path / "progress.csv") as handle:
        table = [int(row["iteration"]) for row in csv.DictReader(handle)]
    assert raw == table == [20, 40, 60]
    assert all(t.stop_reason in ("completed", "asha") for t in experiment.trials)
    check_optuna_agrees(experiment)


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, tiny_data):
    config = write_study(tmp_path, samples=3, iterations=2000, grace=100000)
    storage = tmp_path / "studies"
    # The tiny data set and its judge, trained and cached by the fixture: the study starts at once.
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        driver = subprocess.Popen([sys.executable, "-m", "study", "study", "run", "--config", str(config),
                                   "--name", "stopped", "--storage", str(storage), "--data", str(tiny_data[0]),
                                   "--judge-steps", "60"], stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not any(p.stat().st_size for p in (storage / "stopped").glob("trial_*/result.json")):
            assert driver.poll() is None and time.time() < deadline, (tmp_path / "err").read_text()[-3000:]
            time.sleep(0.5)
        driver.send_signal(signal.SIGINT)  # to the driver alone, as Ctrl-C reaches its Python
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert driver.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (f"interrupted: continue with cgan-study study resume stopped "
                                            f"--storage {storage}")
    assert "study stopped:" not in out  # no summary that looks finished
    assert "Tuner.restore" not in out + err  # Tune's own hint is not the command a user runs
    assert not (storage / "stopped" / "ray_session.json").exists()  # its Ray was shut down


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError):
        return None


def kill_study_driver(tmp_path, config, storage, name, data, *, reported: int, rows: int = 1) -> list:
    """Run a study and SIGKILL its driver and the Ray it started (as a crash would) once
    ``reported`` trials have ``rows`` reports each; the processes its Ray session recorded."""
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "study", "study", "run", "--config", str(config),
                               "--name", name, "--storage", str(storage), "--data", str(data),
                               "--judge-steps", "60"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    experiment_dir = storage / name
    deadline = time.time() + 300
    while time.time() < deadline:
        counts = [len(p.read_text().splitlines()) for p in experiment_dir.glob("trial_*/result.json")]
        if sum(count >= rows for count in counts) >= reported:
            break
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.5)
    else:
        pytest.fail("the study never got going")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    return json.loads((experiment_dir / "ray_session.json").read_text())["processes"]


def test_killed_driver_is_resumed_with_every_trial_accounted_once(tmp_path, tiny_data):
    config = write_study(tmp_path, samples=6, iterations=200, grace=100000)
    storage = tmp_path / "studies"
    experiment_dir = storage / "killed"
    # killed once two trials have reported and the study is mid-way
    left = kill_study_driver(tmp_path, config, storage, "killed", tiny_data[0], reported=2)
    resumed = cli("study", "resume", "killed", "--storage", storage)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    err = without_worker_kill_noise(resumed.stderr)
    assert "FileNotFoundError" not in err and "Traceback" not in err, err[-3000:]
    # Whatever the killed driver's Ray left running was ended by the next driver of the study.
    assert not [pid for pid, started in left if _start_time(pid) == started]
    experiment = read_experiment(experiment_dir)
    assert len(experiment.trials) == 6, [t.name for t in experiment.trials]
    for trial in experiment.trials:
        assert trial.stop_reason in ("completed", "asha"), (trial.name, trial.stop_reason)
        iterations = [row["iteration"] for row in trial.rows]
        assert iterations == sorted(set(iterations)), (trial.name, iterations)  # no report counted twice
        # A report made after the last saved checkpoint is trained again on resume; exact
        # resume makes the second report equal the first.
        raw = [json.loads(line) for line in (trial.path / "result.json").read_text().splitlines()]
        first = {}
        for row in raw:
            if row["iteration"] in first:
                assert row["d_loss"] == first[row["iteration"]]["d_loss"], (trial.name, row["iteration"])
            first.setdefault(row["iteration"], row)
    assert sorted(t.baseline for t in experiment.trials if t.baseline) == ["V0", "V1", "V2"]
    trials = check_optuna_agrees(experiment)
    assert len(set(trials)) == 6
    assert "study killed: 6 trials" in resumed.stdout


# A driver whose study's lengthening rule fires after two trials (as in the test above).
LENGTHENING_DRIVER = """
import sys
import study._search as search
search.WORKING_ACCURACY = 2.0
search.too_short = lambda ended: list(ended) if len(ended) >= 2 else []
from study.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_driver_resumes_a_trial_going_on_from_anothers_end_with_each_report_once(tmp_path, tiny_data):
    """The driver SIGKILLed while the trial going on from another's end ([study] lengthen) has made its
    first report: `study resume` finishes it from its own checkpoint, its reports past the other's end,
    each iteration once (one trained again equal to the first), the one it went on from left as it was."""
    config = write_study(tmp_path, samples=5, iterations=200, grace=100000,
                         study="baselines = []\nstartup_trials = 2\nearly_stopping = false")
    storage, log = tmp_path / "studies", open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-c", LENGTHENING_DRIVER, "study", "run", "--config", str(config),
                               "--name", "longer", "--storage", str(storage), "--data", str(tiny_data[0]),
                               "--judge-steps", "60"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while not [p for p in (storage / "longer").glob("trial_*/result.json")
               if "continues" in json.loads((p.parent / "params.json").read_text())]:
        assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.3)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    resumed = cli("study", "resume", "longer", "--storage", storage)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in without_worker_kill_noise(resumed.stderr), resumed.stderr[-3000:]
    experiment = read_experiment(storage / "longer")
    going_on = [trial for trial in experiment.trials if trial.continues]
    assert len(experiment.trials) == 5 and len(going_on) == 1, [t.name for t in experiment.trials]
    source = {trial.name: trial for trial in experiment.trials}[going_on[0].continues]
    assert [row["iteration"] for row in source.rows] == list(range(20, 201, 20))
    assert [row["iteration"] for row in going_on[0].rows] == list(range(220, 401, 20))
    for trial in experiment.trials:
        assert trial.stop_reason == "completed", (trial.name, trial.stop_reason)
        first = {}
        for row in map(json.loads, (trial.path / "result.json").read_text().splitlines()):
            assert first.setdefault(row["iteration"], row)["d_loss"] == row["d_loss"], (trial.name, row["iteration"])
    check_optuna_agrees(experiment)


def test_impossible_request_is_refused_at_once(tmp_path):
    config = write_study(tmp_path, samples=3)
    started = time.time()
    done = cli("study", "run", "--config", config, "--name", "big", "--storage", tmp_path / "studies",
               "--cpus-per-trial", "64")
    assert done.returncode == 1
    assert "--cpus-per-trial 64 can never be satisfied" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.time() - started < 60


RECIPE_STUDY = """
[study]
samples = 2
baselines = ["V0", "recipe"]
early_stopping = false
[fixed]
g_filters = "32,16,8"
d_filters = "32,64,128"
latent_size = 32
iterations = 500
eval_every = 250
eval_samples_per_class = 50
collapse_grace = 100000
[search]
{search}
"""


def test_a_short_study_ranks_the_reference_recipe_above_the_papers_v0(tmp_path):
    from trainable.config import RECIPE, TrainConfig
    from trainable.experiment import trial_params

    paper = trial_params(TrainConfig())  # each remedy searched between the paper's value and the recipe's
    search = "\n".join(f"{key} = [{json.dumps(paper[key])}, {json.dumps(value)}]" for key, value in RECIPE.items())
    config = tmp_path / "study.toml"
    config.write_text(RECIPE_STUDY.format(search=search))
    done = cli("study", "run", "--config", config, "--name", "recipe", "--storage", tmp_path / "runs", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    experiment = read_experiment(tmp_path / "runs" / "recipe")
    by_preset = {t.baseline: t for t in experiment.trials}
    assert set(by_preset) == {"V0", "recipe"}
    recipe, v0 = by_preset["recipe"], by_preset["V0"]
    assert all(recipe.params[key] == value for key, value in RECIPE.items())
    assert all(v0.params[key] == paper[key] for key in RECIPE)
    assert recipe.last["iteration"] == v0.last["iteration"] == 500
    assert recipe.score < v0.score, (recipe.score, v0.score)  # ranked above it
    assert "reference recipe: FD-intra" in done.stdout and "the paper's V0: FD-intra" in done.stdout
    assert "(reference recipe)" in done.stdout.split("best:")[1].splitlines()[0]
    assert "vs the paper's V0 at iteration 500" in done.stdout


def test_a_study_with_a_budget_starts_no_trial_once_it_is_spent(tmp_path, tiny_data):
    # Random search: Tune asks for trials ahead of free slots, and nothing makes the sampler wait.
    config = write_study(tmp_path, samples=50, iterations=60, study='budget = 150\nbaselines = []\nsampler = "random"')
    done = cli("study", "run", "--config", config, "--name", "budget", "--storage", tmp_path / "studies",
               "--data", tiny_data[0], "--judge-steps", "60")
    assert done.returncode == 0, done.stderr[-3000:]
    experiment = read_experiment(tmp_path / "studies" / "budget")
    spent = sum(trial.last["iteration"] for trial in experiment.trials)
    # A trial was created only while the budget had room beside what the live trials could still
    # train: the last one started may pass it, by less than its own 60 iterations, no more.
    assert 150 <= spent < 150 + 60 and len(experiment.trials) < 50, (spent, len(experiment.trials))
    assert "budget of 150 training iterations is spent" in done.stderr


def test_a_study_that_lengthens_its_trials_goes_on_from_the_best_ones_end(tmp_path, tiny_data, monkeypatch):
    """On a real Ray, the study's rule made to fire after its first two trials (every ended trial
    counted still rising, none working): the next trial restores the best one's last checkpoint from
    the study's storage and trains it on to twice the length, its reports beginning past it; the
    trial after it is a fresh draw at twice the length; the trial it went on from is left as it was."""
    import study._search as search
    from study.runner import run_study
    from study.spec import load_spec
    from trainable.experiment import CONFIG_CHANGE, CONTINUES, HISTORY_FILE, start_iteration

    monkeypatch.setattr(search, "WORKING_ACCURACY", 2.0)
    monkeypatch.setattr(search, "too_short", lambda ended: list(ended) if len(ended) >= 2 else [])
    config = write_study(tmp_path, samples=4, iterations=60,
                         study="baselines = []\nstartup_trials = 2\nearly_stopping = false")
    run_study(load_spec(config), name="longer", data=str(tiny_data[0]), storage=str(tmp_path / "studies"),
              judge_steps=60)
    experiment = read_experiment(tmp_path / "studies" / "longer")
    trials = {trial.name: trial for trial in experiment.trials}
    going_on = [trial for trial in experiment.trials if trial.continues]
    assert len(trials) == 4 and len(going_on) == 1, sorted(trials)
    trial = going_on[0]
    source = trials[trial.continues]
    assert [row["iteration"] for row in source.rows] == [20, 40, 60] and source.params["iterations"] == 60
    assert [row["iteration"] for row in trial.rows] == [80, 100, 120] and trial.params["iterations"] == 120
    assert start_iteration(trial.params) == 60 and trial.params[CONTINUES]["uri"] == str(source.path)
    assert {key: trial.params[key] for key in experiment.search} == {key: source.params[key] for key in experiment.search}
    assert trial.rows[0][CONFIG_CHANGE]["from_trial"] == source.name.removeprefix("trial_")
    from analysis._leaderboard import describe_config_changes
    assert describe_config_changes(trial.config_changes).startswith(f"it 60 from {source.name}: "), trial.config_changes
    newest = sorted(trial.path.glob("checkpoint_*"))[-1]
    assert [row["iteration"] for row in json.loads((newest / HISTORY_FILE).read_text())] == [20, 40, 60, 80, 100, 120]
    drawn = [t for t in experiment.trials if t.name not in (trial.name, source.name) and t.params["iterations"] == 120]
    assert len(drawn) == 1 and all(row["iteration"] <= 120 for row in drawn[0].rows)
    assert all(t.stop_reason == "completed" for t in experiment.trials)
    journal = check_optuna_agrees(experiment)
    assert journal[trial.name.removeprefix("trial_")].user_attrs[CONTINUES] == source.name.removeprefix("trial_")
    from study._summary import summary
    text = summary(experiment.path)
    assert f"{trial.name} going on from the end of {source.name}) ran 120 iterations, not 60" in text, text
