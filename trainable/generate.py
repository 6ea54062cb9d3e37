"""Labelled data sets made by a trained generator, for expression database generation and
augmentation (the paper's section 1).

G comes from a trial's checkpoint: the EMA weights (``generator_ema``) when the trial kept an
average of G (``g_ema`` > 0), as its evaluations and grids used, else the raw weights. Images
are drawn class by class from z uniform in [-1, 1] (as in training) with a seeded generator,
and G runs in inference mode, so a seed gives the same images on the same machine.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from trainable.checkpoint import read_checkpoint
from trainable.config import TrainConfig
from trainable.data import PreparedDataset, denormalize
from trainable.errors import ConfigError, UserError
from trainable.experiment import CHECKPOINT_FILE, checkpoint_iteration
from trainable.models import Generator
from trainable.progress import Progress
from trainable.sampling import sample
from trainable.trial_dir import TrialDirectory

EMA, RAW = "EMA", "raw"


def source_name(trial_name: str) -> str:
    """The per-image source of generated images in a prepared file."""
    return f"generated:{trial_name}"


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedGenerator:
    generator: Generator
    config: TrainConfig
    weights: str  # EMA or RAW
    iteration: int
    checkpoint: Path


def find_checkpoint(trial_dir: str | Path, index: int | None = None) -> Path:
    """The trial's last checkpoint folder, or its checkpoint_<index>; a one-line refusal when absent."""
    folder = TrialDirectory(trial_dir)
    found = folder.checkpoints()
    if not found:
        raise UserError(f"{folder.path}: no checkpoint (the trial saved none: it stopped before its first "
                        "evaluation, or its checkpoints were deleted)")
    if index is None:
        # Under PBT a trial's checkpoint names restart when it takes another's weights: the furthest
        # by the iteration its lineage records, where there is one, is the last.
        return max(found, key=lambda path: (checkpoint_iteration(path), path.name))
    wanted = folder.checkpoint_dir(index)
    if wanted not in found:
        raise UserError(f"{folder.path}: no checkpoint {index}; it keeps "
                        f"{', '.join(str(int(p.name.split('_')[-1])) for p in found)}")
    return wanted


def load_generator(checkpoint: str | Path, *, num_classes: int, size: int,
                   device: str | torch.device = "cpu") -> TrainedGenerator:
    """G from a trainer checkpoint, refusing one made for another class count or image size."""
    checkpoint = Path(checkpoint)
    state = read_checkpoint(checkpoint, device)
    where = str(checkpoint / CHECKPOINT_FILE)
    try:
        config = TrainConfig.from_dict(state["config"])
        ema = state.get("generator_ema")
        weights = ema if ema is not None else state["generator"]
        # The first layer maps [z, one-hot label] to f1 x (size/4)^2: its shape gives both.
        first = next(value for key, value in weights.items() if key.startswith("project.0.") and value.ndim == 2)
    except (KeyError, TypeError, AttributeError, StopIteration, ConfigError):
        raise UserError(f"{where}: unreadable checkpoint (no generator and config in it)") from None
    classes = int(first.shape[1]) - config.latent_size
    if classes != num_classes:
        raise UserError(f"{where}: its generator makes {classes} classes, the trial's data set has {num_classes}")
    side = 4 * round((int(first.shape[0]) / config.g_filters[0]) ** 0.5)
    if side != size:
        raise UserError(f"{where}: its generator makes {side}x{side} images, the trial's data set has {size}x{size}")
    generator = Generator(config, num_classes, size).to(device)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"{where}: unreadable checkpoint ({str(exc).splitlines()[0]})") from None
    return TrainedGenerator(generator.requires_grad_(False), config, EMA if ema is not None else RAW,
                            int(state.get("iteration", 0)), checkpoint)


def generate_images(generator: Generator, counts: list[int], *, latent_size: int, normalization: str,
                    seed: int = 0, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` images of each class c, class after class: (uint8 (N, S, S), labels (N,))."""
    total = int(sum(counts))
    labels = torch.arange(len(counts)).repeat_interleave(torch.tensor(counts, dtype=torch.long))
    z = torch.rand(total, latent_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    meter = Progress("generating", total, enabled=progress)
    images = sample(generator, z, torch.eye(len(counts))[labels], progress=meter)
    meter.close(total)
    return denormalize(images.numpy(), normalization), labels.numpy()


def memory_needed(total: int, *, latent_size: int, classes: int, size: int) -> int:
    """Bytes ``generate_images`` holds at once for ``total`` images: latent vectors, labels, their
    one-hot form, the float images and the uint8 ones."""
    return total * (4 * latent_size + 8 + 4 * classes + 5 * size * size)


def available_memory() -> int:
    """Bytes of memory this machine can give now (MemAvailable), else its physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def generate_dataset(trained: TrainedGenerator, per_class: int, class_names: tuple[str, ...], *, source: str,
                     seed: int = 0, progress: bool = False) -> PreparedDataset:
    """``per_class`` generated images of each class as a prepared set (all in the train split)."""
    images, labels = generate_images(trained.generator, [per_class] * len(class_names),
                                     latent_size=trained.config.latent_size,
                                     normalization=trained.config.normalization, seed=seed, progress=progress)
    return PreparedDataset(images, labels.astype(np.int64), np.full(len(images), "train"),
                           np.full(len(images), source), tuple(class_names))
