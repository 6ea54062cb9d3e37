"""Bad input to the study and trial commands: exit 1, one line naming what is wrong, no traceback,
nothing written, and nothing starts Ray first (these tests run no Ray)."""

import json

import pytest


def _refused(run_cli, *args, message):
    code, _, err = run_cli(*args)
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("command", [("study", "run", "--name"), ("analyze", "replay", "--name")])
@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "/abs"])
def test_a_study_name_is_a_name_not_a_path(run_cli, tmp_path, command, name):
    storage = tmp_path / "studies"
    source = tmp_path / "source"  # a replay's source: refused for its name before it is read
    (source / "trial_1").mkdir(parents=True)
    (source / "study.json").write_text(json.dumps({"spec": {}}))
    args = [*command[:-1], *([source] if command[0] == "analyze" else []), command[-1], name, "--storage", storage]
    _refused(run_cli, *args, message="use letters, digits")
    assert not storage.exists() and not (tmp_path / "x").exists()


def test_resume_and_status_take_names_too(run_cli, tmp_path):
    _refused(run_cli, "study", "resume", "../x", "--storage", tmp_path, message="study name '../x'")
    _refused(run_cli, "study", "status", "../x", "--storage", tmp_path, message="../x: not a study folder")


def test_inputs_that_gave_tracebacks_get_one_line(run_cli, tmp_path, tiny_data):
    data = tiny_data[0]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[study]\n# \xe9\nsamples = 5\n")
    _refused(run_cli, "study", "run", "--config", tmp_path, message="a folder, not a study file")
    _refused(run_cli, "study", "run", "--config", latin, message="not UTF-8 text")
    _refused(run_cli, "study", "run", "--data", data, "--name", "s", "--storage", a_file / "sub",
             message=f"{a_file} is a file, not a folder")
    _refused(run_cli, "study", "run", "--judge-steps", "0", message="--judge-steps 0: must be at least 1")
    _refused(run_cli, "trial", "--resume", a_file, message="not a folder; --resume takes a trial folder")
    _refused(run_cli, "trial", "--judge-steps", "0", "--out", tmp_path / "t", message="--judge-steps 0")
    _refused(run_cli, "analyze", "replay", tmp_path / "missing", message="missing: no such folder")
    _refused(run_cli, "data", "synth", "--out", tmp_path / "synth", "--count", "0", message="--count 0")
    assert not (tmp_path / "t").exists() and not (tmp_path / "synth").exists()


def test_a_study_file_with_a_wrong_type_is_refused_before_ray(run_cli, tmp_path):
    config = tmp_path / "study.toml"
    config.write_text('[study]\nsamples = "5"\n')
    _refused(run_cli, "study", "run", "--config", config, "--storage", tmp_path, message="[study].samples")
    config.write_text('[study]\nearly_stopping = "no"\n')
    _refused(run_cli, "study", "run", "--config", config, "--storage", tmp_path, message="[study].early_stopping")


def test_status_and_analyze_read_a_result_json_with_records_that_are_not_reports(run_cli, tmp_path):
    study = tmp_path / "studies" / "s"
    trial = study / "trial_1"
    trial.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"name": "s", "spec": {"search": {}}, "baselines": {}}))
    (trial / "params.json").write_text(json.dumps({"latent_size": 8}))
    rows = [{"iteration": 10, "fid_intra": 3.0, "cond_accuracy": 0.2}, None, [1], {"iteration": "20"}]
    (trial / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, out, err = run_cli("study", "status", "s", "--storage", tmp_path / "studies")
    assert code == 0, err
    assert "skipped 3 unreadable entries" in out


def test_an_address_where_nothing_listens_fails_in_time_and_leaves_nothing(run_cli, tmp_path, tiny_data):
    import socket
    import time

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    _refused(run_cli, "study", "run", "--data", tiny_data[0], "--judge-steps", "60", "--name", "s",
             "--storage", tmp_path / "studies", "--address", f"127.0.0.1:{port}", "--connect-timeout", "2",
             message=f"cannot join Ray at 127.0.0.1:{port}: nothing answers there after 2 s")
    assert time.monotonic() - started < 20
    assert not (tmp_path / "studies" / "s").exists()  # the folder made for its lock went again


def test_one_driver_per_study_the_second_is_told_the_holders_pid(run_cli, tmp_path, lock_holder):
    from study.spec import load_spec

    study = tmp_path / "studies" / "s"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"name": "s", "spec": load_spec().to_dict(),
                                                  "storage_uri": str(study)}))
    holder = lock_holder(study)
    _refused(run_cli, "study", "resume", "s", "--storage", tmp_path / "studies",
             message=f"study 's' is in use by another driver (pid {holder.pid})")
    holder.kill()  # as a crash would: the OS releases the lock
    holder.wait()
    # The next driver gets as far as the (here missing) saved state.
    _refused(run_cli, "study", "resume", "s", "--storage", tmp_path / "studies",
             message="has no saved experiment state")
