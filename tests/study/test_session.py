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
