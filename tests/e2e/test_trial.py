"""End to end: the `cgan-study trial` command learns conditional faces on CPU in minutes."""

import json

import pytest

from study.cli import main

# Measured on the built-in set (2 cores): the reference recipe (projection D, [-1,1], lr 2e-3)
# with the paper's discriminator (32,64,128) against a 1/8-width generator reached the judge's
# conditional accuracy 0.52 at 900 iterations and 0.55 at 1200 (chance: 1/7 = 0.14; the paper's
# V0 0.17). The threshold is twice chance.
LEARNS = ["--preset", "recipe", "--set", "g_filters=32,16,8", "--set", "latent_size=32",
          "--set", "iterations=1200", "--set", "eval_every=300"]


@pytest.mark.slow
def test_small_model_learns_conditional_expressions(tmp_path, capsys):
    out = tmp_path / "trial"
    assert main(["trial", *LEARNS, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "result.json").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [300, 600, 900, 1200]
    final = rows[-1]
    assert final["stop_reason"] == "completed" and final["verdict"] == "none"
    assert final["cond_accuracy"] >= 2 / 7, final
    assert final["fid_intra"] < rows[0]["fid_intra"]
    assert final["diversity_min"] > 0.5
    grids = sorted((out / "grids").glob("iteration_???????.png"))  # not the .thumb.png beside each
    assert len(list((out / "grids").glob("*.thumb.png"))) == 4
    assert len(grids) == 4 and all(grid.stat().st_size > 1000 for grid in grids)
    assert (out / "progress.csv").read_text().count("\n") == 5
    printed = capsys.readouterr().out
    assert "stopped: completed at iteration 1200" in printed and "conditional accuracy" in printed


@pytest.mark.slow
def test_trial_command_rejects_bad_input_before_training(tmp_path, capsys):
    assert main(["trial", "--set", "latent_sise=3", "--out", str(tmp_path / "t")]) == 1
    assert "unknown config key 'latent_sise'" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    assert main(["trial", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "t")]) == 1
    assert "no such prepared data file" in capsys.readouterr().err
