"""Each GAN remedy does what its source claims, in the model or the step that uses it."""

import pytest
import torch

from tests.conftest import TINY
from trainable import augment, gan
from trainable.config import PRESETS, RECIPE, TrainConfig, preset
from trainable.errors import ConfigError
from trainable.models import Discriminator
from trainable.training import Trainer


def _weights(module):
    return [m.weight for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def _largest_singular_value(weight):
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


def test_spectral_norm_keeps_every_d_layer_near_one(tiny_data):
    _, dataset, _ = tiny_data
    spectral = Trainer(TrainConfig.from_dict({**TINY, "d_norm": "spectral", "d_lr": 0.01}), dataset)
    batch = Trainer(TrainConfig.from_dict({**TINY, "d_lr": 0.01}), dataset)
    for _ in range(30):
        spectral.step()
        batch.step()
    # Each read of a weight in training mode is one power iteration on the weights as they are
    # now: let the estimate catch up with the last steps, as it does over the next iterations.
    with torch.no_grad():
        for _ in range(10):
            _weights(spectral.discriminator)
    sigmas = [_largest_singular_value(w) for w in _weights(spectral.discriminator)]
    assert len(sigmas) == 5  # label map, three convolutions, head
    assert all(0.9 < sigma < 1.1 for sigma in sigmas), sigmas
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in spectral.discriminator.modules())
    # Without it, a fast-learning D's layers are far from 1.
    assert max(abs(_largest_singular_value(w) - 1) for w in _weights(batch.discriminator)) > 0.5


def test_spectral_norm_in_g_only_when_asked():
    from trainable.models import Generator

    plain = Generator(TrainConfig.from_dict(TINY), 7)
    normed = Generator(TrainConfig.from_dict({**TINY, "g_spectral_norm": True}), 7)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())
    assert sum(torch.nn.utils.parametrize.is_parametrized(m) for m in normed.modules()) == 5


def test_projection_output_depends_on_the_label_through_the_inner_product():
    config = TrainConfig.from_dict({**TINY, "conditioning": "projection"})
    discriminator = Discriminator(config, 7)
    images = torch.rand(4, 1, 28, 28)
    angry, happy = torch.eye(7)[[0] * 4], torch.eye(7)[[3] * 4]
    with torch.no_grad():
        assert not torch.allclose(discriminator(images, angry), discriminator(images, happy))
        features = discriminator.body(images)
        expected = discriminator.head(features).squeeze(1) + features @ discriminator.embed.weight[:, 3]
        torch.testing.assert_close(discriminator(images, happy), expected)
        discriminator.embed.weight.zero_()  # no class embedding: the label has no way in
        torch.testing.assert_close(discriminator(images, angry), discriminator(images, happy))
    assert discriminator.body[0].in_channels == 1  # the image alone, no label map


def test_r1_is_zero_at_gamma_zero_and_grows_linearly_with_gamma(tiny_data):
    _, dataset, _ = tiny_data
    losses = {}
    for gamma in (0.0, 1.0, 10.0):
        trainer = Trainer(TrainConfig.from_dict({**TINY, "r1_gamma": gamma}), dataset)
        images = trainer.images[:16]
        loss, _ = gan.d_update(trainer.discriminator, trainer.d_optimizer, images, trainer.eye[trainer.labels[:16]], True,
                              trainer.config, trainer._autocast)
        losses[gamma] = loss.item()
    penalty_1, penalty_10 = losses[1.0] - losses[0.0], losses[10.0] - losses[0.0]
    assert penalty_1 > 0
    assert penalty_10 == pytest.approx(10 * penalty_1, rel=1e-3)
    # Fakes are never penalised.
    trainer = Trainer(TrainConfig.from_dict({**TINY, "r1_gamma": 10.0}), dataset)
    plain = Trainer(TrainConfig.from_dict(TINY), dataset)
    fakes, labels = torch.rand(16, 1, 28, 28), torch.eye(7)[torch.arange(16) % 7]
    def fake_loss(t):
        return gan.d_update(t.discriminator, t.d_optimizer, fakes, labels, False, t.config, t._autocast)[0].item()
    assert fake_loss(trainer) == pytest.approx(fake_loss(plain), rel=1e-5)


