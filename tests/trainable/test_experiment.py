import json

from analysis import read_experiment
from trainable.config import TrainConfig, preset
from trainable.experiment import (COMPLETED, ERROR, INTERRUPTED, MODE_COLLAPSE, RUNNING, read_results,
                                  read_stop_reason, split_params, trial_params, write_stop)
from trainable.trial_dir import TrialDirectory


def _trial(tmp_path, lines):
    folder = tmp_path / "trial"
    TrialDirectory(folder).create({"latent_size": 8, "preset": "V0"})
    (folder / "result.json").write_text("".join(line + "\n" for line in lines))
    return folder


def test_one_reader_for_a_local_trial_and_for_analysis(tmp_path):
    rows = [json.dumps({"iteration": i, "fid_intra": float(i)}) for i in (10, 20, 30)]
    folder = _trial(tmp_path, [rows[0], '{"iteration": 15, "fid_in', rows[1], rows[2]])
    skipped = []
    assert [r["iteration"] for r in read_results(folder, skipped)] == [10, 20, 30]
    assert len(skipped) == 1 and "line 2: incomplete JSON" in skipped[0]
    # the trainer's own folder and the analysis reader see the same reports
    assert TrialDirectory(folder).results() == read_experiment(folder).trials[0].rows


def test_a_restart_keeps_one_lineage_and_drops_tunes_config_copy(tmp_path):
    rows = [{"iteration": i, "config": {"latent_size": 8}} for i in (10, 20, 30, 20, 30, 40)]
    folder = _trial(tmp_path, [json.dumps(row) for row in rows])
    assert read_results(folder) == [{"iteration": i} for i in (10, 20, 30, 40)]


def test_stop_reason_from_the_driver_then_the_last_row_then_the_error_file(tmp_path):
    folder = _trial(tmp_path, [])
    assert read_stop_reason(folder, []) == (RUNNING, "")
    (folder / "error.txt").write_text("Traceback\nRuntimeError: boom\n")
    assert read_stop_reason(folder, []) == (ERROR, "RuntimeError: boom")
    last = {"iteration": 5, "stop_reason": INTERRUPTED, "verdict_evidence": ""}
    assert read_stop_reason(folder, [last]) == (INTERRUPTED, "")
    write_stop(folder, {"trial_id": "x", "stop_reason": MODE_COLLAPSE, "evidence": "alike"})
    assert read_stop_reason(folder, [last]) == (MODE_COLLAPSE, "alike")
    (folder / "stop_reason.json").write_text('{"stop_rea')  # cut by a kill: the next source counts
    assert read_stop_reason(folder, [{**last, "stop_reason": COMPLETED}]) == (COMPLETED, "")


def test_params_hold_the_study_form_and_read_back_to_the_same_config():
    config = preset("V2", freeze_after=None)
    params = trial_params(config, preset="V2", data="builtin:synthetic", judge_steps=10)
    assert params["d_filters"] == "16,32,64" and params["freeze_after"] == "off" and params["latent_size"] == 80
    values, meta = split_params(json.loads(json.dumps(params)))
    assert TrainConfig.from_dict(values) == config
    assert meta == {"preset": "V2", "data": "builtin:synthetic", "judge_steps": 10}


def test_valid_json_that_is_not_a_report_is_skipped_and_named(tmp_path):
    good = [json.dumps({"iteration": i, "fid_intra": float(i)}) for i in (10, 20)]
    folder = _trial(tmp_path, [good[0], "null", "[1, 2]", '"text"', '{"iteration": "30"}',
                               '{"iteration": 40, "fid_intra": "low"}', '{"iteration": true}', good[1]])
    skipped = []
    assert [r["iteration"] for r in read_results(folder, skipped)] == [10, 20]
    assert len(skipped) == 6, skipped
    assert "line 2: a JSON NoneType, not a record" in skipped[0] and "iteration '30'" in skipped[3]


def test_reports_made_count_what_each_report_trained_in_the_order_they_were_made(tmp_path):
    """The benchmarks' measure of compute: a report made again from a checkpoint counts its trial's
    interval again; a trial that went on from another's end counts from there, not from 0."""
    from trainable.experiment import reports_made

    def trial(name, params, rows):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps(params))
        (folder / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))

    trial("trial_a", {"eval_every": 300}, [{"iteration": 300, "timestamp": 1}, {"iteration": 600, "timestamp": 3},
                                          {"iteration": 600, "timestamp": 5}])  # redone after a retry
    trial("trial_b", {"eval_every": 300, "continues": {"trial": "a", "uri": "x", "iteration": 600}},
          [{"iteration": 900, "timestamp": 6}, {"iteration": 1200, "timestamp": 7}])
    trial("trial_c", {"eval_every": 150}, [{"iteration": 150, "timestamp": 2}, {"iteration": "?", "timestamp": 4}])
    made = reports_made(tmp_path)
    assert [(when, spent, row["iteration"]) for when, spent, row in made] == [
        (1, 300, 300), (2, 150, 150), (3, 300, 600), (5, 300, 600), (6, 300, 900), (7, 300, 1200)]
