"""Analysis of a real tiny study run in this session (real Ray, Optuna, trainer, files), seed
re-runs of its best configurations through the same study machinery, and its best trial's use."""

import json

import pytest

from analysis import read_experiment
from analysis.browser import find_browser, open_page
from analysis._curves import get_curves_info
from analysis._grids import get_grids_info
from analysis._history import get_history_info
from analysis._importance import MIN_TRIALS, get_importance_info
from analysis._leaderboard import get_leaderboard_info
from analysis._replay import get_replay_info
from analysis._stops import get_stops_info
from tests.e2e.test_study import cli
from trainable.data import load_prepared

pytestmark = pytest.mark.slow

# Learning rates of 1.0 make a trial's losses diverge within a few reports (loss-collapse);
# the baselines keep the paper's 2e-4, so the study holds healthy and collapsed trials.
MIXED_STUDY = """
[study]
samples = 6
grace_period = 2
seed = 5
sampler = "random"
[fixed]
g_filters = "8,8,4"
iterations = 100
eval_every = 20
eval_samples_per_class = 10
batch_size = 16
precision = "fp32"  # the same on every CPU: "auto" is bf16 where the CPU computes it natively
collapse_grace = 40
collapse_patience = 2
# An 8,8,4 G covers none of the real faces in 100 iterations (coverage 0) even when it learns:
# here only its diversity judges mode collapse, and ASHA never stops the baselines.
mode_collapse_coverage = 0.0
[search]
latent_size = [8, 80, 100]
d_filters = ["4,8,8", "16,32,64", "32,64,128"]
d_dropout = {low = 0.0, high = 0.5}
freeze_accuracy = ["off", 0.95]
freeze_after = ["off", 50000]
g_lr = [0.0002, 1.0]
d_lr = [0.0002, 1.0]
"""


@pytest.fixture(scope="module")
def real_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis-study")
    (root / "study.toml").write_text(MIXED_STUDY)
    done = cli("study", "run", "--config", root / "study.toml", "--name", "mixed", "--storage", root / "studies")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "studies" / "mixed"


def test_ranking_of_a_real_study(real_study):
    experiment = read_experiment(real_study)
    info = get_leaderboard_info(experiment)
    assert len(info.rows) == 6
    assert sorted(r.baseline for r in info.rows if r.baseline) == ["V0", "V1", "V2"]
    reasons = [r.stop_reason for r in info.rows]
    assert any(r.endswith("collapse") for r in reasons), reasons
    by_name = {t.name: t for t in experiment.trials}
    # By score, a collapsed trial below every trial the verdict judged healthy (two reports from
    # iteration 40 on); those ASHA stopped at 40 were never judged and rank by score.
    position = {r.name: i for i, r in enumerate(info.rows)}
    judged = [r for r in info.rows if r.healthy and by_name[r.name].judged]
    collapsed = [r for r in info.rows if r.stop_reason.endswith("collapse")]
    assert judged and max(position[r.name] for r in judged) < min(position[r.name] for r in collapsed)
    scores = [r.score for r in info.rows
              if not r.stop_reason.endswith("collapse") and r.score is not None and r.stop_reason != "error"]
    assert scores == sorted(scores)  # the trials not collapsed: by score
    worst = max(r.score for r in judged)
    for c in (r for r in collapsed if r.score is not None):  # a stopped trial above a collapsed one
        # exactly where its score beats the collapsed one's and the worst judged healthy one's
        for s in (r for r in info.rows
                  if r.score is not None and r.stop_reason == "asha" and not by_name[r.name].judged):
            assert (position[s.name] < position[c.name]) == (s.score < max(c.score, worst))
    for row in info.rows:
        assert row.params == {key: by_name[row.name].params[key] for key in info.params}
        assert row.iteration == by_name[row.name].rows[-1]["iteration"]


def test_figure_data_of_a_real_study(real_study):
    experiment = read_experiment(real_study)
    history = get_history_info(experiment)
    assert sorted(history.names) == sorted(t.name for t in experiment.trials)
    # The baselines are asked for first: the first three to start (the first two start together,
    # one per CPU, in either order).
    assert sorted(history.baselines[:3]) == ["V0", "V1", "V2"] and history.baselines[2] == "V2"
    best = [s for s in history.best_so_far if s is not None]
    assert best == sorted(best, reverse=True)
    stops = get_stops_info(experiment)
    assert sum(stops.counts) == 6
    curves = get_curves_info(experiment)
    for trial in experiment.trials:
        assert curves[trial.name].iterations == [r["iteration"] for r in trial.rows]
        assert curves[trial.name].stop_reason == trial.stop_reason
    timelines = get_grids_info(experiment).timelines
    for trial in experiment.trials:  # every report's grid and thumbnail synced from the workers
        assert len(timelines[trial.name]) == len(trial.rows)
        assert all(frame.thumb.is_file() for frame in timelines[trial.name])
    importance = get_importance_info(experiment)
    finished = [t for t in experiment.trials if t.score is not None]
    assert importance.trials_used == len(finished)
    if len(finished) >= MIN_TRIALS:
        assert sorted(importance.params) == sorted(experiment.study["spec"]["search"])
    else:
        assert importance.params == [] and f"at least {MIN_TRIALS}" in importance.note


def test_analyze_a_real_study_and_open_it_offline(real_study, tmp_path):
    done = cli("analyze", real_study, "--out", tmp_path / "d.html")
    assert done.returncode == 0, done.stderr[-3000:]
    best = get_leaderboard_info(read_experiment(real_study)).rows[0]
    assert done.stdout.splitlines()[1].split()[1] == best.name
    if find_browser():
        report = open_page(tmp_path / "d.html", evaluate="document.querySelectorAll('.main-svg').length")
        assert report.errors == [] and report.evaluated >= 6