def test_translation_shifts_content_and_cutout_zeroes_one_square():
    rng = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 28, 28) + 1  # no zero pixels of its own
    shifted = augment.translation(images, rng)
    for original, moved in zip(images, shifted):
        matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                   if torch.equal(moved[0, max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)],
                                  original[0, max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)])]
        assert len(matches) == 1
        dy, dx = matches[0]
        assert (moved == 0).sum() == 28 * 28 - (28 - abs(dy)) * (28 - abs(dx))  # zero-padded
    cut = augment.cutout(images, rng)
    for original, out in zip(images, cut):
        zero = out[0] == 0
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 0 < zero.sum() <= 14 * 14
        assert zero.sum() == len(rows) * len(cols)  # one rectangle, at most 14 x 14
        assert torch.equal(out[0][~zero], original[0][~zero])
    assert augment.diff_augment(images, "off", rng) is images


def test_diffaugment_applies_the_same_policy_to_real_and_fake(tiny_data, monkeypatch):
    _, dataset, _ = tiny_data
    calls = []
    real_augment = gan.diff_augment

    def record(images, policy, rng):
        calls.append((images.requires_grad, policy))
        return real_augment(images, policy, rng)

    monkeypatch.setattr(gan, "diff_augment", record)
    trainer = Trainer(TrainConfig.from_dict({**TINY, "diffaugment": "translation,cutout"}), dataset)
    trainer.step()
    # D phase: the real batch, then the fake one; G phase: the fake batch G learns through.
    assert [policy for _, policy in calls] == ["translation,cutout"] * 3
    assert [grad for grad, _ in calls] == [False, False, True]


def test_ema_differs_from_g_and_follows_it(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "g_ema": 0.9, "g_lr": 0.01}), dataset)
    start = [p.detach().clone() for p in trainer.generator.parameters()]
    for _ in range(40):
        previous = [p.detach().clone() for p in trainer.g_ema.parameters()]
        trainer.step()
    decay = min(0.9, (1 + trainer.iteration) / (10 + trainer.iteration))  # warm-up, as documented
    for ema, old, current in zip(trainer.g_ema.parameters(), previous, trainer.generator.parameters()):
        torch.testing.assert_close(ema, decay * old + (1 - decay) * current)
    distance = lambda a, b: sum((x - y).square().sum() for x, y in zip(a, b)).item()  # noqa: E731
    ema, g = list(trainer.g_ema.parameters()), list(trainer.generator.parameters())
    assert distance(ema, g) > 0
    assert distance(ema, g) < distance(start, g) / 4
    assert not any(p.requires_grad for p in ema)
    # Evaluation and grids use the average.
    assert trainer.sampling_generator is trainer.g_ema
    _, grid = trainer.evaluate()
    trainer.g_ema = None
    _, raw_grid = trainer.evaluate()
    assert not (grid == raw_grid).all()


def test_losses_per_kind(tiny_data):
    _, dataset, _ = tiny_data
    confident_real, confident_fake = torch.full((4,), 3.0), torch.full((4,), -3.0)
    hinge = Trainer(TrainConfig.from_dict({**TINY, "loss": "hinge"}), dataset)
    assert gan.d_loss(confident_real, True, hinge.config) == 0 and gan.d_loss(confident_fake, False, hinge.config) == 0
    assert gan.d_loss(torch.zeros(4), True, hinge.config) == 1 and gan.g_loss(confident_fake, hinge.config) == 3
    squares = Trainer(TrainConfig.from_dict({**TINY, "loss": "least-squares", "label_smoothing": 0.2}), dataset)
    assert gan.d_loss(torch.full((4,), 0.8), True, squares.config) == pytest.approx(0)  # smoothed real target
    assert gan.d_loss(torch.zeros(4), False, squares.config) == 0 and gan.g_loss(torch.ones(4), squares.config) == 0
    smoothed = Trainer(TrainConfig.from_dict({**TINY, "label_smoothing": 0.1}), dataset)
    plain = Trainer(TrainConfig.from_dict(TINY), dataset)
    # One-sided: a confident real logit costs more with smoothing; fakes keep their target.
    assert gan.d_loss(confident_real, True, smoothed.config) > gan.d_loss(confident_real, True, plain.config)
    assert gan.d_loss(confident_fake, False, smoothed.config) == gan.d_loss(confident_fake, False, plain.config)


