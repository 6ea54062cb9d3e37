"""Images from G: in batches in inference mode (``sample``), and the fixed samples a trainer is
evaluated on at each report (``FixedNoise``, ``evaluate``): the judge's metrics and the grid."""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch

from trainable.config import TrainConfig
from trainable.data import denormalize
from trainable.experiment import JUDGE_ACCURACY
from trainable.judge import Judge
from trainable.models import Generator
from trainable.progress import Progress


@torch.no_grad()
def sample(generator: Generator, z: torch.Tensor, labels_one_hot: torch.Tensor, *,
           autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
           batch: int = 500, progress: Progress | None = None) -> torch.Tensor:
    """G's images for ``z`` and labels, in G's output range, as float32 on the CPU.

    G runs in inference mode (running batch-norm statistics), so an image depends on its own z
    and label only, not on the batch it was made in (up to float rounding)."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        chunks = []
        for start in range(0, len(z), batch):
            with autocast():
                out = generator(z[start:start + batch].to(device), labels_one_hot[start:start + batch].to(device))
            chunks.append(out.float().cpu())
            if progress is not None:
                progress.update(start + len(chunks[-1]))
    finally:
        generator.train(was_training)
    return torch.cat(chunks)


class FixedNoise:
    """A run's fixed z and labels (seeded by its seed + 1): the evaluation samples, and the grid's
    (rows = classes, columns = z)."""

    def __init__(self, config: TrainConfig, num_classes: int) -> None:
        fixed = torch.Generator().manual_seed(config.seed + 1)
        per_class = config.eval_samples_per_class
        self.eval_labels = torch.arange(num_classes).repeat_interleave(per_class)
        self.eval_z = torch.rand(len(self.eval_labels), config.latent_size, generator=fixed) * 2 - 1
        grid_z = torch.rand(config.grid_columns, config.latent_size, generator=fixed) * 2 - 1
        self.grid_z = grid_z.repeat(num_classes, 1)
        self.grid_labels = torch.arange(num_classes).repeat_interleave(config.grid_columns)


def evaluate(generator: Generator, noise: FixedNoise, config: TrainConfig, judge: Judge | None, *, size: int,
             autocast: Callable[[], contextlib.AbstractContextManager]) -> tuple[dict, np.ndarray]:
    """Quality metrics from the judge (when there is one) and the sample grid (classes, columns, S, S)."""
    num_classes = len(noise.grid_labels) // config.grid_columns
    eye = torch.eye(num_classes)

    def images(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # in [0,1], on the CPU
        out = sample(generator, z, eye[labels], autocast=autocast)
        return out if config.normalization == "[0,1]" else (out + 1) / 2

    grid = denormalize(images(noise.grid_z, noise.grid_labels).numpy(), "[0,1]")
    grid = grid.reshape(num_classes, config.grid_columns, size, size)
    if judge is None:
        return {}, grid
    scores = judge.score(images(noise.eval_z, noise.eval_labels), noise.eval_labels.numpy())
    scores[JUDGE_ACCURACY] = judge.heldout_accuracy
    return scores, grid
