"""The paper's CGAN (section 7): generator and discriminator, sized by the config and the data."""

from __future__ import annotations

import torch
from torch import nn

from trainable.config import TrainConfig


def _keras_init(module: nn.Module) -> None:
    # The paper trained with Keras defaults: Glorot-uniform kernels and zero biases.
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class Generator(nn.Module):
    """[z, one-hot label] -> 28x28x1.

    Section 7 says only that the input "is processed by four transposed convolution layers"
    of 256, 128, 64 and 1 filters with strides 2, 2, 1, 1. Four such layers reach 28x28 only
    from a 7x7 map, so we choose a dense projection of [z, label] to 7x7 x g_filters[0]
    (batch-normalised, LeakyReLU), as in the Keras DCGAN examples the paper follows. The last
    layer has no batch norm: its activation maps to the normalisation range.
    """

    def __init__(self, config: TrainConfig, num_classes: int, size: int = 28) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"image size {size} must be divisible by 4")
        f1, f2, f3 = config.g_filters
        self.base = size // 4
        self.f1 = f1
        slope = config.leaky_slope
        self.project = nn.Sequential(
            nn.Linear(config.latent_size + num_classes, f1 * self.base * self.base, bias=False),
            nn.BatchNorm1d(f1 * self.base * self.base), nn.LeakyReLU(slope))

        def up(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 5, stride, padding=2, output_padding=stride - 1, bias=False),
                    nn.BatchNorm2d(cout), nn.LeakyReLU(slope)]

        self.body = nn.Sequential(
            *up(f1, f1, 2), *up(f1, f2, 2), *up(f2, f3, 1),
            nn.ConvTranspose2d(f3, 1, 5, 1, padding=2),
            nn.Sigmoid() if config.normalization == "[0,1]" else nn.Tanh())
        _keras_init(self)

    def forward(self, z: torch.Tensor, labels_one_hot: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([z, labels_one_hot], dim=1))
        return self.body(x.view(-1, self.f1, self.base, self.base))


class Discriminator(nn.Module):
    """(image, one-hot label) -> one logit (the sigmoid lives in the loss, for stability).

    The label goes through a dense layer to a 28x28x1 map, concatenated with the image;
    three 5x5 stride-2 convolutions follow, batch-normalised except the first (section 7).
    Its batch norm always uses the statistics of the batch it sees, as in training: D is
    never run in inference mode, so it keeps no running statistics.
    """

    def __init__(self, config: TrainConfig, num_classes: int, size: int = 28) -> None:
        super().__init__()
        f1, f2, f3 = config.d_filters
        slope, dropout = config.leaky_slope, config.d_dropout
        self.size = size
        self.embed = nn.Linear(num_classes, size * size)

        def down(cin: int, cout: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5, 2, padding=2, bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm2d(cout, track_running_stats=False))
            layers.append(nn.LeakyReLU(slope))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            return layers

        self.body = nn.Sequential(*down(2, f1, False), *down(f1, f2, True), *down(f2, f3, True), nn.Flatten())
        side = size
        for _ in range(3):
            side = (side - 1) // 2 + 1
        self.head = nn.Linear(f3 * side * side, 1)
        _keras_init(self)

    def forward(self, images: torch.Tensor, labels_one_hot: torch.Tensor) -> torch.Tensor:
        label_map = self.embed(labels_one_hot).view(-1, 1, self.size, self.size)
        return self.head(self.body(torch.cat([images, label_map], dim=1))).squeeze(1)
