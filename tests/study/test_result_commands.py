"""Using a trial's result: `generate`, `analyze cas` and `trial --from` on tiny trials."""

import json
import shutil

import numpy as np
import pytest

from analysis import format_ranking, get_leaderboard_info, read_experiment
from analysis.dashboard import fixed_config
from tests.conftest import TINY
from tests.synthetic_study import write_synthetic_study
from trainable.config import TrainConfig
from trainable.data import EXPRESSIONS, PreparedDataset, load_prepared, read_any
from trainable.local import run_local_trial


@pytest.fixture(scope="module")
def trial(tiny_data, tmp_path_factory):
    """A tiny finished local trial that keeps an EMA of G."""
    path, _, judge = tiny_data
    folder = tmp_path_factory.mktemp("result") / "trial"
    config = TrainConfig.from_dict({**TINY, "iterations": 20, "g_ema": 0.9})
    run_local_trial(folder, config=config, data=path, judge_steps=60, judge=judge)
    return folder


def refused(run_cli, *args, contains):
    code, out, err = run_cli(*args)
    assert code == 1 and contains in err, (code, err)
    assert err.strip().count("\n") == 0 and "Traceback" not in err  # one line
    return err


def test_generated_sets_load_through_the_readers_in_every_format(run_cli, trial, tiny_data, tmp_path):
    real_path, real, _ = tiny_data
    loaded = {}
    for fmt, out in (("npz", tmp_path / "g.npz"), ("folders", tmp_path / "faces"), ("csv", tmp_path / "g.csv")):
        code, printed, _ = run_cli("generate", trial, "--per-class", 3, "--out", out, "--format", fmt, "--seed", 5)
        assert code == 0 and "EMA weights" in printed and "21 images 28x28" in printed
        loaded[fmt] = load_prepared(out) if fmt == "npz" else read_any(out)
    for dataset in loaded.values():
        assert dataset.counts() == {"train": [3] * 7} and dataset.class_names == EXPRESSIONS
        assert dataset.labels.tolist() == np.repeat(np.arange(7), 3).tolist()
        assert np.array_equal(dataset.images, loaded["npz"].images)  # the same faces in each form
    assert set(loaded["npz"].source.tolist()) == {"generated:trial"}
    # the augmented set: the real one plus the generated faces in its training split
    code, _, _ = run_cli("data", "fuse", real_path, tmp_path / "g.npz", "--out", tmp_path / "augmented.npz")
    augmented = load_prepared(tmp_path / "augmented.npz")
    assert code == 0 and augmented.counts()["train"] == [n + 3 for n in real.counts()["train"]]
    assert augmented.counts()["test"] == real.counts()["test"]
    # a seed gives the same faces; another seed others
    run_cli("generate", trial, "--per-class", 3, "--out", tmp_path / "again.npz", "--seed", 5)
    run_cli("generate", trial, "--per-class", 3, "--out", tmp_path / "other.npz", "--seed", 6)
    assert np.array_equal(load_prepared(tmp_path / "again.npz").images, loaded["npz"].images)
    assert not np.array_equal(load_prepared(tmp_path / "other.npz").images, loaded["npz"].images)


def test_generate_refuses_in_one_line_and_writes_nothing(run_cli, trial, tmp_path):
    out = tmp_path / "g.npz"
    refused(run_cli, "generate", trial, "--per-class", 0, "--out", out, contains="--per-class 0")
    refused(run_cli, "generate", tmp_path / "nowhere", "--per-class", 2, "--out", out,
            contains="neither a trial folder")
    refused(run_cli, "generate", trial, "--rank", 2, "--per-class", 2, "--out", out, contains="is one trial")
    refused(run_cli, "generate", trial, "--rank", 0, "--per-class", 2, "--out", out, contains="ranks start at 1")
    refused(run_cli, "generate", trial, "--checkpoint", 9, "--per-class", 2, "--out", out,
            contains="no checkpoint 9")
    # no checkpoint at all
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(trial / "params.json", bare)
    refused(run_cli, "generate", bare, "--per-class", 2, "--out", out, contains="no checkpoint")
    # a checkpoint of another class count than the trial's data set
    other = tmp_path / "other"
    shutil.copytree(trial, other)
    three = PreparedDataset(np.zeros((6, 28, 28), np.uint8), np.arange(6) % 3, np.full(6, "train"),
                            np.full(6, "x"), ("a", "b", "c"))
    params = json.loads((other / "params.json").read_text())
    (other / "params.json").write_text(json.dumps({**params, "data": str(three.save(tmp_path / "three.npz"))}))
    refused(run_cli, "generate", other, "--per-class", 2, "--out", out, contains="makes 7 classes, the trial's data set has 3")
    # an unreadable checkpoint
    broken = tmp_path / "broken"
    shutil.copytree(trial, broken)
    last = sorted(broken.glob("checkpoint_*"))[-1]
    (last / "trainer.pt").write_bytes(b"\x00garbage")
    refused(run_cli, "generate", broken, "--per-class", 2, "--out", out, contains="unreadable checkpoint")
    # a study: ranks beyond its trials, and trials without checkpoints (named by folder or by name)
    study = tmp_path / "studies" / "synthetic"
    write_synthetic_study(study, trials=3, evaluations=2)
    refused(run_cli, "generate", study, "--rank", 4, "--per-class", 2, "--out", out, contains="has 3 trial(s)")
    refused(run_cli, "generate", "synthetic", "--storage", tmp_path / "studies", "--per-class", 2, "--out", out,
            contains="no checkpoint")
    assert not out.exists()
    # an existing output is never overwritten
    out.write_text("mine")
    refused(run_cli, "generate", trial, "--per-class", 2, "--out", out, contains="already exists")
    assert out.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare", "broken", "g.npz", "other", "studies", "three.npz"]


