import numpy as np

from trainable.data import EXPRESSIONS, generate_faces, load_prepared
from trainable.data._synthetic import _draw_face, _expression, _identity


def test_deterministic_from_seed_and_balanced():
    a = generate_faces(70, seed=5)
    b = generate_faces(70, seed=5)
    c = generate_faces(70, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert np.bincount(a[1]).tolist() == [10] * 7
    assert a[0].shape == (70, 48, 48) and a[0].dtype == np.uint8


def test_split_is_by_identity():
    _, _, who, split = generate_faces(700, seed=1)
    for person in np.unique(who):
        assert len(set(split[who == person].tolist())) == 1
    assert {"train", "valid", "test"} <= set(split.tolist())


def test_not_trivially_separable_but_learnable_signal():
    images, labels, _, split = generate_faces(1400, seed=2)
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    train, test = split == "train", split != "train"
    centroids = np.stack([x[train & (labels == c)].mean(0) for c in range(7)])
    nearest = ((x[test][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    centroid_accuracy = (nearest == labels[test]).mean()
    # Pixel templates do no better than a weak guess: the model has to learn features.
    assert centroid_accuracy < 0.35, centroid_accuracy
    # ...yet expression is there to learn: a ridge-regularised linear readout beats chance.
    design = np.c_[x[train], np.ones(train.sum())]
    weights = np.linalg.solve(design.T @ design + 10 * np.eye(design.shape[1]), design.T @ np.eye(7)[labels[train]])
    linear = (np.c_[x[test], np.ones(test.sum())] @ weights).argmax(1)
    assert (linear == labels[test]).mean() > 1.5 / 7


def _mean_pairwise_distance(images):
    flat = images.reshape(len(images), -1).astype(np.float64)
    diffs = flat[:, None] - flat[None]
    distances = np.sqrt((diffs ** 2).sum(-1))
    return distances[np.triu_indices(len(images), 1)].mean()


def test_identities_make_a_collapsed_generator_measurably_less_diverse():
    images, labels, _, _ = generate_faces(700, seed=4)
    happy = images[labels == EXPRESSIONS.index("happy")][:40]
    # A generator collapsed onto one face still varies pose, light and noise, but not identity.
    rng = np.random.default_rng(0)
    person = _identity(rng)
    one_face = np.stack([_draw_face(person, _expression(3, np.random.default_rng(i)), np.random.default_rng(i))
                         for i in range(40)])
    assert _mean_pairwise_distance(happy) > 1.5 * _mean_pairwise_distance(one_face)


def test_synth_command_writes_every_form(run_cli, tmp_path):
    code, out, _ = run_cli("data", "synth", "--out", tmp_path / "s", "--count", "70", "--seed", "1")
    assert code == 0
    assert (tmp_path / "s" / "fer2013.csv").is_file()
    assert len(list((tmp_path / "s" / "images").rglob("*.png"))) == 70
    prepared = load_prepared(tmp_path / "s" / "synthetic.npz")
    assert prepared.images.shape == (70, 28, 28)
    # The written CSV prepares to exactly the prepared file the command wrote.
    code, out, _ = run_cli("data", "prepare", tmp_path / "s" / "fer2013.csv", "--out", tmp_path / "c.npz")
    assert code == 0
    np.testing.assert_array_equal(load_prepared(tmp_path / "c.npz").images, prepared.images)
    code, _, err = run_cli("data", "synth", "--out", tmp_path / "s", "--count", "70", "--forms", "folders")
    assert code == 1 and "already exists" in err


def test_info_and_fuse_commands(run_cli, tmp_path):
    run_cli("data", "synth", "--out", tmp_path / "s", "--count", "70", "--forms", "csv,folders")
    assert run_cli("data", "prepare", tmp_path / "s" / "fer2013.csv", "--out", tmp_path / "a.npz")[0] == 0
    assert run_cli("data", "prepare", tmp_path / "s" / "images", "--out", tmp_path / "b.npz", "--name", "mmafedb")[0] == 0
    code, out, _ = run_cli("data", "fuse", tmp_path / "a.npz", tmp_path / "b.npz", "--out", tmp_path / "f.npz")
    assert code == 0
    code, out, _ = run_cli("data", "info", tmp_path / "f.npz")
    assert "140 images 28x28, 7 classes" in out
    assert "fer2013 70, mmafedb 70" in out
