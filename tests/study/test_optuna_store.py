"""The study's Optuna store, read back through Optuna's own storage and artifact APIs.

The callback is driven here the way Tune's controller drives it (start, results, end), with
stand-ins for Tune's trial objects over a real folder; the slow e2e studies check the same
store after real studies (tests/e2e/test_study.py, check_optuna_agrees).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import TrialState
from pyarrow.fs import LocalFileSystem

from study._callbacks import ARTIFACTS_DIR, StudyCallback, journal_storage
from study._stopping import StopLedger
from study.spec import load_spec
from tests.tensorboard_events import tensorboard_scalars
from trainable.experiment import ASHA, COMPLETED, ERROR, SCORE, grid_file


class _Storage:
    storage_filesystem = LocalFileSystem()


class _Trial:
    """What the callback reads of a Tune trial: its id, config, folder in storage, last result."""

    def __init__(self, root: Path, trial_id: str, config: dict) -> None:
        self.trial_id, self.config, self.storage = trial_id, config, _Storage()
        self.path = self.local_path = str(root / f"trial_{trial_id}")
        self.local_experiment_path = str(root)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self.last_result: dict = {}

    def result(self, iteration: int, score: float, done: bool = False) -> dict:
        grid = grid_file(iteration)
        (Path(self.path) / grid).parent.mkdir(exist_ok=True)
        (Path(self.path) / grid).write_bytes(f"png of {self.trial_id} at {iteration}".encode())
        # The loop's last report of a trial that ran to its end says so.
        self.last_result = {"iteration": iteration, SCORE: score, "grid": grid, "done": done,
                            "stop_reason": COMPLETED if done else None}
        return self.last_result


def _study(root: Path) -> optuna.Study:
    storage = journal_storage(root)
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture
def spec():
    return load_spec()


def test_trials_appear_running_with_steps_times_names_baselines_and_grids(tmp_path, spec):
    callback = StudyCallback(tmp_path, spec, "demo")
    v0 = _Trial(tmp_path, "00000", {**spec.baseline_points()[0], "iterations": 800})
    searched = _Trial(tmp_path, "00001", {**spec.baseline_points()[0], "latent_size": 64})
    callback.on_trial_start(0, [v0, searched], v0)
    callback.on_trial_start(0, [v0, searched], searched)
    started = time.time()
    for iteration, score in ((200, 30.0), (400, 20.0)):
        callback.on_trial_result(0, [], v0, v0.result(iteration, score, done=iteration == 400))
    study = _study(tmp_path)
    assert study.metric_names == ["fid_intra"]
    first, second = study.trials
    assert first.state == TrialState.RUNNING and second.state == TrialState.RUNNING  # visible while running
    assert first.intermediate_values == {200: 30.0, 400: 20.0}  # at the iteration, not 1..N
    assert first.user_attrs["baseline"] == "V0" and first.user_attrs["reference"] == "paper"
    assert "baseline" not in second.user_attrs and first.params == spec.baseline_points()[0]
    store = FileSystemArtifactStore(str(tmp_path / ARTIFACTS_DIR))
    metas = get_all_artifact_meta(first, storage=study._storage)
    assert sorted(m.filename for m in metas) == ["iteration_0000200.png", "iteration_0000400.png"]
    download_artifact(artifact_store=store, artifact_id=metas[0].artifact_id, file_path=str(tmp_path / "got.png"))
    assert (tmp_path / "got.png").read_bytes().startswith(b"png of 00000 at ")

    time.sleep(0.05)
    StopLedger(tmp_path).record(searched.trial_id, ASHA, "below the cut", 200)
    last = searched.result(200, 40.0, done=True)
    callback.on_trial_result(0, [], searched, last)
    assert last["stop_reason"] == ASHA  # the last reported result says why the trial ended
    callback.on_trial_complete(0, [], searched)
    callback.on_trial_complete(0, [], v0)
    first, second = _study(tmp_path).trials
    assert first.state == TrialState.COMPLETE and first.value == 20.0
    assert second.state == TrialState.PRUNED and second.user_attrs["stop_reason"] == ASHA
    for trial in (first, second):  # real times: a duration, inside this test's run
        assert trial.datetime_start < trial.datetime_complete
        assert started - 5 < trial.datetime_start.timestamp() < time.time()
    assert json.loads((Path(searched.path) / "stop_reason.json").read_text())["stop_reason"] == ASHA
    records = [json.loads(line) for line in (tmp_path / "optuna.log").read_text().splitlines()]
    assert sum(r["op_code"] == 0 for r in records) == 1  # one create-study record (JournalOperation.CREATE_STUDY)


def test_a_resumed_driver_continues_its_trials_without_duplicates(tmp_path, spec):
    trials = [_Trial(tmp_path, f"0000{n}", {**spec.baseline_points()[0], "latent_size": 64}) for n in range(3)]
    first = StudyCallback(tmp_path, spec, "demo")
    for trial in trials:
        first.on_trial_start(0, trials, trial)
    first.on_trial_result(0, [], trials[0], trials[0].result(200, 30.0))
    # The driver is killed. Tune's saved experiment knows trials 0 and 1 only; trial 2 started after its last save.
    second = StudyCallback(tmp_path, spec, "demo")
    known = trials[:2]
    second.on_trial_start(0, known, trials[0])
    second.on_trial_start(0, known, trials[1])
    second.on_trial_result(0, [], trials[0], trials[0].result(200, 30.0))  # the same report again, from a checkpoint
    second.on_trial_result(0, [], trials[0], trials[0].result(400, 10.0, done=True))
    second.on_trial_result(0, [], trials[1], trials[1].result(400, 12.0, done=True))
    for trial in known:
        second.on_trial_complete(0, [], trial)
    second.on_trial_complete(0, [], trials[0])  # a completion seen twice changes nothing
    study = _study(tmp_path)
    assert len(study.trials) == 3
    by_id = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert by_id["00000"].intermediate_values == {200: 30.0, 400: 10.0} and by_id["00000"].value == 10.0
    assert len(get_all_artifact_meta(by_id["00000"], storage=study._storage)) == 2
    assert by_id["00001"].state == TrialState.COMPLETE
    assert by_id["00002"].state == TrialState.FAIL and by_id["00002"].user_attrs["stop_reason"] == "interrupted"
    records = [json.loads(line) for line in (tmp_path / "optuna.log").read_text().splitlines()]
    assert sum(r["op_code"] == 0 for r in records) == 1


def test_a_trial_tune_ended_before_its_last_report_is_not_called_completed(tmp_path, spec):
    callback = StudyCallback(tmp_path, spec, "demo")
    cut, whole = (_Trial(tmp_path, f"0000{n}", {**spec.baseline_points()[0], "latent_size": 64}) for n in range(2))
    for trial in (cut, whole):
        callback.on_trial_start(0, [cut, whole], trial)
    callback.on_trial_result(0, [], cut, cut.result(200, 30.0))  # then Tune ends it, no stopper's reason recorded
    callback.on_trial_result(0, [], whole, whole.result(400, 12.0, done=True))
    callback.on_trial_complete(0, [], cut)
    callback.on_trial_complete(0, [], whole)
    cut_stop = json.loads((Path(cut.path) / "stop_reason.json").read_text())
    assert cut_stop["stop_reason"] == ERROR and cut_stop["iteration"] == 200
    assert "before its last report" in cut_stop["evidence"]
    assert json.loads((Path(whole.path) / "stop_reason.json").read_text())["stop_reason"] == COMPLETED
    by_id = {t.user_attrs["tune_trial_id"]: t for t in _study(tmp_path).trials}
    assert by_id["00000"].state == TrialState.FAIL and by_id["00001"].state == TrialState.COMPLETE


def test_the_callback_pickles_without_its_open_store(tmp_path, spec):
    import pickle

    callback = StudyCallback(tmp_path, spec, "demo")
    trial = _Trial(tmp_path, "00000", spec.baseline_points()[0])
    callback.on_trial_start(0, [trial], trial)
    copy = pickle.loads(pickle.dumps(callback))
    assert copy._store is None and copy.store.ids == {"00000": 0}


def test_a_trial_going_on_from_a_checkpoint_keeps_every_logged_row(tmp_path):
    """Tune's own result loggers, when a trial starts again with a checkpoint, copy result.json and
    progress.csv from the storage over the driver's copy they append to: a row logged since the
    last upload was lost. The study's loggers keep the driver's copy while the driver lives, and
    restore from the storage only where it has none (a resumed study's new driver)."""
    from study._callbacks import StudyCSVLogger, StudyJsonLogger

    class Storage:
        storage_filesystem = LocalFileSystem()
        trial_fs_path = str(tmp_path / "storage" / "trial_1")

    class Trial:
        config, checkpoint, storage = {"g_lr": 1e-3}, object(), Storage()
        local_path = str(tmp_path / "staging" / "trial_1")
        local_experiment_path = str(tmp_path / "staging")

        def init_local_path(self):
            Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def logged(trial):
        lines = (Path(trial.local_path) / "result.json").read_text().splitlines()
        csv = (Path(trial.local_path) / "progress.csv").read_text().splitlines()[1:]
        return [json.loads(line)["iteration"] for line in lines], csv

    trial = Trial()
    trial.init_local_path()
    Path(Storage.trial_fs_path).mkdir(parents=True)
    rows = [{"iteration": 20, "score": 3.0}, {"iteration": 40, "score": 2.0}]
    (Path(trial.local_path) / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (Path(trial.local_path) / "progress.csv").write_text("iteration,score\n20,3.0\n40,2.0\n")
    (Path(Storage.trial_fs_path) / "result.json").write_text(json.dumps(rows[0]) + "\n")  # uploaded before row 40
    (Path(Storage.trial_fs_path) / "progress.csv").write_text("iteration,score\n20,3.0\n")

    StudyJsonLogger().log_trial_start(trial)  # the trial goes on: Tune's own loggers restored the storage's
    StudyCSVLogger()._setup_trial(trial)
    assert logged(trial) == ([20, 40], ["20,3.0", "40,2.0"])
    resumed = Trial()
    resumed.local_path = str(tmp_path / "new-driver" / "trial_1")  # a resumed study: no staging copy yet
    resumed.init_local_path()
    StudyJsonLogger().log_trial_start(resumed)
    StudyCSVLogger()._setup_trial(resumed)
    assert logged(resumed) == ([20], ["20,3.0"])


def test_tensorboard_files_step_by_training_iteration_and_leave_out_freeze_events(tmp_path, monkeypatch):
    """Tune's TensorBoard logger stepped each value by the report count (1, 2, ...) and warned on the
    user's terminal of a report's freeze events ("You are trying to log an invalid value"); the
    study's steps by the training iteration and leaves the records out."""
    pytest.importorskip("tensorboardX")
    import ray.tune.logger.tensorboardx as tune_tbx

    from study._callbacks import StudyTBXLogger, result_loggers

    warned = []  # Tune warns once per process: every time here
    monkeypatch.setattr(tune_tbx, "log_once", lambda key: True)
    monkeypatch.setattr(tune_tbx.logger, "warning", lambda message, *args: warned.append(message % args))

    assert any(isinstance(logger, StudyTBXLogger) for logger in result_loggers())

    class Trial:
        local_path, evaluated_params = str(tmp_path), {}

        def init_local_path(self):
            pass

    trial, logger = Trial(), StudyTBXLogger()
    events = [{"iteration": 123, "event": "freeze", "reason": "D accuracy 0.951 > 0.95 over 100 iterations"}]
    for report, (iteration, score) in enumerate([(300, 40.0), (600, 20.0)], start=1):
        logger.log_trial_result(report, trial, {"training_iteration": report, "iteration": iteration, "score": score,
                                                "freeze_events": events, "hyper": {"g_lr": 2e-3}})
    logger.log_trial_end(trial)
    scalars = tensorboard_scalars(tmp_path)
    assert scalars["ray/tune/score"] == {300: 40.0, 600: 20.0}
    assert scalars["ray/tune/hyper/g_lr"] == {300: pytest.approx(2e-3), 600: pytest.approx(2e-3)}
    assert not any("freeze_events" in tag for tag in scalars)
    assert warned == []


def _fill(folder: Path) -> Path:
    """Fill the file system ``folder`` is on to its last byte; returns the filler, to free it."""
    import os

    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_ends_the_study_in_one_line_and_leaves_a_store_that_resumes(spec, small_file_system):
    """A record the disk has no room for is not half written: Optuna's own append left half a line,
    which the next driver's first record was joined onto, and the store could not be read again."""
    from trainable.errors import UserError

    root = small_file_system(size="256k") / "study"
    callback = StudyCallback(root, spec, "full")
    trials = [_Trial(root, f"{number:05d}", {**spec.baseline_points()[0], "d_dropout": number / 100})
              for number in range(40)]
    callback.on_trial_start(0, trials, trials[0])
    (root / "optuna.log").write_bytes((root / "optuna.log").read_bytes())  # its last page, whole
    filler = _fill(root)
    with pytest.raises(UserError) as refused:
        for trial in trials[1:]:
            callback.on_trial_start(0, trials, trial)
    message = str(refused.value)
    assert "No space left on device" in message and "cgan-study study resume full" in message
    assert "\n" not in message
    for name in ("optuna.log", "started_as.jsonl"):
        text = (root / name).read_bytes()
        assert text.endswith(b"\n"), name  # no half record
    filler.unlink()  # room again: a new driver goes on where the store stopped
    resumed = StudyCallback(root, spec, "full")
    started = len(_study(root).trials)
    resumed.on_trial_start(0, trials, trials[-1])
    study = _study(root)
    assert len(study.trials) == started + 1 and study.trials[-1].params["d_dropout"] == 0.39


def test_a_store_with_a_torn_last_record_opens_and_goes_on(tmp_path, spec):
    callback = StudyCallback(tmp_path, spec, "torn")
    trial = _Trial(tmp_path, "00000", dict(spec.baseline_points()[0]))
    callback.on_trial_start(0, [trial], trial)
    with open(tmp_path / "optuna.log", "ab") as handle:  # as a machine that died mid-write leaves it
        handle.write(b'{"op_code":5,"worker_id":"x","trial_id":0,"param_na')
    again = StudyCallback(tmp_path, spec, "torn")
    second = _Trial(tmp_path, "00001", {**spec.baseline_points()[0], "latent_size": 64})
    again.on_trial_start(0, [trial, second], second)
    assert [t.params["latent_size"] for t in _study(tmp_path).trials] == [100, 64]


def test_the_driver_never_leaves_a_temporary_file_in_the_folder_ray_uploads(tmp_path, spec, monkeypatch):
    """Ray uploads the driver's staging folder in the background; a temporary file it listed there
    and that was renamed away before it was copied failed the upload (CI, once). The driver's whole
    -file writes keep their temporary file above driver_artifacts/."""
    import os

    staging = tmp_path / "session" / "exp" / "driver_artifacts"
    trial = _Trial(staging, "00000", spec.baseline_points()[0])
    trial.local_experiment_path = str(staging)
    seen = []
    replace = os.replace

    def watched(source, target):  # what an upload listing the trial's folder at that moment would see
        seen.append((Path(source).parent, sorted(p.name for p in Path(trial.local_path).iterdir())))
        replace(source, target)

    monkeypatch.setattr(os, "replace", watched)
    (tmp_path / "study").mkdir()
    callback = StudyCallback(tmp_path / "study", spec, "demo")
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_result(0, [], trial, trial.result(400, 12.0, done=True))
    callback.on_trial_complete(0, [], trial)
    assert json.loads((Path(trial.local_path) / "stop_reason.json").read_text())["stop_reason"] == COMPLETED
    writes = [(folder, names) for folder, names in seen if Path(trial.local_path) in (folder, folder.parent)
              or folder == staging.parent]
    assert writes and all(folder == staging.parent for folder, _ in writes)
    assert all(not name.endswith(".tmp") for _, names in seen for name in names)
