import json
import os

import pytest

from study._session import ray_session
from study.runner import _fit

PENDING = "TUNE_MAX_PENDING_TRIALS_PG"


def test_fit_lets_as_many_trials_start_at_once_as_the_cluster_runs(monkeypatch):
    """Tune keeps 1 trial pending at a time for a searcher other than its own (the second trial's
    worker then starts seconds after the first's): during a study's fit it is the slot count."""
    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import SearchGenerator
    from ray.tune.search.optuna import OptunaSearch

    search = SearchGenerator(OptunaSearch(metric="fid_intra", mode="min"))
    seen = []

    class Tuner:
        def fit(self):
            seen.append((os.environ.get(PENDING), _get_max_pending_trials(search)))
            return []

    monkeypatch.delenv(PENDING, raising=False)
    assert _get_max_pending_trials(search) == 1  # Ray's own rule, which the study works around
    _fit(Tuner(), 3)
    assert seen == [("3", 3)] and PENDING not in os.environ
    monkeypatch.setenv(PENDING, "7")  # the user's own setting wins
    _fit(Tuner(), 3)
    assert seen[-1] == ("7", 7) and os.environ[PENDING] == "7"
    monkeypatch.delenv(PENDING)
    _fit(Tuner(), None)  # PBT: Tune's own generator, whose own limit stays
    assert seen[-1] == (None, 1) and PENDING not in os.environ


def _alive(pid: int, started: int) -> bool:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[19]) == started and fields[0] != "Z"


@pytest.mark.slow
def test_an_embedded_ray_is_stopped_whole_with_its_monitor_ended_first(tmp_path, monkeypatch, capfd):
    """The autoscaler monitor is ended before ``ray.shutdown`` (which stops the GCS first, after
    which the monitor takes a second to die); nothing the session started is left running."""
    import ray

    record = tmp_path / "ray_session.json"
    at_shutdown = []
    shutdown = ray.shutdown

    def watched_shutdown(*args, **kwargs):
        at_shutdown.append(monitor.poll())
        return shutdown(*args, **kwargs)

    monkeypatch.setattr(ray, "shutdown", watched_shutdown)
    with ray_session(None, record=record):
        monitor = ray._private.worker._global_node.all_processes["monitor"][0].process
        processes = json.loads(record.read_text())["processes"]
        assert monitor.pid in [pid for pid, _ in processes]
        assert ray.get(ray.remote(lambda: 7).remote()) == 7
    assert at_shutdown and at_shutdown[0] is not None  # ended before shutdown began
    assert not record.exists()
    assert not [pid for pid, started in processes if _alive(pid, started)]
    assert "autoscaler" not in capfd.readouterr().err.lower()


def test_a_resume_hides_tunes_error_for_a_checkpoint_the_killed_driver_had_deleted(tmp_path):
    """Tune's real checkpoint bookkeeping, restored with a checkpoint the killed driver had already
    deleted, raises when the resumed trial's next checkpoint pushes it out: while a study resumes
    that error is not shown (nothing is lost), any other error handling a checkpoint is."""
    import logging
    import shutil

    from ray import tune
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult

    from study.runner import _quiet_restore

    def result(index):
        folder = tmp_path / f"checkpoint_{index:06d}"
        folder.mkdir()
        return _TrainingResult(tune.Checkpoint.from_directory(str(folder)), {"iteration": index})

    manager = _CheckpointManager(tune.CheckpointConfig(num_to_keep=2))  # the study's own setting
    manager.register_checkpoint(result(0))
    manager.register_checkpoint(result(1))
    shutil.rmtree(tmp_path / "checkpoint_000000")  # deleted by the driver, still in its saved state
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    shown = []  # Ray's loggers do not propagate to pytest's caplog: a handler of its own
    handler = logging.Handler()
    handler.emit = shown.append
    controller.addHandler(handler)
    with _quiet_restore():
        for error in (lambda: manager.register_checkpoint(result(2)), lambda: open(tmp_path / "missing")):
            try:
                error()
            except Exception:  # as Tune's controller logs it (tune_controller._process_trial_save)
                controller.exception("Trial %s: Error handling checkpoint %s", "trial_1", "checkpoint")
    assert len(shown) == 1 and "missing" in str(shown[0].exc_info[1])  # the other error
    assert [c.checkpoint.path for c in manager._checkpoint_results] == [str(tmp_path / "checkpoint_000001"),
                                                                       str(tmp_path / "checkpoint_000002")]
    shown.clear()
    try:  # outside a resume, the same error is shown
        manager.register_checkpoint(result(3))
        shutil.rmtree(tmp_path / "checkpoint_000002")
        manager.register_checkpoint(result(4))
    except FileNotFoundError:
        controller.exception("Trial %s: Error handling checkpoint %s", "trial_1", "checkpoint")
    controller.removeHandler(handler)
    assert len(shown) == 1 and isinstance(shown[0].exc_info[1], FileNotFoundError)
