"""The judge: a small expression classifier that scores generated faces without downloaded weights.

Trained on the real training split of the prepared data, it reports its own held-out
accuracy, and its penultimate features are the space in which the metrics measure distance.
It is cached on disk under the data set's content hash, so every trial of a study shares
one judge, trained once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainable import metrics
from trainable._io import atomic_path, cache_dir
from trainable.data import PreparedDataset, normalize
from trainable.experiment import (COND_ACCURACY, COND_ACCURACY_PER_CLASS, COVERAGE, COVERAGE_PER_CLASS, DIVERSITY_MEAN,
                                  DIVERSITY_MIN, DIVERSITY_PER_CLASS, FID, FID_INTRA, FID_PER_CLASS)
from trainable.progress import Progress

JUDGE_VERSION = 1
REFERENCE_PER_CLASS = 500
COVERAGE_K = 5


class JudgeNet(nn.Module):
    def __init__(self, num_classes: int, feature_size: int = 64, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, width), nn.MaxPool2d(2), *block(width, 2 * width), nn.MaxPool2d(2), *block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, feature_size), nn.ReLU())
        self.head = nn.Linear(feature_size, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        return features, self.head(features)


@dataclasses.dataclass(eq=False)
class Judge:
    """A trained judge with the real reference features the metrics compare against."""

    net: JudgeNet
    class_names: tuple[str, ...]
    heldout_accuracy: float
    reference_features: np.ndarray  # (M, F) features of real training images
    reference_labels: np.ndarray  # (M,)
    content_hash: str

    def __post_init__(self) -> None:
        self.net.eval()
        # Per-class real statistics, computed once and reused at every evaluation.
        self.class_features = [self.reference_features[self.reference_labels == c] for c in range(self.num_classes)]
        self.class_statistics = [metrics.feature_statistics(f) for f in self.class_features]
        self.overall_statistics = metrics.feature_statistics(self.reference_features)
        self.class_spread = np.array([metrics.mean_pairwise_distance(f) for f in self.class_features])
        self.class_radii = [metrics.knn_radii(f, COVERAGE_K) for f in self.class_features]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def embed(self, images_unit: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Images in [0,1], (N, 1, S, S) -> (features (N, F), predicted labels (N,))."""
        return _embed(self.net, images_unit)

    def score(self, images_unit: torch.Tensor, intended: np.ndarray) -> dict[str, object]:
        """Every quality metric for generated images made for the ``intended`` classes."""
        features, predicted = self.embed(images_unit)
        accuracy, accuracy_per_class = metrics.conditional_accuracy(predicted, intended, self.num_classes)
        fid_per_class, diversity, coverage = [], [], []
        for c in range(self.num_classes):
            fake = features[intended == c]
            fid_per_class.append(metrics.frechet_distance(*self.class_statistics[c], *metrics.feature_statistics(fake)))
            spread = self.class_spread[c]
            diversity.append(metrics.mean_pairwise_distance(fake) / spread if spread > 0 else 0.0)
            coverage.append(metrics.coverage(self.class_features[c], fake, COVERAGE_K, radii=self.class_radii[c]))
        return {
            FID: metrics.frechet_distance(*self.overall_statistics, *metrics.feature_statistics(features)),
            FID_INTRA: float(np.mean(fid_per_class)),
            COND_ACCURACY: accuracy,
            DIVERSITY_MIN: float(np.min(diversity)),
            DIVERSITY_MEAN: float(np.mean(diversity)),
            COVERAGE: float(np.mean(coverage)),
            FID_PER_CLASS: [float(v) for v in fid_per_class],
            DIVERSITY_PER_CLASS: [float(v) for v in diversity],
            COVERAGE_PER_CLASS: [float(v) for v in coverage],
            COND_ACCURACY_PER_CLASS: [float(v) for v in accuracy_per_class],
        }

    def save(self, path: str | Path) -> Path:
        payload = {
            "version": JUDGE_VERSION, "state_dict": self.net.state_dict(), "class_names": list(self.class_names),
            "heldout_accuracy": float(self.heldout_accuracy), "content_hash": self.content_hash,
            "feature_size": int(self.reference_features.shape[1]),
            "reference_features": torch.from_numpy(self.reference_features.astype(np.float32)),
            "reference_labels": torch.from_numpy(self.reference_labels.astype(np.int64)),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Judge":
        payload = torch.load(path, map_location="cpu", weights_only=True)
        net = JudgeNet(len(payload["class_names"]), payload["feature_size"])
        net.load_state_dict(payload["state_dict"])
        return cls(net.to(device), tuple(payload["class_names"]), payload["heldout_accuracy"],
                   payload["reference_features"].numpy().astype(np.float64), payload["reference_labels"].numpy(),
                   payload["content_hash"])


@torch.no_grad()
def _embed(net: JudgeNet, images_unit: torch.Tensor, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    device = next(net.parameters()).device
    features, predicted = [], []
    for start in range(0, len(images_unit), batch):
        f, logits = net(images_unit[start:start + batch].to(device, torch.float32))
        features.append(f.cpu().numpy())
        predicted.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(features).astype(np.float64), np.concatenate(predicted)


def heldout_split(dataset: PreparedDataset, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train on the training split, measure on valid + test; with neither, hold out 10 % of train."""
    train = np.flatnonzero(dataset.split == "train")
    heldout = np.flatnonzero(dataset.split != "train")
    if len(heldout) == 0:
        shuffled = rng.permutation(train)
        cut = max(1, len(train) // 10)
        heldout, train = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
    return train, heldout


def fit_classifier(images_unit: torch.Tensor, labels: torch.Tensor, num_classes: int, *, steps: int = 1500,
                   batch_size: int = 128, seed: int = 0, label: str = "training judge",
                   progress: bool = False) -> JudgeNet:
    """The judge's training recipe on any labelled images in [0,1], (N, 1, S, S), on their device:
    the judge itself on real faces, CAS's classifier on generated ones. Small random shifts keep
    it from memorising pixel positions."""
    device = images_unit.device
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = JudgeNet(num_classes).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    meter = Progress(label, steps, enabled=progress)
    net.train()
    for step in range(steps):
        chosen = torch.randint(len(images_unit), (batch_size,), generator=generator).to(device)
        shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
        batch = torch.roll(images_unit[chosen], shifts=shift, dims=(2, 3))
        _, logits = net(batch)
        loss = nn.functional.cross_entropy(logits, labels[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        meter.update(step + 1, f"loss {loss.item():.3f}")
    meter.close(steps)
    net.eval()
    return net


def predict(net: JudgeNet, images_unit: torch.Tensor) -> np.ndarray:
    """Predicted labels (N,) for images in [0,1], (N, 1, S, S)."""
    return _embed(net, images_unit)[1]


def train_judge(dataset: PreparedDataset, *, steps: int = 1500, batch_size: int = 128, seed: int = 0,
                device: str | torch.device = "cpu", progress: bool = False) -> Judge:
    """Train the judge on the real training split; its accuracy on the held-out split is reported."""
    rng = np.random.default_rng(seed)
    train, heldout = heldout_split(dataset, rng)
    images = torch.from_numpy(normalize(dataset.images, "[0,1]")).to(device)
    labels = torch.from_numpy(dataset.labels).to(device)
    train_index = torch.from_numpy(train).to(device)
    net = fit_classifier(images[train_index], labels[train_index], dataset.num_classes, steps=steps,
                         batch_size=batch_size, seed=seed, progress=progress)
    predicted = predict(net, images[torch.from_numpy(heldout).to(device)])
    heldout_accuracy = float((predicted == dataset.labels[heldout]).mean())
    reference = np.concatenate([rng.permutation(train[dataset.labels[train] == c])[:REFERENCE_PER_CLASS]
                                for c in range(dataset.num_classes)])
    features, _ = _embed(net, images[torch.from_numpy(reference).to(device)])
    return Judge(net, dataset.class_names, heldout_accuracy, features, dataset.labels[reference], dataset.content_hash)


def load_or_train_judge(dataset: PreparedDataset, *, directory: str | Path | None = None, steps: int = 1500,
                        device: str | torch.device = "cpu", progress: bool = False) -> tuple[Judge, bool]:
    """The cached judge for this data set's content, training and caching it if absent.

    Returns (judge, trained_now).
    """
    path = Path(directory or cache_dir()) / f"judge-{dataset.content_hash}-v{JUDGE_VERSION}-s{steps}.pt"
    if path.is_file():
        try:
            return Judge.load(path, device), False
        except Exception:  # noqa: BLE001 - damaged bytes fail torch's unpickler in any way
            pass  # a damaged cache entry is rebuilt, not fatal
    judge = train_judge(dataset, steps=steps, device=device, progress=progress)
    judge.save(path)
    return judge, True
