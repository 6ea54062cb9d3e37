import copy
import functools
import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.local import run_local_trial
from trainable import loop
from trainable.loop import NONFINITE_CHECK_EVERY, train
from trainable.progress import Progress
from trainable.training import STEP_STATISTICS, StepStats, Trainer


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_d_phase_leaves_the_generator_alone_and_g_phase_leaves_the_discriminator(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict(TINY), dataset)
    g_before, d_before = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    seen = {}
    d_step, g_step = trainer.d_optimizer.step, trainer.g_optimizer.step

    def watch_d(*args, **kwargs):
        seen.setdefault("d_steps", 0)
        seen["d_steps"] += 1
        seen["g_untouched_in_d_phase"] = _same(g_before, _snapshot(trainer.generator))
        seen["g_grads_in_d_phase"] = [p.grad for p in trainer.generator.parameters() if p.grad is not None]
        seen["d_grads_after_d_phase"] = [p.grad.clone() for p in trainer.discriminator.parameters()]
        return d_step(*args, **kwargs)

    def watch_g(*args, **kwargs):
        seen["d_after_d_phase"] = _snapshot(trainer.discriminator)
        seen["d_grads_in_g_phase"] = [p.grad.clone() for p in trainer.discriminator.parameters()]
        return g_step(*args, **kwargs)

    trainer.d_optimizer.step, trainer.g_optimizer.step = watch_d, watch_g
    trainer.step()
    assert seen["d_steps"] == 2  # real batch, then fake batch: two updates, as in the paper
    assert seen["g_untouched_in_d_phase"] and seen["g_grads_in_d_phase"] == []
    # The G phase backpropagates through D without computing D's weight gradients.
    assert _same(seen["d_grads_after_d_phase"], seen["d_grads_in_g_phase"])
    assert _same(seen["d_after_d_phase"], _snapshot(trainer.discriminator))  # G step did not move D
    assert not _same(d_before, _snapshot(trainer.discriminator))
    assert not _same(g_before, _snapshot(trainer.generator))


def test_step_returns_plain_numbers(tiny_data):
    _, dataset, _ = tiny_data
    stats = Trainer(TrainConfig.from_dict(TINY), dataset).step()
    assert isinstance(stats, StepStats)
    for value in (stats.d_loss, stats.g_loss, stats.d_real_accuracy, stats.d_grad_norm, stats.g_grad_norm):
        assert isinstance(value, float) and math.isfinite(value)
    assert 0 <= stats.d_real_accuracy <= 1 and not stats.frozen and not stats.nonfinite


def test_freeze_after_an_iteration_stops_d_updates(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "freeze_after": 3}), dataset)
    for _ in range(3):
        assert not trainer.step().frozen
    d_frozen_at = _snapshot(trainer.discriminator)
    g_frozen_at = _snapshot(trainer.generator)
    for _ in range(3):
        assert trainer.step().frozen
    assert _same(d_frozen_at, _snapshot(trainer.discriminator))
    assert not _same(g_frozen_at, _snapshot(trainer.generator))  # G keeps learning
    events = trainer.freeze.take_events()
    assert [(e["iteration"], e["event"]) for e in events] == [(3, "freeze")]
    assert "iteration >= 3" in events[0]["reason"]


def test_freeze_while_accuracy_is_high_then_unfreeze(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "freeze_accuracy": 0.9, "freeze_window": 4}), dataset)
    trainer.step()
    trainer.freeze.accuracy_window.extend([1.0] * 4)  # D has been right on everything lately
    before = _snapshot(trainer.discriminator)
    assert trainer.step().frozen
    assert _same(before, _snapshot(trainer.discriminator))
    trainer.freeze.accuracy_window.extend([0.5] * 4)
    assert not trainer.step().frozen
    assert not _same(before, _snapshot(trainer.discriminator))
    assert [e["event"] for e in trainer.freeze.take_events()] == ["freeze", "unfreeze"]


def test_accuracy_rule_waits_for_a_full_window(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "freeze_accuracy": 0.5, "freeze_window": 50}), dataset)
    trainer.freeze.accuracy_window.extend([1.0] * 10)
    assert not trainer.step().frozen


