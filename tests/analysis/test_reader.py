import json

from analysis import rank, read_experiment
from trainable.config import TrainConfig


def make_trial(root, name, params, rows, stop=None, partial_line=False):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if partial_line:
        text += '{"iteration": 99, "fid_in'
    (folder / "result.json").write_text(text)
    if stop:
        (folder / "stop_reason.json").write_text(json.dumps({"stop_reason": stop, "evidence": f"{stop} evidence"}))
    return folder


def test_study_folder_ranks_by_score_collapsed_below_the_judged_healthy_and_marks_baselines(tmp_path):
    baseline = {"latent_size": 100, "d_filters": "32,64,128"}
    window = {"collapse_grace": 10, "collapse_patience": 1}  # the verdict judges from the report at 10 on
    (tmp_path / "study.json").write_text(json.dumps({"baselines": {"V0": baseline}}))
    make_trial(tmp_path, "trial_a", {"latent_size": 64, "d_filters": "8,16,32", **window},
               [{"iteration": 10, "fid_intra": 1.0}], stop="mode-collapse")
    make_trial(tmp_path, "trial_b", {**baseline, "g_lr": 2e-4, **window}, [{"iteration": 10, "fid_intra": 9.0}],
               stop="completed")
    make_trial(tmp_path, "trial_c", {"latent_size": 80, "d_filters": "8,16,32", "collapse_grace": 30},
               [{"iteration": 10, "fid_intra": 5.0}, {"iteration": 20, "fid_intra": 4.0}], stop="asha",
               partial_line=True)
    make_trial(tmp_path, "trial_d", {"latent_size": 80}, [])  # started, nothing reported yet
    make_trial(tmp_path, "trial_f", {"latent_size": 80, **window}, [{"iteration": 10, "fid_intra": 0.5}],
               stop="error")
    make_trial(tmp_path, "trial_g", {"latent_size": 80, "collapse_grace": 30}, [{"iteration": 10, "fid_intra": 12.0}],
               stop="asha")
    (tmp_path / "trial_e").mkdir()  # created by Ray, no params yet
    experiment = read_experiment(tmp_path)
    ranked = [t.name for t in rank(experiment.trials)]
    # The collapsed a has the best score but ranks below b, which the verdict judged healthy; c and g,
    # stopped before the verdict's window (grace 30), were never judged and rank by their scores: c
    # above b, g below a. The errored f and d, with no score, come last.
    assert ranked == ["trial_c", "trial_b", "trial_a", "trial_g", "trial_f", "trial_d"]
    assert [t.judged for t in sorted(experiment.trials, key=lambda t: t.name)] == [True, True, False, False, True, False]
    by_name = {t.name: t for t in experiment.trials}
    assert by_name["trial_b"].baseline == "V0" and by_name["trial_c"].baseline is None
    assert by_name["trial_d"].stop_reason == "running"
    assert by_name["trial_a"].evidence == "mode-collapse evidence"
    assert len(by_name["trial_c"].rows) == 2
    assert any("trial_c" in s and "incomplete JSON" in s for s in experiment.skipped)
    assert any("trial_e" in s and "no params.json" in s for s in experiment.skipped)



def test_a_baseline_is_the_trial_that_started_as_it_not_one_that_took_its_params(tmp_path):
    """Under PBT a trial can take the V0 trial's weights and config (PB2 copies it exactly until
    its GP has data): it ends with V0's params, but the driver recorded it started elsewhere."""
    baseline = {"latent_size": 100, "g_lr": 2e-4}
    (tmp_path / "study.json").write_text(json.dumps({"baselines": {"V0": baseline}}))
    make_trial(tmp_path, "trial_v0", dict(baseline), [{"iteration": 10, "fid_intra": 9.0}], stop="completed")
    make_trial(tmp_path, "trial_copy", dict(baseline), [{"iteration": 10, "fid_intra": 8.0}], stop="completed")
    make_trial(tmp_path, "trial_old", dict(baseline), [{"iteration": 10, "fid_intra": 7.0}], stop="completed")
    (tmp_path / "started_as.jsonl").write_text('{"trial_id": "v0", "baseline": "V0"}\n'
                                               '{"trial_id": "copy", "baseline": null}\n')
    by_name = {t.name: t.baseline for t in read_experiment(tmp_path).trials}
    # trial_old: a study from before the record, matched by its params as before
    assert by_name == {"trial_v0": "V0", "trial_copy": None, "trial_old": "V0"}

def test_a_trial_whose_params_do_not_name_the_verdicts_window_is_judged_on_the_defaults(tmp_path):
    grace, patience = TrainConfig().collapse_grace, TrainConfig().collapse_patience
    rows = [{"iteration": grace + 100 * i, "fid_intra": 3.0} for i in range(patience)]
    assert read_experiment(make_trial(tmp_path, "whole", {}, rows, stop="completed")).trials[0].judged
    assert not read_experiment(make_trial(tmp_path, "short", {}, rows[:-1], stop="asha")).trials[0].judged


def test_single_local_trial_folder_reads_the_same_way(tmp_path):
    folder = make_trial(tmp_path, "one", {"preset": "V1", "latent_size": 80},
                        [{"iteration": 5, "fid_intra": 3.0, "stop_reason": "completed"}])
    experiment = read_experiment(folder)
    assert experiment.study is None and len(experiment.trials) == 1
    trial = experiment.trials[0]
    assert trial.stop_reason == "completed" and trial.baseline == "V1" and trial.score == 3.0


def test_a_local_trial_is_its_preset_only_while_its_gan_is_the_presets(tmp_path):
    from trainable.config import preset
    from trainable.experiment import trial_params

    rows = [{"iteration": 5, "fid_intra": 3.0, "stop_reason": "completed"}]
    run_length_only = trial_params(preset("V2", iterations=500, eval_every=50, seed=4), preset="V2")
    wider = trial_params(preset("V0", g_filters=(32, 16, 8)), preset="V0")
    assert read_experiment(make_trial(tmp_path, "a", run_length_only, rows)).trials[0].baseline == "V2"
    assert read_experiment(make_trial(tmp_path, "b", wider, rows)).trials[0].baseline is None


def test_reports_redone_after_a_restart_are_counted_once(tmp_path):
    rows = [{"iteration": i, "fid_intra": float(i)} for i in (20, 40, 60)]
    redone = [{"iteration": i, "fid_intra": float(i) + 0.5} for i in (60, 80)]
    folder = make_trial(tmp_path, "trial_x", {"latent_size": 80}, rows + redone, stop="completed")
    trial = read_experiment(folder.parent).trials[0]
    assert [(r["iteration"], r["fid_intra"]) for r in trial.rows] == [(20, 20.0), (40, 40.0), (60, 60.5), (80, 80.5)]


def test_class_names_come_from_the_study_and_the_count_else_from_the_per_class_scores(tmp_path):
    rows = [{"iteration": 10, "fid_intra": 3.0, "fid_per_class": [3.0] * 8}]
    (tmp_path / "named").mkdir()
    (tmp_path / "named" / "study.json").write_text(json.dumps({"classes": ["circle", "square", "star"]}))
    make_trial(tmp_path / "named", "trial_a", {}, rows, stop="completed")
    named = read_experiment(tmp_path / "named")
    assert named.class_names == ["circle", "square", "star"] and named.class_count == 3
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "study.json").write_text(json.dumps({"baselines": {}}))  # a study from before
    make_trial(tmp_path / "older", "trial_a", {}, rows, stop="completed")
    older = read_experiment(tmp_path / "older")
    assert older.class_names is None and older.class_count == 8
