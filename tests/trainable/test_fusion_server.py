"""The server that trains a study's trials together (trainable/fusion_server.py), driven by threads
as Tune's trial functions drive it."""

import threading

import pytest

from tests.trainable.test_fused import _configs
from trainable.experiment import FID_INTRA
from trainable.fused import FusedTrainers
from trainable.fusion_server import FusionServer
from trainable.loop import train
from trainable.training import Trainer


def _alone_rows(config, dataset, judge):
    rows = []
    train(Trainer(config, dataset, judge), lambda row, grid, trainer: rows.append(row), stop_on_collapse=False)
    return rows


def _trial(server, trial_id, config, rows, *, state=None, history=(), stop_after=None):
    """A trial function's part: join, then take reports until done (or until it is 'stopped')."""
    server.join(trial_id, config.to_dict(), state, list(history))
    while True:
        row, grid, state = server.next_report(trial_id)
        rows.append((row, state))
        if row["done"] or (stop_after is not None and len(rows) >= stop_after):
            return


def _run(server, trials):
    threads = [threading.Thread(target=_trial, args=(server, *trial[:3]), kwargs=trial[3] if len(trial) > 3 else {})
               for trial in trials]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)


def _same_reports(got, expected):
    assert [row["iteration"] for row in got] == [row["iteration"] for row in expected]
    assert [row["done"] for row in got] == [row["done"] for row in expected]
    for key in ("d_loss", "g_grad_norm", FID_INTRA):
        assert [row[key] for row in got] == pytest.approx([row[key] for row in expected], rel=1e-3)


def test_trials_trained_by_the_server_report_what_each_reports_alone(tiny_data):
    _, dataset, judge = tiny_data
    configs = [config.replace(iterations=length) for config, length in zip(_configs(), (20, 30, 30))]
    # One more trial that cannot be fused (dropout: it draws from torch's process-wide generator, which it
    # shares with the server's other trials): it trains alone in the same rounds, as in a process of its own.
    configs.append(configs[1].replace(d_dropout=0.2, seed=5))
    server = FusionServer(dataset, judge, device="cpu", gather_s=0.5)
    rows = [[] for _ in configs]
    _run(server, [(f"t{index}", config, rows[index]) for index, config in enumerate(configs)])
    for config, got in zip(configs, rows):
        _same_reports([row for row, _ in got], _alone_rows(config, dataset, judge))
    assert [3, 1] in server.rounds  # the three fused, the dropout trial beside them
    assert not server._members  # each left with its last report


def test_a_trial_that_stops_asking_is_left_out_and_one_that_joins_again_resumes_exactly(tiny_data):
    _, dataset, judge = tiny_data
    configs = [config.replace(iterations=30) for config in _configs()]
    server = FusionServer(dataset, judge, device="cpu", gather_s=0.3, expire_s=0.5)
    rows = [[] for _ in configs]
    # Trial 0 is "stopped" after its first report (as ASHA would), the others train on without it.
    _run(server, [("t0", configs[0], rows[0], dict(stop_after=1)), ("t1", configs[1], rows[1]),
                  ("t2", configs[2], rows[2])])
    assert [len(trial) for trial in rows] == [1, 3, 3]
    assert "t0" not in server._members  # dropped once it had not asked for expire_s
    # It comes back (a retry, PBT's resume): from its checkpoint's state and reports, it goes on as if never stopped.
    first_row, state = rows[0][0]
    _run(server, [("t0", configs[0], rows[0], dict(state=state, history=[first_row]))])
    _same_reports([row for row, _ in rows[0]], _alone_rows(configs[0], dataset, judge))
    assert server.next_report("never-joined") is None



def test_a_round_that_fails_tells_each_of_its_trials_and_lets_them_go(tiny_data, monkeypatch):
    _, dataset, judge = tiny_data
    server = FusionServer(dataset, judge, device="cpu", gather_s=0.5)

    def broken(self):
        raise RuntimeError("CUDA out of memory\n(details)")

    monkeypatch.setattr(FusedTrainers, "_step", broken)
    errors = {}

    def trial(trial_id):
        try:
            server.next_report(trial_id)
        except RuntimeError as exc:
            errors[trial_id] = str(exc)

    for index, config in enumerate(_configs()):  # all three in before any asks: one fused round
        server.join(f"t{index}", config.to_dict(), None, [])
    threads = [threading.Thread(target=trial, args=(f"t{index}",)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == {f"t{index}": "the fusion server could not train this trial: RuntimeError: CUDA out of memory"
                      for index in range(3)}
    assert not server._members  # Tune retries them: each joins again from its checkpoint
