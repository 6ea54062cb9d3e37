import json
import pickle
import re
from pathlib import Path

import optuna
import pytest

from study._session import Resources, plan_resources, storage_note, trial_slots
from study.spec import DEFAULT_SEARCH, SearchSpace, StudySpec, load_spec, trial_config
from trainable.config import RECIPE, preset
from trainable.errors import ConfigError, UserError
from trainable.experiment import trial_params


def write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_default_space_covers_the_papers_axes_and_holds_the_baselines():
    spec = load_spec()
    for key in ("latent_size", "d_filters", "d_dropout", "g_beta1", "g_beta2", "normalization",
                "freeze_accuracy", "freeze_after"):
        assert key in spec.search
    remedies = ("d_norm", "g_spectral_norm", "conditioning", "loss", "r1_gamma", "diffaugment", "g_ema",
                "label_smoothing", "instance_noise", "minibatch_std", "d_steps")
    # The default space: the paper's axes, the learning rates and how D is told the label; every
    # remedy in the full one.
    assert [key for key in remedies if key in spec.search] == ["conditioning"]
    assert set(remedies) < set(load_spec(space="full").search) and set(spec.search) < set(load_spec(space="full").search)
    assert spec.baselines == ("V0", "V1", "V2", "recipe")
    points = spec.baseline_points()
    assert [p["latent_size"] for p in points] == [100, 80, 80, 100]
    assert points[0]["d_filters"] == "32,64,128" and points[1]["d_dropout"] == 0.3
    assert points[2]["freeze_after"] == 50000 and points[0]["freeze_after"] == "off"
    assert [p["conditioning"] for p in points] == ["concat"] * 3 + ["projection"]
    assert {k: points[3][k] for k in RECIPE} == RECIPE and points[3]["d_filters"] == "32,64,128"


def test_the_recipe_runs_only_where_the_space_can_express_it(tmp_path):
    # A study file that searches no remedy: the paper's baselines only, the recipe left out...
    spec = load_spec(write(tmp_path, '[search]\nlatent_size = [32, 80, 100]\nd_filters = ["16,32,64", "32,64,128"]\n'
                                     'd_dropout = [0.0, 0.3]\nfreeze_after = ["off", 50000]\n'
                                     'freeze_accuracy = ["off", 0.95]\n'))
    assert spec.baselines == ("V0", "V1", "V2")
    # ... unless it fixes the recipe's values; asked for by name where it cannot run, it is refused.
    fixed = load_spec(write(tmp_path, '[fixed]\nconditioning = "projection"\nnormalization = "[-1,1]"\n'
                                      f'g_lr = {RECIPE["g_lr"]}\nd_lr = {RECIPE["d_lr"]}\n[search]\nlatent_size = [80, 100]\n'
                                      '[study]\nbaselines = ["recipe"]\n'))
    assert fixed.baselines == ("recipe",)
    with pytest.raises(ConfigError, match="recipe needs conditioning, d_lr, g_lr, normalization searched"):
        load_spec(write(tmp_path, '[search]\nlatent_size = [80, 100]\n[study]\nbaselines = ["recipe"]\n'))
    with pytest.raises(ConfigError, match="expected a list of preset names"):
        load_spec(write(tmp_path, '[study]\nbaselines = "V0"\n'))


def test_baselines_that_are_one_point_of_the_space_run_once(tmp_path):
    # No freeze field searched: V2 (V1 plus freeze rules) is V1's trial.
    spec = load_spec(write(tmp_path, '[search]\nlatent_size = [80, 100]\nd_filters = ["16,32,64", "32,64,128"]\n'
                                     'd_dropout = [0.0, 0.3]\n'))
    assert spec.baselines == ("V0", "V1")
    points = spec.start_points()
    assert len(points) == len({tuple(sorted(point.items())) for point in points}) == 2
    # None of V1's fields searched either: V0 alone.
    assert load_spec(write(tmp_path, '[search]\ng_lr = {low = 1e-4, high = 1e-3}\n')).baselines == ("V0",)
    # Named by the study file, a preset that cannot run as itself is refused.
    with pytest.raises(ConfigError, match=r"^\[study\].baselines: V2 is the same point as V1 in this space \(it differs "
                                          r"in freeze_accuracy, freeze_after, not searched\); search them or leave V2 out$"):
        load_spec(write(tmp_path, '[study]\nbaselines = ["V1", "V2"]\n[search]\nd_dropout = [0.0, 0.3]\n'))


