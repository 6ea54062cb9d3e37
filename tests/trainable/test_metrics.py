import numpy as np
import pytest

from trainable import metrics
from trainable.verdict import MODE_COLLAPSE, collapse_verdict


def test_frechet_distance_of_two_known_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25, 2.0]), np.array([2.0, 1.0, 1.0, 2.0])
    a = rng.normal(mu1, np.sqrt(var1), size=(200_000, 4))
    b = rng.normal(mu2, np.sqrt(var2), size=(200_000, 4))
    # Closed form for diagonal covariances: |dmu|^2 + sum (sd1 - sd2)^2.
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert metrics.frechet_distance_features(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_matches_an_independent_formula_for_full_covariances():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(6), m2 @ m2.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    # tr((S1 S2)^1/2) from the eigenvalues of the (non-symmetric) product, which are real and >= 0.
    trace_root = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_root
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the covariance of infinite features
def test_frechet_distance_of_non_finite_features_is_nan_not_an_error():
    """A diverged G makes NaN images: the eigensolver raised LinAlgError and crashed the trial."""
    real = np.random.default_rng(0).normal(size=(50, 4))
    assert np.isnan(metrics.frechet_distance_features(real, np.full((50, 4), np.nan)))
    assert np.isnan(metrics.frechet_distance_features(real, np.full((50, 4), np.inf)))


def test_identical_sets_are_at_distance_zero_and_fully_covered():
    features = np.random.default_rng(2).normal(size=(300, 8))
    assert metrics.frechet_distance_features(features, features) == pytest.approx(0.0, abs=1e-8)
    assert metrics.coverage(features, features) == 1.0
    assert metrics.diversity_ratio(features, features) == pytest.approx(1.0)


def test_one_image_per_class_has_no_diversity_and_low_coverage():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 8))
    collapsed = np.repeat(real[:1], 100, axis=0)
    assert metrics.diversity_ratio(real, collapsed) == 0.0
    assert metrics.coverage(real, collapsed) < 0.05
    far = real + 100.0
    assert metrics.coverage(real, far) == 0.0


def test_knn_radii_match_brute_force():
    points = np.random.default_rng(4).normal(size=(40, 3))
    radii = metrics.knn_radii(points, k=3)
    for i, point in enumerate(points):
        others = np.delete(points, i, axis=0)
        assert radii[i] == pytest.approx(np.sort(np.linalg.norm(others - point, axis=1))[2])


def test_mean_pairwise_distance_matches_brute_force():
    points = np.random.default_rng(5).normal(size=(30, 4))
    brute = np.mean([np.linalg.norm(points[i] - points[j]) for i in range(30) for j in range(i + 1, 30)])
    assert metrics.mean_pairwise_distance(points) == pytest.approx(brute)


def test_conditional_accuracy_per_class():
    overall, per = metrics.conditional_accuracy(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert overall == 0.75
    np.testing.assert_allclose(per, [1.0, 0.5, 1.0])


def test_judge_scores_a_one_image_per_class_generator_as_mode_collapse(tiny_data):
    import torch

    from trainable.data import normalize

    _, dataset, judge = tiny_data
    train = dataset.select("train")
    one_each = np.array([np.flatnonzero(train.labels == c)[0] for c in range(7)])
    intended = np.repeat(np.arange(7), 20)
    collapsed = torch.from_numpy(normalize(train.images[np.repeat(one_each, 20)], "[0,1]"))
    scores = judge.score(collapsed, intended)
    assert scores["diversity_min"] == pytest.approx(0.0, abs=1e-6)
    varied = torch.from_numpy(normalize(train.images[:140], "[0,1]"))
    healthy = judge.score(varied, train.labels[:140])
    # With ~32 reference faces per class, one image covers about k/32 of them; real faces most.
    assert healthy["diversity_min"] > 0.5 and healthy["coverage"] > 2 * scores["coverage"]
    assert healthy["fid_intra"] < scores["fid_intra"]
    history = [{"iteration": 1000 * (i + 1), "d_loss": 0.7, "g_loss": 0.8, "d_real_accuracy": 0.6,
                "d_fake_accuracy": 0.6, **scores} for i in range(3)]
    assert collapse_verdict(history, grace=0).kind == MODE_COLLAPSE
