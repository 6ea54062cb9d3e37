"""Reading, ranking and drawing the results of studies and single trials (no Ray needed)."""

from analysis._reader import Experiment, TrialRecord, rank, read_experiment

__all__ = ["Experiment", "TrialRecord", "rank", "read_experiment"]