def test_analyze_cas_prints_cas_beside_its_ceiling_and_its_cost(run_cli, trial):
    code, out, _ = run_cli("analyze", "cas", trial, "--steps", 5)
    assert code == 0, out
    assert "CAS (generated -> real):" in out and "ceiling (real -> real):" in out and "chance:                  0.143" in out
    assert "cost:" in out and "5 classifier steps" in out and "EMA weights" in out


def test_trial_from_copies_the_configuration_and_records_its_source(run_cli, trial, tmp_path):
    new = tmp_path / "again"
    code, out, _ = run_cli("trial", "--from", trial, "--set", "iterations=30", "--out", new)
    assert code == 0 and "from trial (completed at iteration 20" in out
    source, params = (json.loads((folder / "params.json").read_text()) for folder in (trial, new))
    assert params.pop("from") == {"trial": str(trial.resolve()), "study": None, "rank": None}
    assert params.pop("iterations") == 30 and source.pop("iterations") == 20
    assert params.pop("preset") is None and source.pop("preset") is None
    assert params == source  # every config field, the data set and the judge's steps
    experiment = read_experiment(new)
    assert experiment.trials[0].stop_reason == "completed" and "trial" in format_ranking(get_leaderboard_info(experiment))
    assert fixed_config(experiment)["from"]["trial"] == str(trial.resolve())
    code, _, _ = run_cli("trial", "--resume", new, "--set", "iterations=40")  # "from" is context, not config
    assert code == 0 and read_experiment(new).trials[0].last["iteration"] == 40
    refused(run_cli, "trial", "--from", trial, "--preset", "V1", "--out", tmp_path / "x", contains="--preset")
    refused(run_cli, "trial", "--rank", 2, "--out", tmp_path / "x", contains="--rank")
    assert not (tmp_path / "x").exists()


