"""Classification Accuracy Score (Ravuri & Vinyals 2019): how useful generated faces are as
training data for the task they depict.

A classifier learns from generated images only, as many per class as the real training split
holds, and is tested on the real held-out split. It is the judge's architecture and training
recipe (``trainable.judge.fit_classifier``), so trained on the real training split with the same
steps and seed it is the judge itself: the judge's held-out accuracy is CAS's ceiling, and
chance (1 / classes) its floor. Unlike FD or the judge's conditional accuracy, CAS falls when
the faces of a class are convincing but all alike: a classifier trained on them does not
generalise to real faces.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from trainable import metrics
from trainable.data import PreparedDataset, normalize
from trainable.experiment import FINAL_CAS, FINAL_CAS_PER_CLASS, FINAL_CAS_S
from trainable.generate import generate_images
from trainable.judge import fit_classifier, heldout_split, predict


@dataclasses.dataclass(frozen=True)
class CasResult:
    accuracy: float  # on the real held-out split
    per_class: list[float]
    train_images: int  # generated images it learned from
    heldout_images: int
    steps: int
    seconds: float  # training and testing the classifier


def real_split(real: PreparedDataset, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the real training and held-out images, exactly as the judge splits them."""
    return heldout_split(real, np.random.default_rng(seed))


def train_counts(real: PreparedDataset, seed: int = 0) -> list[int]:
    """Images per class of the real training split: how many CAS generates of each."""
    train, _ = real_split(real, seed)
    return np.bincount(real.labels[train], minlength=real.num_classes).tolist()


def classification_accuracy_score(images: np.ndarray, labels: np.ndarray, real: PreparedDataset, *,
                                  steps: int = 1500, seed: int = 0, device: str | torch.device = "cpu",
                                  progress: bool = False) -> CasResult:
    """Train on ``images`` (uint8 (N, S, S)) with ``labels``; test on ``real``'s held-out split."""
    started = time.perf_counter()
    _, heldout = real_split(real, seed)
    net = fit_classifier(torch.from_numpy(normalize(images, "[0,1]")).to(device),
                         torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device), real.num_classes,
                         steps=steps, seed=seed, label="CAS classifier", progress=progress)
    predicted = predict(net, torch.from_numpy(normalize(real.images[heldout], "[0,1]")).to(device))
    accuracy, per_class = metrics.conditional_accuracy(predicted, real.labels[heldout], real.num_classes)
    return CasResult(accuracy, [float(v) for v in per_class], len(images), len(heldout), steps,
                     time.perf_counter() - started)


def generator_cas(generator, real: PreparedDataset, *, latent_size: int, normalization: str, steps: int = 1500,
                  seed: int = 0, device: str | torch.device = "cpu", progress: bool = False) -> CasResult:
    """CAS of a generator: as many generated images per class as ``real``'s training split holds.
    Its seconds include generating them."""
    started = time.perf_counter()
    images, labels = generate_images(generator, train_counts(real, seed), latent_size=latent_size,
                                     normalization=normalization, seed=seed, progress=progress)
    result = classification_accuracy_score(images, labels, real, steps=steps, seed=seed, device=device,
                                           progress=progress)
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


def final_cas_row(trainer, real: PreparedDataset, *, steps: int) -> dict:
    """The keys a trial's last row gets when its study asked for CAS (study file: final_cas = true)."""
    result = generator_cas(trainer.sampling_generator, real, latent_size=trainer.config.latent_size,
                           normalization=trainer.config.normalization, steps=steps, device=trainer.device)
    return {FINAL_CAS: result.accuracy, FINAL_CAS_PER_CLASS: result.per_class, FINAL_CAS_S: result.seconds}