def test_the_papers_baselines_run_with_the_papers_method_or_not_at_all(tmp_path):
    # At the study's widths, batch size, length and normalization they are still the paper's...
    scaled = load_spec(write(tmp_path, '[fixed]\ng_filters = "8,8,4"\nbatch_size = 16\niterations = 300\n'
                                       'normalization = "[-1,1]"\n'))
    assert scaled.baselines[:3] == ("V0", "V1", "V2") and scaled.paper_departures() == {}
    # ...but a remedy or an Adam setting fixed away from the paper's would make "the paper's V0" another GAN.
    with pytest.raises(ConfigError, match=r'^\[fixed\] sets loss = "hinge", g_lr = 0.001, which the paper\'s baselines '
                                          r'did not use \(the paper: loss = "bce", g_lr = 0.0002\): move them from '
                                          r'\[fixed\] to \[search\] .* '
                                          r'\(baselines = \[\] for none\)$'):
        load_spec(write(tmp_path, '[fixed]\nloss = "hinge"\ng_lr = 1e-3\n'))
    with pytest.raises(ConfigError, match=r"^\[study\].baselines: V0 would not be the paper's here: \[fixed\] sets "
                                          r'r1_gamma = 1.0 \(the paper: r1_gamma = 0.0\); move it from \[fixed\] to '
                                          r'\[search\] .* or leave V0 out$'):
        load_spec(write(tmp_path, '[study]\nbaselines = ["V0"]\n[fixed]\nr1_gamma = 1.0\n'))
    # Searched with the paper's value among the choices, the field is the paper's in the baseline points.
    searched = load_spec(write(tmp_path, '[search]\nloss = ["bce", "hinge"]\n'
                                         'd_lr = {low = 1e-4, high = 2e-3, log = true}\n'))
    assert searched.baselines == ("V0",) and searched.baseline_points() == [{"loss": "bce", "d_lr": 2e-4}]
    # Left out, or none asked for, the study runs.
    assert load_spec(write(tmp_path, '[study]\nbaselines = []\n[fixed]\nloss = "hinge"\n')).baselines == ()


def test_a_choice_list_names_each_value_once_and_a_step_range_holds_only_its_steps(tmp_path):
    for values, message in (("[1, 1, 2]", "1 and 1"), ('["off", "none", 50000]', '"off" and "none"'),
                            ("[0, 0.0, 0.3]", "0 and 0.0")):
        key = "d_dropout" if "0.3" in values else "freeze_after" if "off" in values else "d_steps"
        with pytest.raises(ConfigError, match=rf"^\[search\].{key}: {re.escape(message)} are the same value; "
                                              "list each once$"):
            load_spec(write(tmp_path, f'[study]\nbaselines = []\n[search]\n{key} = {values}\n'))
    # V0's latent size 100 is not on the steps 32, 64, 96, 128: refused when the file is read.
    with pytest.raises(ConfigError, match=r"baseline V0: latent_size=100 lies outside the search space "
                                          r"\[32.0, 128.0\] in steps of 32"):
        load_spec(write(tmp_path, '[search]\nlatent_size = {low = 32, high = 128, step = 32}\n'))
    with pytest.raises(ConfigError, match=r"^\[fixed\] sets leaky_slope = 0.1, which the paper's baselines"):
        load_spec(write(tmp_path, '[fixed]\nleaky_slope = 0.1\n'))


