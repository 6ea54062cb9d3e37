import pytest
import torch

from trainable.config import preset
from trainable.models import Discriminator, Generator


@pytest.mark.parametrize("name", ["V0", "V1", "V2"])
@pytest.mark.parametrize("normalization,low,high", [("[0,1]", 0.0, 1.0), ("[-1,1]", -1.0, 1.0)])
def test_shapes_and_output_range(name, normalization, low, high):
    config = preset(name, normalization=normalization)
    generator, discriminator = Generator(config, 7), Discriminator(config, 7)
    z = torch.rand(5, config.latent_size) * 2 - 1
    labels = torch.eye(7)[torch.tensor([0, 1, 2, 5, 6])]
    images = generator(z, labels)
    assert images.shape == (5, 1, 28, 28)
    assert low <= images.min() and images.max() <= high
    if normalization == "[-1,1]":
        assert images.min() < 0  # tanh, not sigmoid
    logits = discriminator(images, labels)
    assert logits.shape == (5,)


def test_discriminator_returns_unbounded_logits():
    config = preset("V0")
    discriminator = Discriminator(config, 7)
    with torch.no_grad():
        discriminator.head.bias.fill_(5.0)
    logits = discriminator(torch.rand(4, 1, 28, 28), torch.eye(7)[:4])
    assert (logits > 1).all()


def test_class_count_and_size_come_from_the_data():
    config = preset("V1")
    generator, discriminator = Generator(config, 3, size=32), Discriminator(config, 3, size=32)
    images = generator(torch.zeros(2, 80), torch.eye(3)[:2])
    assert images.shape == (2, 1, 32, 32)
    assert discriminator(images, torch.eye(3)[:2]).shape == (2,)


def test_v1_discriminator_is_weaker():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(Discriminator(preset("V1"), 7)) < count(Discriminator(preset("V0"), 7)) / 2
    assert any(isinstance(m, torch.nn.Dropout) for m in Discriminator(preset("V1"), 7).modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in Discriminator(preset("V0"), 7).modules())


def test_first_discriminator_conv_has_no_batch_norm():
    layers = list(Discriminator(preset("V0"), 7).body)
    assert isinstance(layers[0], torch.nn.Conv2d) and not isinstance(layers[1], torch.nn.BatchNorm2d)
    assert sum(isinstance(layer, torch.nn.BatchNorm2d) for layer in layers) == 2
