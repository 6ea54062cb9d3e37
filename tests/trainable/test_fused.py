"""Trials fused into one batched model (trainable/fused.py) train as each would alone."""

import pytest
import torch

from tests.conftest import TINY
from trainable.config import TrainConfig
from trainable.errors import ConfigError
from trainable.experiment import CHECKPOINT_FILE, COMPLETED, FID_INTRA
from trainable.fused import FusedTrainers, fusion_refusal, train_fused
from trainable.loop import train
from trainable.training import Trainer

# Trials that differ where fused trials may: seed, learning rates, betas.
VARIANTS = [dict(seed=0), dict(seed=1, g_lr=1e-3, d_beta1=0.3), dict(seed=2, d_lr=2e-3, g_beta1=0.0, g_beta2=0.99)]


# How far a fused trial may drift from the same trial alone: the fused kernels sum in another order,
# and Adam turns the last-bit difference of a near-zero gradient into up to 2 x lr a step (measured
# after 6 steps: under 1e-5 on one CPU, 3.3e-3 on one with AMX, where a trial given another's
# hyperparameters differs by 0.37-0.86).
TOLERANCE = 2e-2


def _configs(precision="fp32", **extra):
    return [TrainConfig.from_dict({**TINY, "precision": precision, **variant, **extra}) for variant in VARIANTS]


def _largest_difference(a: Trainer, b: Trainer) -> float:
    """Largest absolute difference over weights, G's batch-norm statistics and Adam's moments."""
    pairs = [*zip(a.generator.state_dict().values(), b.generator.state_dict().values()),
             *zip(a.discriminator.state_dict().values(), b.discriminator.state_dict().values())]
    for one, other in ((a.g_optimizer, b.g_optimizer), (a.d_optimizer, b.d_optimizer)):
        for state, state_other in zip(one.state_dict()["state"].values(), other.state_dict()["state"].values()):
            pairs += [(state[key], state_other[key]) for key in ("step", "exp_avg", "exp_avg_sq")]
    return max((x.float() - y.float()).abs().max().item() for x, y in pairs)


def test_fused_trials_compute_what_each_computes_alone(tiny_data):
    _, dataset, _ = tiny_data
    alone = [Trainer(config, dataset) for config in _configs()]
    alone_stats = [[trainer.step() for _ in range(6)] for trainer in alone]
    together = [Trainer(config, dataset) for config in _configs()]
    fused = FusedTrainers(together)
    fused_stats = [[stats.to_host() for stats in fused.advance()] for _ in range(6)]
    fused.sync()
    for index, (one, other) in enumerate(zip(alone, together)):
        assert other.iteration == 6
        assert _largest_difference(one, other) < TOLERANCE
        for step in range(6):
            mine, theirs = alone_stats[index][step], fused_stats[step][index]
            assert mine.d_loss == pytest.approx(theirs.d_loss, rel=1e-4)
            assert mine.g_grad_norm == pytest.approx(theirs.g_grad_norm, rel=1e-4)
            assert (mine.d_real_accuracy, mine.d_fake_accuracy) == (theirs.d_real_accuracy, theirs.d_fake_accuracy)
    # The tolerance means something: the trials differ from each other far beyond it.
    assert _largest_difference(together[0], together[1]) > 10 * TOLERANCE


def test_fused_trials_in_bf16_stay_within_bf16_rounding_of_each_alone(tiny_data):
    _, dataset, _ = tiny_data
    alone = [Trainer(config, dataset) for config in _configs("bf16")]
    expected = [[trainer.step().g_loss for _ in range(4)] for trainer in alone]
    fused = FusedTrainers([Trainer(config, dataset) for config in _configs("bf16")])
    got = [[stats.to_host().g_loss for stats in fused.advance()] for _ in range(4)]
    for index in range(len(VARIANTS)):
        assert [row[index] for row in got] == pytest.approx(expected[index], rel=2e-2)