def test_a_field_the_study_file_fixes_leaves_the_default_space_and_is_never_both(tmp_path):
    spec = load_spec(write(tmp_path, '[study]\nbaselines = []\n[fixed]\nloss = "hinge"\nlatent_size = 64\n'))
    assert "loss" not in spec.search and "latent_size" not in spec.search
    assert spec.base_config().loss == "hinge" and spec.base_config().latent_size == 64
    assert set(spec.search) == set(DEFAULT_SEARCH) - {"loss", "latent_size"}
    with pytest.raises(ConfigError, match=r"^\[fixed\].latent_size is also in \[search\]: a field is either fixed or "
                                          r"searched; keep one$"):
        load_spec(write(tmp_path, '[fixed]\nlatent_size = 64\n[search]\nlatent_size = [64, 100]\n'))
    # A default fixed value gives way to a search of the same field.
    assert "iterations" not in load_spec(write(tmp_path, '[study]\nbaselines = []\n[search]\niterations = [400, 800]\n')).fixed


def test_define_by_run_names_are_config_fields_and_make_valid_configs():
    spec = load_spec()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for point in spec.baseline_points():
        study.enqueue_trial(point)
    space = SearchSpace(spec)
    configs = []
    for _ in range(6):
        trial = study.ask()
        fixed = space(trial)
        configs.append(trial_config(trial.params, spec))
        assert set(trial.params) == set(spec.search) and fixed.items() >= spec.fixed.items()
        # Tune's config of the trial (its params.json) is what a local trial of that config writes
        assert {**fixed, **trial.params} == trial_params(trial_config(trial.params, spec))
        study.tell(trial, 1.0)
    # The first three trials are exactly the paper's presets at the study's fixed scale.
    for config, name in zip(configs, ("V0", "V1", "V2")):
        expected = preset(name)
        for key in spec.search:
            assert getattr(config, key) == getattr(expected, key), (name, key)


def test_spec_survives_the_round_trip_through_study_json():
    spec = load_spec()
    assert StudySpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("text,message", [
    ("[study]\nsampels = 3\n", "unknown key [study].sampels"),
    ("[serach]\n", "unknown section"),
    ("[search]\nlatent = [1, 2]\n", "[search].latent: not a config field"),
    ("[search]\nd_dropout = {low = 0.6, high = 0.2}\n", "low 0.6 must be below high 0.2"),
    ("[search]\nd_dropout = [0.1, 7.0]\n", "d_dropout: 7.0 out of range"),
    ("[search]\nlatent_size = [16, 32]\n", "baseline V0: latent_size=100 lies outside the search space"),
    ("[study]\nsamples = 2\n", "fewer than the 4 baselines"),
    ("[study]\nmetric = \"loss\"\n", "[study].metric"),
    ("[fixed]\niterations = -5\n", "iterations: -5 out of range"),
    ("[study]\nfinal_cas = \"yes\"\n", "[study].final_cas: expected true or false"),
    ("not toml = = 1", "not valid TOML"),
    # Values of the wrong type are refused before Ray starts, never read as something else.
    ('[study]\nsamples = "5"\n', "[study].samples: expected a whole number, got '5'"),
    ('[study]\nearly_stopping = "no"\n', "[study].early_stopping: expected true or false"),
    ('[study]\nbaselines = "V0"\n', "[study].baselines: expected a list of preset names"),
    ('[study]\nbaselines = [["V0"]]\n', "[study].baselines: expected a list of preset names"),
    ('[study]\ncpus_per_trial = "2"\n', "[study].cpus_per_trial: expected a number"),
    ("[study]\nseed = 1.5\n", "[study].seed: expected a whole number"),
    ("[study]\nreduction_factor = 1\n", "[study].reduction_factor: 1 is below the least allowed, 2"),
    ("study = 5\n", "[study] must be a table"),
    ('[search]\nlatent_size = {low = "8", high = 100}\n', "[search].latent_size: low must be a number"),
    ('[search]\ng_lr = {low = 1e-4, high = 1e-3, log = "yes"}\n', "[search].g_lr: log must be true or false"),
    ('[fixed]\niterations = "many"\n', "iterations: cannot read 'many' as a number"),
])
def test_bad_study_files_are_refused_with_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_spec(write(tmp_path, text))
    assert message in str(error.value)


