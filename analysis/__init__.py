"""Reading, ranking and drawing the results of studies and single trials (no Ray needed).

The figures are in private modules, each a ``get_*_info`` (plain data) and a ``plot_*``;
``analysis.dashboard`` puts them on one page and ``analysis.browser`` opens that page in
headless Chromium.
"""

from analysis._common import WORKING_ACCURACY, Milestone, first_working, row_at
from analysis._factors import (FactorsInfo, ShortTrials, format_factors, get_factors_info, lengthened_trials,
                               short_trials)
from analysis._leaderboard import LeaderboardInfo, LeaderboardRow, format_ranking, get_leaderboard_info, short_value
from analysis._nodes import NodeRow, NodesInfo, get_nodes_info
from analysis._pick import describe_pick, is_trial_folder, pick_trial
from analysis._reader import Experiment, TrialRecord, rank, rankable, read_experiment
from analysis._replay import ReplayInfo, format_replay, get_replay_info
from analysis._schedule import schedule_lines

__all__ = ["WORKING_ACCURACY", "Experiment", "FactorsInfo", "LeaderboardInfo", "LeaderboardRow", "Milestone",
           "NodeRow", "NodesInfo", "ReplayInfo", "ShortTrials", "TrialRecord", "describe_pick", "first_working", "format_factors",
           "format_ranking", "format_replay", "get_factors_info", "get_leaderboard_info", "get_nodes_info", "get_replay_info", "is_trial_folder", "pick_trial", "rank", "rankable",
           "lengthened_trials", "read_experiment", "row_at", "schedule_lines", "short_trials", "short_value"]
