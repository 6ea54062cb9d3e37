"""Generating labelled faces from a trial's checkpoint: which weights, how many, how repeatable."""

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from trainable.checkpoint import read_checkpoint
from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.generate import EMA, RAW, find_checkpoint, generate_dataset, generate_images, load_generator
from trainable.local import run_local_trial
from trainable.models import Generator
from trainable.sampling import sample


@pytest.fixture(scope="module")
def trials(tiny_data, tmp_path_factory):
    """Two tiny finished trials: one keeps an EMA of G, one does not."""
    path, _, judge = tiny_data
    root = tmp_path_factory.mktemp("trials")
    for name, ema in (("ema", 0.9), ("raw", 0.0)):
        config = TrainConfig.from_dict({**TINY, "iterations": 20, "g_ema": ema})
        run_local_trial(root / name, config=config, data=path, judge_steps=60, judge=judge)
    return root


def _images(generator, config, count=5, seed=11):
    z = torch.rand(count * 7, config.latent_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return sample(generator, z, torch.eye(7)[torch.arange(7).repeat_interleave(count)])


@pytest.mark.parametrize("name, weights, key", [("ema", EMA, "generator_ema"), ("raw", RAW, "generator")])
def test_the_ema_weights_are_used_when_the_trial_kept_them(trials, tiny_data, name, weights, key):
    _, dataset, _ = tiny_data
    checkpoint = find_checkpoint(trials / name)
    trained = load_generator(checkpoint, num_classes=7, size=28)
    assert trained.weights == weights and trained.iteration == 20 and checkpoint.name == "checkpoint_000001"
    state = read_checkpoint(checkpoint)
    expected = Generator(trained.config, 7, 28)
    expected.load_state_dict(state[key])
    assert torch.equal(_images(trained.generator, trained.config), _images(expected, trained.config))
    if name == "ema":  # the average really differs from G, so the choice is visible
        other = Generator(trained.config, 7, 28)
        other.load_state_dict(state["generator"])
        assert not torch.equal(_images(trained.generator, trained.config), _images(other, trained.config))


def test_counts_labels_and_a_seed_give_the_same_images(trials):
    trained = load_generator(find_checkpoint(trials / "raw"), num_classes=7, size=28)
    dataset = generate_dataset(trained, 4, tuple("abcdefg"), source="generated:raw", seed=3)
    assert dataset.counts() == {"train": [4] * 7} and dataset.class_names == tuple("abcdefg")
    assert dataset.images.dtype == np.uint8 and dataset.images.shape == (28, 28, 28)
    assert set(dataset.source.tolist()) == {"generated:raw"}
    again = generate_dataset(trained, 4, tuple("abcdefg"), source="generated:raw", seed=3)
    assert np.array_equal(dataset.images, again.images)
    other = generate_dataset(trained, 4, tuple("abcdefg"), source="generated:raw", seed=4)
    assert not np.array_equal(dataset.images, other.images)
    images, labels = generate_images(trained.generator, [2, 0, 1, 0, 0, 0, 3], latent_size=trained.config.latent_size,
                                     normalization=trained.config.normalization, seed=3)
    # G runs in inference mode: an image depends on its own z and label, not on the batch it was made
    # in (to float rounding: convolutions of other batch sizes may add in another order)
    assert labels.tolist() == [0, 0, 2, 6, 6, 6]
    assert np.abs(images[:2].astype(int) - dataset.images[:2]).max() <= 1
    z = torch.rand(21, trained.config.latent_size) * 2 - 1
    labels = torch.eye(7)[torch.arange(21) % 7]
    assert torch.allclose(sample(trained.generator, z, labels, batch=4), sample(trained.generator, z, labels), atol=1e-5)


def test_refusals_name_the_checkpoint(trials, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        find_checkpoint(tmp_path)
    with pytest.raises(UserError, match="no checkpoint 7; it keeps 0, 1"):
        find_checkpoint(trials / "raw", 7)
    checkpoint = find_checkpoint(trials / "raw", 0)
    with pytest.raises(UserError, match="makes 7 classes, the trial's data set has 3"):
        load_generator(checkpoint, num_classes=3, size=28)
    with pytest.raises(UserError, match="makes 28x28 images, the trial's data set has 32x32"):
        load_generator(checkpoint, num_classes=7, size=32)
    (tmp_path / "checkpoint_000000").mkdir()
    (tmp_path / "checkpoint_000000" / "trainer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable checkpoint"):
        load_generator(find_checkpoint(tmp_path), num_classes=7, size=28)
    torch.save({"iteration": 3}, tmp_path / "checkpoint_000000" / "trainer.pt")
    with pytest.raises(UserError, match="unreadable checkpoint .no generator"):
        load_generator(find_checkpoint(tmp_path), num_classes=7, size=28)


def test_more_faces_than_memory_holds_are_refused_with_the_size(trials, run_cli, tmp_path):
    code, out, err = run_cli("generate", trials / "raw", "--per-class", "100000000000", "--out", tmp_path / "g.npz")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("cgan-study: error: --per-class 100000000000: 700,000,000,000 images of 28x28 need "
                               "about ") and "GiB of memory" in lines[0]
    assert not (tmp_path / "g.npz").exists()