def test_final_cas_is_an_opt_in_study_option_kept_in_study_json(tmp_path):
    assert load_spec().final_cas is False
    spec = load_spec(write(tmp_path, "[study]\nfinal_cas = true\n"))
    assert spec.final_cas is True and StudySpec.from_dict(spec.to_dict()).final_cas is True


def test_missing_study_file(tmp_path):
    with pytest.raises(ConfigError, match="no such study file"):
        load_spec(tmp_path / "nope.toml")


def test_a_folder_or_a_file_in_another_encoding_is_no_study_file(tmp_path):
    with pytest.raises(ConfigError, match="a folder, not a study file"):
        load_spec(tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[study]\n# r\u00e9sum\u00e9\nsamples = 5\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_spec(latin)


def test_study_file_overrides_defaults(tmp_path):
    spec = load_spec(write(tmp_path, '[study]\nsamples = 7\n[fixed]\niterations = 300\n'
                                     '[search]\nlatent_size = [80, 100]\nd_filters = ["16,32,64", "32,64,128"]\n'
                                     'd_dropout = [0.0, 0.3]\nfreeze_after = ["off", 50000]\n'
                                     'freeze_accuracy = ["off", 0.95]\n'), samples=9)
    assert spec.samples == 9 and spec.fixed["iterations"] == 300 and set(spec.search) == {
        "latent_size", "d_filters", "d_dropout", "freeze_after", "freeze_accuracy"}
    assert set(DEFAULT_SEARCH) > set(spec.search)


CPU_NODE = {"Alive": True, "Resources": {"CPU": 8.0}}
GPU_NODE = {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 1.0}}


def test_gpu_share_without_gpus_runs_on_cpu():
    resources = plan_resources(load_spec(gpus_per_trial=0.25), [CPU_NODE])
    assert resources.gpus == 0 and "running on CPU" in resources.note
    waiting = plan_resources(load_spec(gpus_per_trial=0.25), [CPU_NODE], wait_for_gpus=True)
    assert waiting.gpus == 0.25


def test_gpu_share_with_gpus_is_kept():
    assert plan_resources(load_spec(gpus_per_trial=0.25), [CPU_NODE, GPU_NODE]) == Resources(1.0, 0.25)


def test_trial_slots_count_what_the_live_nodes_can_run_at_once():
    dead = {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}
    assert trial_slots(Resources(1.0, 0.0), [CPU_NODE, GPU_NODE, dead]) == 24
    assert trial_slots(Resources(3.0, 0.0), [CPU_NODE, GPU_NODE]) == 2 + 5
    assert trial_slots(Resources(1.0, 0.25), [CPU_NODE, GPU_NODE, dead]) == 4  # the GPU node's GPU, 4 ways
    assert trial_slots(Resources(2.0, 0.0), []) == 1  # never 0: a cluster still to come


def test_requests_no_node_can_hold_are_refused():
    with pytest.raises(UserError, match="--gpus-per-trial 2 can never be satisfied: the largest node has 1 GPU"):
        plan_resources(load_spec(gpus_per_trial=2), [GPU_NODE])
    with pytest.raises(UserError, match="--cpus-per-trial 32 can never be satisfied"):
        plan_resources(load_spec(cpus_per_trial=32), [CPU_NODE, GPU_NODE])
    with pytest.raises(ConfigError, match="a fraction must be at most 1"):
        load_spec(gpus_per_trial=1.5)


def test_a_local_storage_path_on_a_cluster_of_several_nodes_is_warned_of():
    two = [CPU_NODE, GPU_NODE]
    assert "is a local path on a cluster of 2 node(s)" in storage_note("/home/me/studies", two, joined=True)
    assert "and more to come" in storage_note("/home/me/studies", [CPU_NODE], joined=True, more_coming=True)
    assert storage_note("s3://bucket/studies", two, joined=True) == ""
    assert storage_note("/home/me/studies", [CPU_NODE], joined=True) == ""  # one machine: its own disk is fine
    assert storage_note("runs/studies", two, joined=False) == ""  # an embedded Ray is one machine