def _files(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_trial_continue_goes_on_from_a_checkpoint_in_a_new_folder_as_the_trial_would_have(run_cli, trial, tiny_data,
                                                                                        tmp_path):
    source = _files(trial)
    code, out, _ = run_cli("trial", "--from", trial, "--continue", "--set", "iterations=30", "--out", tmp_path / "on")
    assert code == 0 and "going on from checkpoint_000001 (iteration 20) to 30" in out, out
    rows = read_experiment(tmp_path / "on").trials[0].rows
    assert [row["iteration"] for row in rows] == [10, 20, 30]
    assert _files(trial) == source  # the trial it went on from is left as it was
    params = json.loads((tmp_path / "on" / "params.json").read_text())
    assert params["from"] == {"trial": str(trial.resolve()), "study": None, "rank": None} and params["iterations"] == 30
    # The reports up to the checkpoint come along, with their grids; the rest is trained on from the
    # checkpoint's weights, optimisers and random state: a trial of 30 from the start reports the same.
    whole = tmp_path / "whole"
    config = TrainConfig.from_dict({**TINY, "iterations": 30, "g_ema": 0.9})
    run_local_trial(whole, config=config, data=params["data"], judge_steps=60, judge=tiny_data[2])
    keys = ("iteration", "fid_intra", "cond_accuracy", "d_loss", "g_loss")
    assert [[row[k] for k in keys] for row in rows] == [[row[k] for k in keys] for row in read_experiment(whole).trials[0].rows]
    assert all((tmp_path / "on" / row["grid"]).is_file() for row in rows)
    # From an earlier checkpoint (10), to the trial's own length: its own report at 20 again.
    code, _, _ = run_cli("trial", "--from", trial, "--continue", "--checkpoint", 0, "--out", tmp_path / "again")
    again = read_experiment(tmp_path / "again").trials[0].rows
    assert code == 0 and [[row[k] for k in keys] for row in again] == [[row[k] for k in keys]
                                                                       for row in read_experiment(trial).trials[0].rows]


def test_trial_continue_keeps_the_steps_to_come_of_a_replayed_schedule(run_cli, trial, tmp_path):
    replay = tmp_path / "replay"
    shutil.copytree(trial, replay)
    params = json.loads((replay / "params.json").read_text())
    config = {key: value for key, value in params.items() if key not in ("preset", "data", "judge_steps")}
    schedule = [{"iteration": 0, "trial": "a", "config": config},
                {"iteration": 25, "trial": "b", "config": {**config, "g_lr": config["g_lr"] * 20}}]
    (replay / "params.json").write_text(json.dumps({**params, "schedule": schedule}))
    for source, out in ((trial, "plain"), (replay, "replayed")):
        code, _, _ = run_cli("trial", "--from", source, "--continue", "--set", "iterations=30", "--out", tmp_path / out)
        assert code == 0
    assert json.loads((tmp_path / "replayed" / "params.json").read_text())["schedule"] == schedule
    plain, replayed = (read_experiment(tmp_path / out).trials[0].rows for out in ("plain", "replayed"))
    assert plain[:2] == replayed[:2] or [r["fid_intra"] for r in plain[:2]] == [r["fid_intra"] for r in replayed[:2]]
    assert plain[2]["g_loss"] != replayed[2]["g_loss"]  # G's rate changed at 25, as the replay says


def test_trial_continue_refuses_in_one_line_and_writes_nothing(run_cli, trial, tmp_path):
    out = tmp_path / "x"
    refused(run_cli, "trial", "--continue", "--out", out, contains="--continue needs --from")
    refused(run_cli, "trial", "--from", trial, "--checkpoint", 0, "--out", out, contains="it needs --continue")
    refused(run_cli, "trial", "--from", trial, "--continue", "--set", "latent_size=4", "--out", out,
            contains="only --set iterations=N may change")
    refused(run_cli, "trial", "--resume", trial, "--continue", contains="only --set iterations=N may change")
    refused(run_cli, "trial", "--from", trial, "--continue", "--out", out,
            contains="at iteration 20, the end of its 20 iterations: nothing to go on with")
    refused(run_cli, "trial", "--from", trial, "--continue", "--set", "iterations=15", "--out", out,
            contains="nothing to go on with")
    refused(run_cli, "trial", "--from", trial, "--continue", "--checkpoint", 7, "--set", "iterations=30",
            "--out", out, contains="no checkpoint 7")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(trial / "params.json", bare)
    refused(run_cli, "trial", "--from", bare, "--continue", "--set", "iterations=30", "--out", out,
            contains="no checkpoint")
    broken = tmp_path / "broken"
    shutil.copytree(trial, broken)
    for checkpoint in broken.glob("checkpoint_*"):
        (checkpoint / "trainer.pt").write_bytes(b"\x00garbage")
    refused(run_cli, "trial", "--from", broken, "--continue", "--set", "iterations=30", "--out", out,
            contains="unreadable checkpoint")
    refused(run_cli, "trial", "--from", trial, "--continue", "--set", "iterations=30", "--out", trial / "inside",
            contains="inside the trial it goes on from")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    refused(run_cli, "trial", "--from", trial, "--continue", "--set", "iterations=30", "--out", mine,
            contains="already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare", "broken", "mine"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_trial_continue_where_it_cannot_write_is_one_line_and_leaves_nothing(run_cli, trial, small_file_system):
    read_only = small_file_system(read_only=True)
    refused(run_cli, "trial", "--from", trial, "--continue", "--set", "iterations=30", "--out", read_only / "on",
            contains=f"{read_only / 'on'}: cannot write there (Read-only file system)")
    full = small_file_system(size="12k")  # room for params.json, not for the checkpoint
    refused(run_cli, "trial", "--from", trial, "--continue", "--set", "iterations=30", "--out", full / "on",
            contains="cannot write there (No space left on device)")
    assert list(full.iterdir()) == []
