"""The GAN's mathematics, for the configured loss and remedies: D's and G's losses, what D sees of
a batch (DiffAugment, instance noise), D's update with R1, D's accuracy, and G's weight average.
Functions of the models, tensors and the config: the trainer's step (trainable/training.py) calls
them in the paper's order."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch.nn import functional as F

from trainable.augment import diff_augment
from trainable.config import TrainConfig


def d_loss(logits: torch.Tensor, real: bool, config: TrainConfig) -> torch.Tensor:
    """D's loss on one batch, all real or all fake."""
    target = 1.0 - config.label_smoothing if real else 0.0  # one-sided: fakes stay at 0
    if config.loss == "hinge":
        return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()
    if config.loss == "least-squares":
        return (logits - target).square().mean()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def g_loss(logits: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    if config.loss == "hinge":
        return -logits.mean()
    if config.loss == "least-squares":
        return (logits - 1).square().mean()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # non-saturating


def accuracy_boundary(config: TrainConfig) -> float:
    """D calls a sample real past the midpoint of its two targets: logit 0 for cross-entropy
    (p = 0.5) and hinge (+1 / -1); 0.5 for least squares, whose targets are 1 and 0."""
    return 0.5 if config.loss == "least-squares" else 0.0


def d_input(images: torch.Tensor, config: TrainConfig, rng: torch.Generator, iteration: torch.Tensor) -> torch.Tensor:
    """What D sees of a batch: DiffAugment, then annealed instance noise (both off by default).
    ``iteration`` is the count on the device, which a captured step reads rather than baking in."""
    images = diff_augment(images, config.diffaugment, rng)
    if config.instance_noise > 0:
        # Sonderby et al. 2017: noise makes the real and fake distributions overlap, so D's
        # gradients stay informative; annealed linearly to 0 by the last iteration. The std is
        # in units of the [0,1] range.
        width = 1.0 if config.normalization == "[0,1]" else 2.0
        std = config.instance_noise * width * (1 - iteration / config.iterations).clamp(min=0)
        noise = torch.randn(images.shape, generator=rng, device=images.device, dtype=images.dtype)
        # In float32 and then rounded, as a Python float std was: a CUDA tensor std would be
        # rounded to bf16 first.
        images = images + (noise.float() * std).to(images.dtype)
    return images


def r1_penalty(logits: torch.Tensor, images: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): D's gradient on real images penalised, so D cannot sharpen its
    boundary without bound around the data: gamma / 2 * E ||grad D(x)||^2."""
    gradient, = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return gamma / 2 * gradient.float().square().flatten(1).sum(1).mean()


def d_update(discriminator: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
             labels: torch.Tensor, real: bool, config: TrainConfig,
             autocast: Callable[[], contextlib.AbstractContextManager]) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of D on one batch, all real or all fake (R1 on the real ones when on); returns
    its loss and gradient norm, on the device."""
    r1 = real and config.r1_gamma > 0
    if r1:
        images = images.detach().requires_grad_(True)
    with autocast():
        logits = discriminator(images, labels).float()
        loss = d_loss(logits, real, config)
    if r1:
        loss = loss + r1_penalty(logits, images, config.r1_gamma)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = grad_norm(list(discriminator.parameters()))
    optimizer.step()
    return loss.detach(), norm


@torch.no_grad()
def d_accuracy(discriminator: torch.nn.Module, real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor,
               fake_labels: torch.Tensor, config: TrainConfig,
               autocast: Callable[[], contextlib.AbstractContextManager]) -> tuple[torch.Tensor, ...]:
    """D's accuracy on real and on fake, from one forward pass of the same D state over both
    batches together: its batch norm then normalises real and fake by the same statistics.
    Two separate batches (the paper's two updates) are each normalised by their own, which
    leaves the two accuracies within 0.005 of each other whatever D has learned. Also returns
    D's loss on the same logits, for the report while D is frozen."""
    with autocast():
        logits = discriminator(torch.cat([real, fake]), torch.cat([real_labels, fake_labels])).float()
    real_logits, fake_logits = logits.split([len(real), len(fake)])
    loss = (d_loss(real_logits, True, config) + d_loss(fake_logits, False, config)) / 2
    boundary = accuracy_boundary(config)
    return (real_logits > boundary).float().mean(), (fake_logits < boundary).float().mean(), loss


def grad_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else torch.zeros(())


@torch.no_grad()
def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float, iteration: torch.Tensor) -> None:
    """G's weight average (Yazici et al. 2019) one step on. The decay warms up as (1 + t) / (10 + t),
    as in TensorFlow's ExponentialMovingAverage with num_updates: an average over the untrained
    first iterations would lag for thousands of steps and look mode-collapsed (issue 9's probe:
    lowest diversity ratio 0.16-0.29 in the first 1500 iterations without it)."""
    weight = (1 - ((1 + iteration) / (10 + iteration)).clamp(max=decay)).float()
    averaged, current = list(average.parameters()), list(model.parameters())
    # A weight tensor per parameter: the one-Scalar form would read a tensor weight on the host.
    torch._foreach_lerp_(averaged, current, [weight] * len(averaged))
    for average_buffer, buffer in zip(average.buffers(), model.buffers()):
        average_buffer.copy_(buffer)