def test_the_processes_a_killed_driver_left_are_ended_by_the_next(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from study._session import end_leftovers, record_session

    record = tmp_path / "ray_session.json"
    # An agent as Ray's are: it ignores SIGTERM, and it outlives the driver that started it.
    agent = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint(1, flush=True)\ntime.sleep(120)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        agent.stdout.readline()
        record_session(record)
        os.kill(agent.pid, signal.SIGTERM)
        time.sleep(0.2)
        assert agent.poll() is None
        assert agent.pid in end_leftovers(record)
        assert agent.wait(timeout=10) == -signal.SIGKILL and not record.exists()
        # A pid that names another process now (its start time differs) is left alone.
        record.write_text(json.dumps({"processes": [[os.getpid(), 1]]}))
        assert end_leftovers(record) == []
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_the_demo_study_file_runs_the_papers_v0_beside_the_recipe():
    spec = load_spec(Path(__file__).parents[2] / "examples" / "demo.toml")
    assert spec.baselines == ("V0", "recipe") and spec.samples > len(spec.baselines)
    v0, recipe = spec.baseline_points()
    assert {key: recipe[key] for key in RECIPE} == RECIPE and v0["conditioning"] == "concat"


def test_the_earlier_space_of_the_search_benchmark_is_the_full_space_with_its_old_rates():
    # benchmarks/earlier_space.toml: the default space before today's draws (docs/search.md compares).
    earlier = load_spec(Path(__file__).parents[2] / "benchmarks" / "earlier_space.toml")
    full = load_spec(space="full")
    assert earlier.search.keys() == full.search.keys() and not earlier.lengthen
    assert {key for key in full.search if earlier.search[key] != full.search[key]} == {"g_lr", "d_lr"}
    assert (earlier.search["g_lr"].low, earlier.search["g_lr"].high, earlier.search["g_lr"].log) == (5e-5, 2e-3, True)
    # The paper's V0, V1, V2 (2e-4) and the recipe (2e-3, the top of the range) are points of it.
    assert [point["g_lr"] for point in earlier.baseline_points()] == [2e-4, 2e-4, 2e-4, 2e-3]


def test_the_space_setting_and_its_refusals(tmp_path):
    assert load_spec().space == "default" and load_spec(space="full").space == "full"
    with pytest.raises(ConfigError, match="\\[study\\].space: expected one of default, full, got 'all'"):
        load_spec(space="all")
    both = write(tmp_path, '[study]\nspace = "full"\n[search]\nlatent_size = [32, 100]\n')
    with pytest.raises(ConfigError, match="a \\[search\\] section is the study's space; give one of them"):
        load_spec(both)


def test_a_study_whose_trials_the_collapse_verdict_can_never_judge_is_told_so(tmp_path):
    def note(fixed):
        (tmp_path / "study.toml").write_text("[fixed]\n" + fixed)
        return load_spec(tmp_path / "study.toml").unjudged_note()

    # 800 iterations every 300 (the defaults' grace 600, patience 3): reports at 600 and 800 only.
    assert note("iterations = 800\n") == (
        "the collapse verdict never judges a trial: it needs 3 evaluations from iteration 600 on "
        "(collapse_patience, collapse_grace), and a trial of 800 iterations evaluated every 300 has 2; lower "
        "[fixed] collapse_grace or eval_every to have collapses stopped")
    assert note("iterations = 1000\n") is None  # 600, 900 and the last report at 1000
    assert note("iterations = 800\ncollapse_grace = 100000\n") is None  # the verdict turned off: no note
    assert load_spec().unjudged_note() is None


def test_a_study_saved_before_lengthen_resumes_without_it():
    raw = load_spec().to_dict()
    assert raw["lengthen"] is True and StudySpec.from_dict(raw).lengthen
    del raw["lengthen"]  # study.json of a study run before the setting: its trials kept their length
    assert StudySpec.from_dict(raw).lengthen is False
    pickled = load_spec()  # a study's searcher is pickled with its spec: one pickled before the setting
    del pickled.__dict__["lengthen"]
    assert pickle.loads(pickle.dumps(pickled)).lengthen is False