def test_instance_noise_is_annealed_to_zero(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "instance_noise": 0.2, "iterations": 100}), dataset)
    images = torch.full((64, 1, 28, 28), 0.5)
    assert (trainer._d_input(images) - images).std().item() == pytest.approx(0.2, rel=0.05)
    trainer.iteration = 50
    assert (trainer._d_input(images) - images).std().item() == pytest.approx(0.1, rel=0.05)
    trainer.iteration = 100
    assert torch.equal(trainer._d_input(images), images)
    # The count a (graphed) step reads on the device is exact far past float32's 2^24.
    trainer.iteration = 2**24 + 1
    assert trainer._device_iteration.item() == 2**24 + 1


def test_minibatch_std_sees_a_batch_of_identical_images():
    discriminator = Discriminator(TrainConfig.from_dict({**TINY, "minibatch_std": True}), 7)
    features = discriminator.body[:-1]  # before the flatten
    same = features(torch.rand(1, 2, 28, 28).repeat(4, 1, 1, 1))
    varied = features(torch.rand(4, 2, 28, 28))
    assert same.shape[1] == TINY["d_filters"][2] + 1
    assert (same[:, -1] == 0).all() and (varied[:, -1] > 0).all()


def test_d_steps_per_g_step(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "d_steps": 3}), dataset)
    counts = {"d": 0, "g": 0}
    d_step, g_step = trainer.d_optimizer.step, trainer.g_optimizer.step
    trainer.d_optimizer.step = lambda *a, **k: (counts.__setitem__("d", counts["d"] + 1), d_step(*a, **k))
    trainer.g_optimizer.step = lambda *a, **k: (counts.__setitem__("g", counts["g"] + 1), g_step(*a, **k))
    trainer.step()
    assert counts == {"d": 6, "g": 1} and trainer.iteration == 1


def test_d_accuracy_comes_from_one_pass_over_real_and_fake(tiny_data):
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict(TINY), dataset)
    sizes = []
    hook = trainer.discriminator.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    with torch.no_grad():
        trainer.discriminator.head.bias.fill_(100.0)  # D calls everything real
    stats = trainer.step()
    hook.remove()
    assert sizes[0] == 2 * TINY["batch_size"]  # one forward pass over both batches, before any update
    assert stats.d_real_accuracy == 1.0 and stats.d_fake_accuracy == 0.0


@pytest.mark.parametrize("loss, real, fake", [("bce", 3.0, -3.0), ("hinge", 1.0, -1.0), ("least-squares", 1.0, 0.0)])
def test_a_d_on_its_loss_targets_is_fully_accurate(tiny_data, loss, real, fake):
    """D's accuracy splits at the midpoint of the loss's targets (0.5 for least squares, whose
    fake target is 0: a split at 0 would count half of a perfect D's fakes as real)."""
    _, dataset, _ = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "loss": loss}), dataset)
    images = torch.zeros(8, 1, 28, 28)
    labels = trainer.eye[torch.zeros(8, dtype=torch.long)]
    noise = torch.linspace(-0.2, 0.2, 8)  # outputs around the targets, on both sides of them
    discriminator = lambda x, y: torch.cat([real + noise, fake + noise])  # noqa: E731
    real_accuracy, fake_accuracy, _ = gan.d_accuracy(discriminator, images, labels, images, labels, trainer.config,
                                                     trainer._autocast)
    assert real_accuracy == 1.0 and fake_accuracy == 1.0


def test_remedy_fields_are_validated():
    for bad in ({"d_norm": "layer"}, {"conditioning": "film"}, {"loss": "wasserstein"}, {"r1_gamma": -1},
                {"diffaugment": "color"}, {"g_ema": 0.2}, {"g_ema": 1.0}, {"label_smoothing": 0.7},
                {"d_steps": 0}, {"minibatch_std": "yes"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig.from_dict(bad)
    assert TrainConfig.from_dict({"g_spectral_norm": "true", "g_ema": "0"}).g_spectral_norm is True


def test_defaults_are_the_paper_and_the_recipe_is_a_preset():
    config = TrainConfig()
    assert (config.d_norm, config.conditioning, config.loss, config.r1_gamma, config.diffaugment, config.g_ema,
            config.label_smoothing, config.instance_noise, config.minibatch_std, config.d_steps) == (
        "batch", "concat", "bce", 0.0, "off", 0.0, 0.0, 0.0, False, 1)
    assert PRESETS["recipe"] is RECIPE
    recipe = preset("recipe")
    assert recipe.latent_size == 100 and recipe.d_filters == (32, 64, 128)  # V0's model, with remedies
    assert recipe.conditioning == "projection"
    assert any(getattr(recipe, key) != getattr(config, key) for key in RECIPE)
