"""Steps replayed as CUDA graphs train exactly as eager steps do. These need a CUDA GPU (CI has
none: they are skipped there); on a GPU machine, `python -m pytest tests/trainable/test_cuda_graphs.py`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from tests.trainable.test_training import ALL_REMEDIES
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.training import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _trainer(config, dataset, graphs):
    trainer = Trainer(config, dataset, device="cuda", cuda_graphs=graphs)
    # The same convolution algorithms for both trainers, so equal steps give equal numbers.
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    return trainer


def _run(trainer, steps, explore_at=None):
    stats = []
    for _ in range(steps):
        if trainer.iteration == explore_at:  # PBT's explore: new rates and dropout mid-training
            trainer.apply_config(trainer.config.replace(g_lr=1e-3, d_lr=5e-4, d_dropout=0.1))
        stats.append(trainer.step())
    return stats


def _weights(trainer):
    return [tensor.clone() for tensor in [*trainer.generator.state_dict().values(), *trainer.discriminator.state_dict().values()]]


@pytest.mark.parametrize("extra, explore_at", [
    ({}, None),
    ({**ALL_REMEDIES, "d_dropout": 0.3, "freeze_after": 15, "precision": "bf16"}, 10),
    ({"freeze_accuracy": 0.6, "freeze_window": 3}, None),
])
def test_graphed_steps_equal_eager_steps(tiny_data, extra, explore_at):
    _, dataset, _ = tiny_data
    config = TrainConfig.from_dict({**TINY, **extra})
    # Each built just before it trains: dropout draws from the global generator, which a build reseeds.
    eager_trainer = _trainer(config, dataset, graphs=False)
    eager = _run(eager_trainer, 30, explore_at)
    graphed_trainer = _trainer(config, dataset, graphs=True)
    graphed = _run(graphed_trainer, 30, explore_at)
    assert graphed_trainer.graphed_step.captured, "no step was captured"
    assert graphed == eager
    assert all(torch.equal(a, b) for a, b in zip(_weights(graphed_trainer), _weights(eager_trainer)))


def test_a_graphed_trainer_resumes_exactly(tiny_data, tmp_path):
    _, dataset, _ = tiny_data
    config = TrainConfig.from_dict({**TINY, **ALL_REMEDIES})
    first = _trainer(config, dataset, graphs=True)
    _run(first, 20)
    first.save(tmp_path)
    expected = _run(first, 10)
    second = _trainer(config, dataset, graphs=True)
    second.restore(tmp_path)  # the checkpoint is loaded onto the GPU: its generator states too
    assert _run(second, 10) == expected


def test_a_step_that_cannot_be_captured_is_refused_in_one_line():
    # In a process of its own: a failed capture leaves the device's random generators unusable.
    script = textwrap.dedent(f"""
        import torch
        from trainable.config import TrainConfig
        from trainable.data import synthetic_dataset
        from trainable.errors import UserError
        from trainable.cuda_graphs import GRAPH_WARMUP
        from trainable.training import Trainer
        trainer = Trainer(TrainConfig.from_dict({TINY!r}), synthetic_dataset(140, seed=1), device="cuda")
        step = trainer._step
        def syncing(train_d):
            values = step(train_d)
            values.sum().item()  # a host sync, which a capture does not allow
            return values
        trainer._step = syncing
        for _ in range(GRAPH_WARMUP):
            trainer.step()
        try:
            trainer.step()
        except UserError as exc:
            print("refused:", exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[2])
    refusal = [line for line in result.stdout.splitlines() if line.startswith("refused:")]
    assert refusal and "could not be captured as a CUDA graph" in refusal[0] and "cuda_graphs=false" in refusal[0], result


def test_fused_trials_replayed_as_one_graph_equal_their_eager_steps(tiny_data):
    from tests.trainable.test_fused import _configs
    from trainable.fused import FusedTrainers

    _, dataset, _ = tiny_data
    runs = []
    for graphs in (False, True):
        trainers = [_trainer(config, dataset, graphs) for config in _configs()]
        fused = FusedTrainers(trainers)
        stats = [[stats.to_host() for stats in fused.advance()] for _ in range(12)]
        fused.sync()
        runs.append((fused, stats, trainers))
    (_, eager_stats, eager_trainers), (graphed, graphed_stats, graphed_trainers) = runs
    assert graphed.graphed_step.captured, "the fused step was not captured"
    assert graphed_stats == eager_stats
    for eager_trainer, graphed_trainer in zip(eager_trainers, graphed_trainers):
        assert all(torch.equal(a, b) for a, b in zip(_weights(graphed_trainer), _weights(eager_trainer)))
