"""The paper's CGAN (section 7): generator and discriminator, sized by the config and the data."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from trainable.config import TrainConfig


def _keras_init(module: nn.Module) -> None:
    # The paper trained with Keras defaults: Glorot-uniform kernels and zero biases.
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _spectral(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every weight layer: each layer's largest
    singular value is kept near 1 by one power iteration per forward pass, so D stays Lipschitz
    and cannot overpower G by growing its weights."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            setattr(module, name, spectral_norm(child))
        else:
            _spectral(child)
    return module


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
        if config.g_spectral_norm:
            _spectral(self)

    def forward(self, z: torch.Tensor, labels_one_hot: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([z, labels_one_hot], dim=1))
        return self.body(x.view(-1, self.f1, self.base, self.base))


class MinibatchStd(nn.Module):
    """Appends one feature map holding the mean over features of the batch's standard deviation
    (Karras et al. 2018, section 3): a batch of near-identical fakes stands out to D."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)
        return torch.cat([x, spread.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class LeakyReLUDropout(nn.LeakyReLU):
    """LeakyReLU, then dropout at ``p`` (0 until set). It lets a D built without dropout take a
    dropout rate mid-training (PBT) with the module layout, and so the checkpoint keys, of a D
    without it; a D built with dropout keeps its nn.Dropout layers, whose ``p`` changes instead."""

    p = 0.0

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        output = super().forward(input)
        return F.dropout(output, self.p, self.training) if self.p > 0 else output


class Discriminator(nn.Module):
    """(image, one-hot label) -> one logit (the sigmoid lives in the loss, for stability).

    The paper's conditioning (``concat``): the label goes through a dense layer to a 28x28x1
    map, concatenated with the image; three 5x5 stride-2 convolutions follow, batch-normalised
    except the first (section 7). With ``projection`` (Miyato & Koyama 2018) the image alone
    goes through the convolutions and the logit is psi(h) + <embed(y), h> for D's features h:
    the label enters as an inner product, which keeps D from ignoring it.
    Batch norm always uses the statistics of the batch it sees, as in training: D is never
    run in inference mode, so it keeps no running statistics.
    """

    def __init__(self, config: TrainConfig, num_classes: int, size: int = 28) -> None:
        super().__init__()
        f1, f2, f3 = config.d_filters
        slope, dropout = config.leaky_slope, config.d_dropout
        self.size = size
        self.projection = config.conditioning == "projection"
        batch_norm = config.d_norm == "batch"

        def down(cin: int, cout: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5, 2, padding=2, bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm2d(cout, track_running_stats=False))
            if dropout > 0:
                layers += [nn.LeakyReLU(slope), nn.Dropout(dropout)]
            else:
                layers.append(LeakyReLUDropout(slope))
            return layers

        channels = 1 if self.projection else 2
        body = [*down(channels, f1, False), *down(f1, f2, batch_norm), *down(f2, f3, batch_norm)]
        if config.minibatch_std:
            body.append(MinibatchStd())
        self.body = nn.Sequential(*body, nn.Flatten())
        side = size
        for _ in range(3):
            side = (side - 1) // 2 + 1
        features = (f3 + config.minibatch_std) * side * side
        self.head = nn.Linear(features, 1)
        self.embed = nn.Linear(num_classes, features if self.projection else size * size, bias=not self.projection)
        _keras_init(self)
        if config.d_norm == "spectral":
            _spectral(self)

    def forward(self, images: torch.Tensor, labels_one_hot: torch.Tensor) -> torch.Tensor:
        if self.projection:
            features = self.body(images)
            return (self.head(features).squeeze(1) + (self.embed(labels_one_hot) * features).sum(1))
        label_map = self.embed(labels_one_hot).view(-1, 1, self.size, self.size)
        return self.head(self.body(torch.cat([images, label_map], dim=1))).squeeze(1)
