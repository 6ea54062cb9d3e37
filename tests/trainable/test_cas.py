"""Classification Accuracy Score: its ceiling is the judge, a collapsed generator scores chance,
and a study trial computes it at its last evaluation only."""

import functools

import numpy as np
import pytest

from tests.conftest import TINY
from trainable.cas import classification_accuracy_score, final_cas_row, real_split, train_counts
from trainable.config import TrainConfig
from trainable.experiment import FINAL_CAS, FINAL_CAS_PER_CLASS, FINAL_CAS_S
from trainable.loop import train
from trainable.training import Trainer


def test_cas_of_the_real_training_split_is_the_judge(tiny_data):
    """Trained on the real training split, CAS's classifier is the judge: same recipe, steps, seed."""
    _, dataset, judge = tiny_data  # the judge: 60 steps, seed 0
    train_index, heldout = real_split(dataset)
    result = classification_accuracy_score(dataset.images[train_index], dataset.labels[train_index], dataset, steps=60)
    assert result.accuracy == judge.heldout_accuracy
    assert result.train_images == len(train_index) == sum(train_counts(dataset))
    assert result.heldout_images == len(heldout) == int((dataset.split != "train").sum())
    assert len(result.per_class) == 7 and result.seconds > 0


def test_a_trial_reports_cas_in_its_last_row_only(tiny_data):
    _, dataset, judge = tiny_data
    trainer = Trainer(TrainConfig.from_dict({**TINY, "iterations": 20}), dataset, judge)
    rows = []
    train(trainer, lambda row, grid, t: rows.append(row),
          on_complete=functools.partial(final_cas_row, real=dataset, steps=5))
    assert [row["iteration"] for row in rows] == [10, 20]
    assert FINAL_CAS not in rows[0]
    assert 0 <= rows[-1][FINAL_CAS] <= 1 and rows[-1][FINAL_CAS_S] > 0 and len(rows[-1][FINAL_CAS_PER_CLASS]) == 7


@pytest.mark.slow
def test_cas_of_real_faces_is_well_above_a_collapsed_generator_at_chance():
    """700 synthetic faces, 200 steps (measured: real 0.41, one face per class 0.13 and 0.15; chance 0.14)."""
    from trainable.data import synthetic_dataset

    dataset = synthetic_dataset(700, seed=7)
    train_index, _ = real_split(dataset)
    images, labels = dataset.images[train_index], dataset.labels[train_index]
    real = classification_accuracy_score(images, labels, dataset, steps=200)
    one_each = np.stack([images[labels == c][0] for c in range(7)])
    collapsed = classification_accuracy_score(np.repeat(one_each, train_counts(dataset), axis=0),
                                              np.repeat(np.arange(7), train_counts(dataset)), dataset, steps=200)
    assert collapsed.train_images == real.train_images
    assert real.accuracy >= 0.3
    assert collapsed.accuracy <= 1 / 7 + 0.08 and collapsed.accuracy < real.accuracy - 0.15