def test_a_fused_trial_checkpoints_its_own_state_and_resumes_as_if_alone(tiny_data, tmp_path):
    _, dataset, _ = tiny_data
    straight = [Trainer(config, dataset) for config in _configs()]
    for trainer in straight:
        for _ in range(8):
            trainer.step()
    first = [Trainer(config, dataset) for config in _configs()]
    fused = FusedTrainers(first)
    for _ in range(4):
        fused.advance()
    fused.sync()
    for index, trainer in enumerate(first):
        trainer.save(tmp_path / str(index))
    alone_size = straight[0].save(tmp_path / "alone").stat().st_size
    # Each checkpoint holds its own trial's tensors, not the fused model's (torch saves a view's whole storage).
    assert all((tmp_path / str(index) / CHECKPOINT_FILE).stat().st_size < 1.2 * alone_size for index in range(3))
    resumed = [Trainer(config, dataset) for config in _configs()]
    for index, trainer in enumerate(resumed):
        trainer.restore(tmp_path / str(index))
    fused = FusedTrainers(resumed)
    for _ in range(4):
        fused.advance()
    fused.sync()
    for one, other in zip(straight, resumed):
        assert other.iteration == 8
        assert _largest_difference(one, other) < TOLERANCE


def test_train_fused_reports_and_stops_each_trial_as_train_does_alone(tiny_data):
    _, dataset, judge = tiny_data
    lengths = (20, 30, 30)  # the first stops first; the other two go on fused
    configs = [config.replace(iterations=length) for config, length in zip(_configs(), lengths)]
    alone_rows, fused_rows = [[] for _ in configs], [[] for _ in configs]
    alone_reasons = [train(Trainer(config, dataset, judge), lambda row, grid, trainer, rows=rows: rows.append(row))
                     for config, rows in zip(configs, alone_rows)]
    reporters = [lambda row, grid, trainer, rows=rows: rows.append(row) for rows in fused_rows]
    reasons = train_fused([Trainer(config, dataset, judge) for config in configs], reporters)
    assert reasons == alone_reasons == [COMPLETED] * 3
    for mine, theirs in zip(alone_rows, fused_rows):
        assert [(row["iteration"], row["training_iteration"], row["stop_reason"]) for row in theirs] == \
            [(row["iteration"], row["training_iteration"], row["stop_reason"]) for row in mine]
        assert [row["verdict"] for row in theirs] == [row["verdict"] for row in mine]
        for key in ("d_loss", "g_loss", FID_INTRA):
            assert [row[key] for row in theirs] == pytest.approx([row[key] for row in mine], rel=1e-2)


@pytest.mark.parametrize("change, named", [(dict(r1_gamma=1.0), "r1_gamma"), (dict(d_dropout=0.2), "d_dropout"),
                                           (dict(freeze_after=10), "freeze_after")])
def test_remedies_fusing_does_not_batch_are_refused_by_name(tiny_data, change, named):
    _, dataset, _ = tiny_data
    configs = _configs()
    configs[1] = configs[1].replace(**change)
    assert named in fusion_refusal(configs)
    with pytest.raises(ConfigError, match=f"cannot fuse these trials: {named}"):
        FusedTrainers([Trainer(config, dataset) for config in configs])


def test_trials_of_different_architectures_are_refused(tiny_data):
    configs = _configs()
    configs[2] = configs[2].replace(latent_size=12)
    assert fusion_refusal(configs).startswith("latent_size differs (8 and 12)")
    assert fusion_refusal([config.replace(iterations=99, eval_every=7) for config in _configs()]) is None
    assert fusion_refusal(_configs(d_norm="none", conditioning="projection", loss="hinge")) is None


def test_projection_and_other_losses_fuse_exactly(tiny_data):
    _, dataset, _ = tiny_data
    configs = _configs(conditioning="projection", loss="least-squares", d_norm="none", minibatch_std=True)
    alone = [Trainer(config, dataset) for config in configs]
    for trainer in alone:
        trainer.step()
        trainer.step()
    together = [Trainer(config, dataset) for config in configs]
    fused = FusedTrainers(together)
    fused.advance()
    fused.advance()
    fused.sync()
    assert max(_largest_difference(one, other) for one, other in zip(alone, together)) < TOLERANCE
    torch.testing.assert_close(together[1].evaluate()[1], alone[1].evaluate()[1], atol=2e-3, rtol=0)
