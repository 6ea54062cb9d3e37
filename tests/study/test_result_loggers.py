"""The study's result loggers: a trial that goes on from a checkpoint older than its last report
(a retry that fell back past a damaged checkpoint) has each iteration once in its files."""

import csv
import json

from study._callbacks import StudyCSVLogger, StudyJsonLogger


class _Trial:
    """What Tune's loggers use of a trial."""

    def __init__(self, path):
        self.local_path = str(path)
        self.local_experiment_path = str(path.parent)  # as in Ray: the staging folder of the trial's study
        self.config = {"g_lr": 0.001}
        self.checkpoint = None  # started afresh: nothing to copy from the storage
        path.mkdir()

    def init_local_path(self):
        import os

        os.makedirs(self.local_path, exist_ok=True)


def _row(iteration, value):
    return {"iteration": iteration, "training_iteration": iteration // 150, "fid_intra": value, "hyper": {"g_lr": 1e-3},
            "timestamp": 1000 + value}


def test_rows_trained_again_after_a_fallback_replace_the_abandoned_ones(tmp_path):
    trial = _Trial(tmp_path / "trial_x")
    loggers = [StudyJsonLogger(), StudyCSVLogger()]
    for logger in loggers:
        for iteration, value in ((150, 9.0), (300, 8.0)):
            logger.log_trial_result(iteration // 150, trial, _row(iteration, value))
        # Its checkpoint at 300 was damaged: the retry restores 150 and trains 300 again.
        logger.log_trial_result(2, trial, _row(300, 7.5))
        logger.log_trial_result(3, trial, _row(450, 7.0))
        logger.log_trial_end(trial)
    rows = [json.loads(line) for line in (tmp_path / "trial_x" / "result.json").read_text().splitlines()]
    assert [(row["iteration"], row["fid_intra"]) for row in rows] == [(150, 9.0), (300, 7.5), (450, 7.0)]
    with open(tmp_path / "trial_x" / "progress.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(row["iteration"], row["fid_intra"]) for row in table] == [("150", "9.0"), ("300", "7.5"), ("450", "7.0")]
    assert list(table[0]) == ["iteration", "training_iteration", "fid_intra", "timestamp", "hyper/g_lr"]