def test_the_accuracy_rule_switched_on_mid_training_sees_the_steps_before(tiny_data):
    """Without the rule, D's accuracies stay on the device; switched on (PBT), the rule must see
    the last window of them, as if they had been read each step."""
    _, dataset, _ = tiny_data
    config = TrainConfig.from_dict({**TINY, "freeze_window": 4})
    trainer = Trainer(config, dataset)
    accuracies = [(stats.d_real_accuracy + stats.d_fake_accuracy) / 2 for stats in (trainer.step() for _ in range(6))]
    trainer.apply_config(config.replace(freeze_accuracy=0.5))
    assert trainer.step().frozen == (sum(accuracies[-4:]) / 4 > 0.5)  # 0.53 here: frozen
    assert list(trainer.freeze.accuracy_window)[:3] == accuracies[-3:]


def _rows_by_iteration(directory):
    return {row["iteration"]: row for row in (json.loads(line) for line in (directory / "result.json").open())}


ALL_REMEDIES = {"d_norm": "spectral", "g_spectral_norm": True, "conditioning": "projection", "loss": "least-squares",
                "r1_gamma": 1.0, "diffaugment": "translation,cutout", "g_ema": 0.99, "label_smoothing": 0.1,
                "instance_noise": 0.1, "minibatch_std": True, "d_steps": 2}


def test_checkpoint_holds_every_remedy_state(tiny_data, tmp_path):
    """EMA weights, spectral-norm vectors, augmentation and noise randomness: a restored trainer
    takes the same steps as the one that wrote the checkpoint."""
    _, dataset, _ = tiny_data
    config = TrainConfig.from_dict({**TINY, **ALL_REMEDIES, "iterations": 40})
    first = Trainer(config, dataset)
    for _ in range(20):
        first.step()
    first.evaluate()
    first.save(tmp_path)
    second = Trainer(config, dataset)
    second.restore(tmp_path)
    assert [first.step() for _ in range(5)] == [second.step() for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(first.g_ema.state_dict().values(), second.g_ema.state_dict().values()))
    np.testing.assert_array_equal(first.evaluate()[1], second.evaluate()[1])


# Instance noise is annealed over the configured iterations, so a trial extended from 20 to 40
# (as here) follows another schedule than one set to 40 from the start; the test above covers it.
@pytest.mark.parametrize("extra", [{}, {"d_dropout": 0.3, "normalization": "[-1,1]"},
                                   {k: v for k, v in ALL_REMEDIES.items() if k != "instance_noise"},
                                   {"loss": "hinge", "g_ema": 0.999, "diffaugment": "translation"}])
def test_resume_continues_exactly_as_if_never_stopped(tiny_data, tmp_path, extra):
    path, _, judge = tiny_data
    config = TrainConfig.from_dict({**TINY, **extra, "iterations": 40})
    straight = run_local_trial(tmp_path / "straight", config=config, data=path, judge=judge)
    assert straight.stop_reason == "completed"
    run_local_trial(tmp_path / "split", config=config.replace(iterations=20), data=path, judge=judge)
    resumed = run_local_trial(tmp_path / "split", resume=True, iterations=40, judge=judge)
    assert resumed.stop_reason == "completed"
    a, b = _rows_by_iteration(tmp_path / "straight"), _rows_by_iteration(tmp_path / "split")
    assert sorted(a) == sorted(b) == [10, 20, 30, 40]
    for iteration in (30, 40):
        for key in ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "fid_intra", "coverage"):
            assert a[iteration][key] == b[iteration][key], (iteration, key)
    assert [row["training_iteration"] for row in b.values()] == [1, 2, 3, 4]