def test_replay_reruns_the_best_with_new_seeds_and_ranks_by_median(real_study):
    done = cli("analyze", "replay", "mixed", "--storage", real_study.parent, "--top", "2", "--seeds", "2")  # by name
    assert done.returncode == 0, done.stderr[-3000:]
    replay_dir = real_study.parent / "mixed-replay"
    experiment = read_experiment(replay_dir)
    assert len(experiment.trials) == 4
    info = get_replay_info(experiment)
    source = get_leaderboard_info(read_experiment(real_study)).rows[:2]
    assert sorted(g.source_name for g in info.groups) == sorted(r.name for r in source)
    for group in info.groups:
        assert group.seeds == [1, 2] and len(group.scores) == 2
        known = [s for s in group.scores if s is not None]
        if known:
            assert group.low == min(known) and group.high == max(known) and group.low <= group.median <= group.high
    medians = [g.median for g in info.groups if g.median is not None]
    assert medians == sorted(medians)
    assert "ranked by median" in done.stdout
    # the replays ran to the end: no ASHA cut a seed short
    assert all(t.rows[-1]["iteration"] == 100 or t.collapsed for t in experiment.trials)
    dashboard = cli("analyze", replay_dir)
    assert dashboard.returncode == 0 and "Seed re-runs" in (replay_dir / "dashboard.html").read_text()
    again = cli("analyze", "replay", replay_dir)
    assert again.returncode == 1 and "itself a seed re-run" in again.stderr


def test_the_best_trial_of_a_real_study_generates_faces_and_runs_again(real_study, run_cli, tmp_path):
    """Tune's trial folders (checkpoints, study.json's data) serve `generate` and `trial --from`."""
    best = get_leaderboard_info(read_experiment(real_study)).rows[0]
    code, out, _ = run_cli("generate", real_study, "--per-class", 2, "--out", tmp_path / "g.npz")
    assert code == 0 and f"{best.name} (rank 1 of study mixed" in out and "raw weights" in out
    generated = load_prepared(tmp_path / "g.npz")
    assert generated.counts() == {"train": [2] * 7} and set(generated.source.tolist()) == {f"generated:{best.name}"}
    code, out, _ = run_cli("trial", "--from", "mixed", "--storage", real_study.parent, "--set", "iterations=20",
                           "--out", tmp_path / "again")
    assert code == 0, out
    params = json.loads((tmp_path / "again" / "params.json").read_text())
    assert params["from"] == {"trial": str((real_study / best.name).resolve()), "study": "mixed", "rank": 1}
    assert params["data"] == "builtin:synthetic" and params["judge_steps"] == 1500 and params["iterations"] == 20
    source = read_experiment(real_study / best.name).trials[0].params
    assert all(params[key] == value for key, value in source.items() if key != "iterations")


def test_a_study_trial_goes_on_from_its_checkpoint_in_a_new_folder(real_study, run_cli, tmp_path):
    """`trial --continue` on Tune's trial folder: its checkpoint's history and grids come along, the
    study is left as it was, and training goes on from the checkpoint's iteration."""
    files = {path: path.read_bytes() for path in sorted(real_study.rglob("*")) if path.is_file() and path.name != "driver.lock"}
    best = get_leaderboard_info(read_experiment(real_study)).rows[0]
    source = read_experiment(real_study / best.name).trials[0]
    reached = source.last["iteration"]
    code, out, _ = run_cli("trial", "--from", real_study, "--continue", "--set", f"iterations={reached + 40}",
                           "--out", tmp_path / "on")
    assert code == 0 and f"{best.name} (rank 1 of study mixed" in out and f"(iteration {reached}) to {reached + 40}" in out, out
    rows = read_experiment(tmp_path / "on").trials[0].rows
    assert [row["iteration"] for row in rows] == [row["iteration"] for row in source.rows] + [reached + 20, reached + 40]
    keys = ("iteration", "fid_intra", "cond_accuracy", "d_loss")
    assert [[row[k] for k in keys] for row in rows[:len(source.rows)]] == [[row[k] for k in keys] for row in source.rows]
    assert all((tmp_path / "on" / row["grid"]).is_file() for row in rows)  # the study trial's grids, then its own
    params = json.loads((tmp_path / "on" / "params.json").read_text())
    assert params["from"]["rank"] == 1 and params["data"] == "builtin:synthetic" and params["iterations"] == reached + 40
    assert {path: path.read_bytes() for path in sorted(real_study.rglob("*"))
            if path.is_file() and path.name != "driver.lock"} == files  # the study as it was, nothing added
    # Only the trainer's state was copied: the new trial's last checkpoint is its own latest, not the study's.
    from trainable.checkpoint import read_checkpoint
    from trainable.generate import find_checkpoint
    assert sorted(p.name for p in (tmp_path / "on").glob("checkpoint_*/*")) == ["trainer.pt"] * 2 + ["trainer.pt.sha256"] * 2
    assert find_checkpoint(tmp_path / "on").name == f"checkpoint_{len(rows) - 1:06d}"
    # One report on: the copied checkpoint is still kept beside the new one, which is the last.
    code, _, _ = run_cli("trial", "--from", real_study, "--continue", "--set", f"iterations={reached + 20}",
                         "--out", tmp_path / "one")
    assert code == 0 and len(list((tmp_path / "one").glob("checkpoint_*"))) == 2
    assert read_checkpoint(find_checkpoint(tmp_path / "one"))["iteration"] == reached + 20
