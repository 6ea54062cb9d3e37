"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same family of differentiable transforms is applied to every batch D sees, real and fake,
in D's and in G's updates, so D cannot tell real from fake by the augmentation, and G's
gradients flow through the transform. Randomness comes from the trainer's generator, so a
resumed trial draws the same transforms as one never stopped. Pure functions of a batch.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# The paper's ratios (reference code DiffAugment_pytorch.py): shifts of up to 1/8 of the image,
# one square of half the image side cut out.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def translation(images: torch.Tensor, rng: torch.Generator, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by a random integer offset of up to ``ratio`` of its side, zero-padded."""
    batch, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (batch, 1, 1), generator=rng, device=images.device)
    dx = torch.randint(-shift_x, shift_x + 1, (batch, 1, 1), generator=rng, device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) + dy + shift_y
    cols = torch.arange(width, device=images.device).view(1, 1, width) + dx + shift_x
    padded = F.pad(images, [shift_x, shift_x, shift_y, shift_y])
    index = torch.arange(batch, device=images.device).view(batch, 1, 1)
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, rng: torch.Generator, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one random square of ``ratio`` of the side in each image (it may reach past the edge)."""
    batch, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1), generator=rng, device=images.device)
    left = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1), generator=rng, device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) - top + size_y // 2
    cols = torch.arange(width, device=images.device).view(1, 1, width) - left + size_x // 2
    inside = (rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x)
    return images * (~inside).unsqueeze(1).to(images.dtype)


TRANSFORMS = {"translation": translation, "cutout": cutout}


def diff_augment(images: torch.Tensor, policy: str, rng: torch.Generator) -> torch.Tensor:
    """Apply the comma-separated ``policy`` ("off", "translation", "translation,cutout") in order."""
    if policy == "off":
        return images
    for name in policy.split(","):
        images = TRANSFORMS[name](images, rng)
    return images