def test_interrupt_writes_a_final_checkpoint_and_resume_finishes(tiny_data, tmp_path, monkeypatch):
    path, _, judge = tiny_data
    real_step = Trainer.advance

    def step_then_interrupt(self):
        if self.iteration == 13:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "advance", step_then_interrupt)
    config = TrainConfig.from_dict({**TINY, "iterations": 30})
    outcome = run_local_trial(tmp_path / "t", config=config, data=path, judge=judge)
    assert outcome.stop_reason == "interrupted"
    assert outcome.rows[-1]["iteration"] == 13 and outcome.rows[-1]["stop_reason"] == "interrupted"
    monkeypatch.setattr(Trainer, "advance", real_step)
    resumed = run_local_trial(tmp_path / "t", resume=True, judge=judge)
    assert resumed.stop_reason == "completed"
    assert [row["iteration"] for row in resumed.rows] == [10, 13, 20, 30]


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # the grid of a NaN G
@pytest.mark.parametrize("eval_every,reported_at", [(10, 10), (1000, NONFINITE_CHECK_EVERY)])
def test_a_diverging_trial_ends_in_loss_collapse_without_nan_in_any_row(tiny_data, eval_every, reported_at):
    """The loop reads the steps' statistics only at a report or every NONFINITE_CHECK_EVERY
    iterations (a host sync on a GPU): a NaN at iteration 4 is reported there, never as NaN, and
    the judge's metrics of a NaN G's images are no error."""
    _, dataset, judge = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "iterations": 200, "eval_every": eval_every}), dataset, judge)
    real_advance = trainer.advance

    def diverging():
        if trainer.iteration == 3:  # G's weights turn NaN: the 4th step and every one after are NaN
            trainer.generator.project[0].weight.data.fill_(float("nan"))
        return real_advance()

    trainer.advance = diverging
    rows = []
    reason = train(trainer, lambda row, grid, t: rows.append(row))
    assert reason == "loss-collapse"
    assert [row["iteration"] for row in rows] == [reported_at] and rows[-1]["nonfinite"] is True
    assert rows[-1]["d_loss"] is None and rows[-1]["g_loss"] is None  # never NaN in a report
    assert rows[-1]["fid_intra"] is None and rows[-1]["verdict"] == "loss-collapse"
    assert "NaN" not in json.dumps(rows) and "Infinity" not in json.dumps(rows)


def test_a_rows_means_are_the_means_of_its_steps(tiny_data, monkeypatch, capsys):
    """The loop sums the statistics on the device; each row must hold the plain mean of the
    values its steps returned, read one by one here. The progress line shows the last step's."""
    monkeypatch.setattr(loop, "Progress", functools.partial(Progress, log_interval=0.0))  # a line per step
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "iterations": 30, "freeze_after": 15}), dataset)
    real_advance, steps = trainer.advance, []

    def recorded():
        stats = real_advance()
        steps.append(stats.to_host())
        return stats

    trainer.advance = recorded
    rows = []
    train(trainer, lambda row, grid, t: rows.append(row), progress=True)
    assert [row["iteration"] for row in rows] == [10, 20, 30] and len(steps) == 30
    lines = capsys.readouterr().err.splitlines()
    assert "29/30" in lines[-2] and f"D {steps[28].d_loss:.3f} G {steps[28].g_loss:.3f}" in lines[-2]
    for row, window in zip(rows, (steps[:10], steps[10:20], steps[20:])):
        for key in STEP_STATISTICS:
            # The same double additions in the same order: equal to the last bit.
            assert row[key] == sum(getattr(step, key) for step in window) / len(window), key
        assert row["nonfinite"] is False
        assert row["frozen_share"] == sum(step.frozen for step in window) / len(window)
    assert [row["frozen_share"] for row in rows] == [0.0, 0.5, 1.0] and rows[2]["d_grad_norm"] == 0.0
    # D's accuracy is read back for the freeze rule's window when a checkpoint needs it
    assert trainer.state_dict()["accuracy_window"] == [(step.d_real_accuracy + step.d_fake_accuracy) / 2
                                                       for step in steps[-trainer.config.freeze_window:]]


