"""Quality metrics as pure functions of feature arrays (no model, no I/O).

Features come from the judge's penultimate layer; every function takes them as arrays, so
each can be checked against an independent computation with random data.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with the root taken on the symmetric
    S1^1/2 S2 S1^1/2 (same eigenvalues as S1 S2), so no complex parts need discarding. NaN where
    a statistic is not finite (a diverged G's images): the eigensolver would raise instead."""
    if not all(np.isfinite(statistic).all() for statistic in (mu1, sigma1, mu2, sigma2)):
        return float("nan")
    root1 = _sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)
    return max(value, 0.0)


def frechet_distance_features(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def per_class(function, real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
              num_classes: int) -> np.ndarray:
    """function(real_c, fake_c) for every class c."""
    return np.array([function(real[real_labels == c], fake[fake_labels == c]) for c in range(num_classes)])


def conditional_accuracy(predicted: np.ndarray, intended: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    """Share of samples generated for class c that the judge calls c: overall and per class."""
    predicted, intended = np.asarray(predicted), np.asarray(intended)
    per = np.array([(predicted[intended == c] == c).mean() if (intended == c).any() else np.nan
                    for c in range(num_classes)])
    return float((predicted == intended).mean()), per


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all unordered pairs."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        return 0.0
    squared = (features ** 2).sum(1)
    distances = np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2 * features @ features.T, 0, None))
    return float(distances[np.triu_indices(len(features), 1)].mean())


def diversity_ratio(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean pairwise distance among generated samples / the same among real samples (1 = as varied as the data)."""
    reference = mean_pairwise_distance(real)
    return mean_pairwise_distance(fake) / reference if reference > 0 else float("nan")


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sqrt(np.clip((a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T, 0, None))


def knn_radii(real: np.ndarray, k: int = 5) -> np.ndarray:
    """Distance from each real sample to its k-th nearest other real sample."""
    distances = _pairwise(real, real)
    np.fill_diagonal(distances, np.inf)
    k = min(k, len(real) - 1)
    return np.partition(distances, k - 1, axis=1)[:, k - 1]


def coverage(real: np.ndarray, fake: np.ndarray, k: int = 5, radii: np.ndarray | None = None) -> float:
    """Naeem et al. 2020: share of real samples whose k-NN ball (among reals) holds a generated sample."""
    if len(real) < 2 or len(fake) == 0:
        return 0.0
    radii = knn_radii(real, k) if radii is None else radii
    return float((_pairwise(real, fake).min(axis=1) < radii).mean())
