"""The study's live view: one line per trial event, an ended trial's reason from the ledger, the
progress and an ETA by trials or, under a budget, by iterations."""

from __future__ import annotations

import re
import types

from study._progress import ProgressLines, clock
from study._stopping import StopLedger
from study.spec import load_spec
from trainable.experiment import COND_ACCURACY, FID_INTRA, MODE_COLLAPSE


def _trial(trial_id, config, last=None):
    return types.SimpleNamespace(trial_id=trial_id, config=config, last_result=last or {})


def test_a_trial_s_start_reports_and_end_are_one_line_each(tmp_path, capsys):
    spec = load_spec(samples=4)
    view = ProgressLines(spec, str(tmp_path))
    view.setup()
    v0 = {**spec.fixed, **spec.baseline_points()[0]}
    searched = {**v0, "latent_size": 33}
    view.on_trial_start(0, [], _trial("aaaa0000", v0))
    view.on_trial_start(0, [], _trial("bbbb1111", searched))
    view.on_trial_result(0, [], _trial("aaaa0000", v0), {"iteration": 300, FID_INTRA: 41.234, COND_ACCURACY: 0.191})
    StopLedger(tmp_path).record("bbbb1111", MODE_COLLAPSE, "one face", 600)
    view.on_trial_complete(0, [], _trial("bbbb1111", searched, {"iteration": 600, FID_INTRA: 99.0, COND_ACCURACY: 0.1}))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(re.match(r"\[ *0:\d\d\] trial_", line) for line in lines), lines
    assert "trial_aaaa0000 started   V0: latent_size 100" in lines[0]
    assert "trial_bbbb1111 started   searched: latent_size 33" in lines[1]
    view.on_trial_start(0, [], _trial("dddd3333", {**searched, "iterations": 2400}))  # lengthened by the study
    assert "trial_dddd3333 started   searched (2400 iterations): latent_size 33" in capsys.readouterr().out
    assert all(len(line) <= 130 for line in lines[:2])
    assert "iter 300" in lines[2] and "FD-intra 41.2" in lines[2] and "acc 0.19" in lines[2]
    assert "mode-collapse at 600: FD-intra 99" in lines[3] and "1 of 4 trials, ETA" in lines[3]


def test_under_a_budget_progress_counts_iterations(tmp_path, capsys):
    spec = load_spec(budget=3000)
    view = ProgressLines(spec, str(tmp_path))
    trial = _trial("cccc2222", {**spec.fixed, **spec.baseline_points()[0]}, {"iteration": 1200})
    view.on_trial_result(0, [], trial, {"iteration": 1200})
    view.on_trial_complete(0, [], trial)
    assert "completed at 1200" in capsys.readouterr().out.splitlines()[-1]
    assert "1200 of 3000 iterations" in view._progress()
    # A trial that goes on from another's end ([study] lengthen) counts what it trains from there.
    going_on = _trial("eeee4444", {**spec.fixed, **spec.baseline_points()[0], "latent_size": 33, "iterations": 2400,
                                   "continues": {"trial": "cccc2222", "uri": "x", "iteration": 1200}})
    view.on_trial_start(0, [], going_on)
    assert "searched (2400 iterations), going on from trial_cccc2222 at 1200" in capsys.readouterr().out
    view.on_trial_result(0, [], going_on, {"iteration": 1500})
    assert "1500 of 3000 iterations" in view._progress()


def test_clock():
    assert clock(5) == "0:05" and clock(125) == "2:05" and clock(3725) == "1:02:05"