@pytest.mark.parametrize("extra,reads_per_step", [({}, 0), ({"freeze_accuracy": 0.9}, 1)])
def test_the_loop_reads_step_statistics_only_now_and_then(tiny_data, monkeypatch, extra, reads_per_step):
    """A read of a tensor's value is a host sync on a GPU. Counted here on the CPU, by the Python
    calls that read one: per step none, except one for the freeze rule on D's accuracy."""
    _, dataset, _ = tiny_data
    iterations = 2 * NONFINITE_CHECK_EVERY
    trainer = Trainer(TrainConfig.from_dict({**TINY, **extra, "iterations": iterations, "eval_every": 10**6}), dataset)
    reads = {"count": 0, "counting": True}
    for name in ("tolist", "item", "__bool__", "__float__", "__int__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(tensor, *args, original=original, **kwargs):
            reads["count"] += reads["counting"]
            return original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_evaluate = trainer.evaluate

    def evaluate():
        reads["counting"] = False  # the one report, at the end
        return real_evaluate()

    trainer.evaluate = evaluate
    train(trainer, lambda row, grid, t: None)
    assert trainer.iteration == iterations
    # one nonfinite check every NONFINITE_CHECK_EVERY iterations (the last one is the report)
    assert reads["count"] == reads_per_step * iterations + iterations // NONFINITE_CHECK_EVERY - 1


def test_checkpoints_load_with_weights_only(tiny_data, tmp_path):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict(TINY), dataset)
    trainer.step()
    trainer.save(tmp_path / "ok")
    Trainer(TrainConfig.from_dict(TINY), dataset).restore(tmp_path / "ok")
    (tmp_path / "evil").mkdir()
    torch.save({"payload": np.dtype}, tmp_path / "evil" / "trainer.pt")  # needs a full unpickler
    with pytest.raises(UserError, match="unreadable checkpoint") as refused:
        trainer.restore(tmp_path / "evil")
    assert "could run code" in str(refused.value) and "weights_only" not in str(refused.value)


@pytest.mark.parametrize("damage,reason", [
    (lambda data: data[:len(data) // 2], "truncated or not a checkpoint file"),
    (lambda data: b"", "truncated or not a checkpoint file"),
    (lambda data: np.random.default_rng(0).bytes(len(data)), "not a checkpoint file"),
    # one flipped byte in the tensor data: torch loads it without a word, the digest does not
    (lambda data: data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:],
     "do not match its SHA-256"),
])
def test_a_damaged_checkpoint_is_refused_on_load_with_a_reason(tiny_data, tmp_path, damage, reason):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict(TINY), dataset)
    path = trainer.save(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match="unreadable checkpoint") as refused:
        trainer.restore(tmp_path)
    assert reason in str(refused.value) and "weights_only" not in str(refused.value)


def test_no_garbage_file_escapes_as_anything_but_one_clear_refusal(tmp_path, capfd):
    """Random bytes fail torch's unpickler in many ways (KeyError, IndexError, UnicodeDecodeError,
    a pickle-protocol warning): 9% of random payloads escaped the old list of caught errors."""
    from trainable.checkpoint import read_checkpoint

    rng = np.random.default_rng(7)
    path = tmp_path / "trainer.pt"
    for _ in range(400):
        path.write_bytes(rng.bytes(int(rng.integers(1, 4096))))
        with pytest.raises(UserError, match="unreadable checkpoint") as refused:
            read_checkpoint(tmp_path)
        assert "\n" not in str(refused.value)
    assert "pickle protocol" not in capfd.readouterr().err


def test_grid_is_comparable_across_evaluations(tiny_data):
    _, dataset, _ = tiny_data
    config = TrainConfig.from_dict(TINY)
    first, second = Trainer(config, dataset), Trainer(config, dataset)
    _, grid_a = first.evaluate()
    _, grid_b = second.evaluate()
    np.testing.assert_array_equal(grid_a, grid_b)  # fixed z and labels per seed
    assert grid_a.shape == (7, config.grid_columns, 28, 28)
    first.step()
    _, grid_c = first.evaluate()
    assert not np.array_equal(grid_a, grid_c)


def test_a_checkpoint_of_a_graphed_gpu_trial_resumes_on_a_cpu(tiny_data):
    """A trainer that replays CUDA graphs saves optimisers marked capturable; a CPU trainer must
    train on from that state with its own flags (and a graphed one from an eager one's)."""
    _, dataset, _ = tiny_data
    config = TrainConfig.from_dict(TINY)
    first = Trainer(config, dataset)
    first.step()
    state = copy.deepcopy(first.state_dict())  # as read from a file: no tensor shared with first
    for name in ("g_optimizer", "d_optimizer"):
        for group in state[name]["param_groups"]:
            group["capturable"] = True  # as a graphed GPU trainer writes it
    second = Trainer(config, dataset)
    second.load_state_dict(state)
    assert not any(group["capturable"] for group in second.g_optimizer.param_groups + second.d_optimizer.param_groups)
    assert first.step() == second.step()
