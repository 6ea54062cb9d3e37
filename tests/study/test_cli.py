import pytest

from study.cli import COMMANDS, AnalyzeReplay, build_parser, find_command


def test_a_command_is_the_longest_run_of_words_that_names_one():
    assert find_command(["analyze", "runs/studies/demo", "--top", "3"]) == "analyze"
    assert find_command(["analyze", "replay", "runs/studies/demo"]) == "analyze replay"
    assert COMMANDS[find_command(["analyze", "replay", "x"])] is AnalyzeReplay
    assert find_command(["study", "run", "--samples", "3"]) == "study run"
    assert find_command(["study"]) is None and find_command(["--help"]) is None and find_command([]) is None


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_and_its_own_options(name, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser(name).parse_args(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: cgan-study {name} ")
    assert COMMANDS[name].help


def test_the_command_list_and_its_errors(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0 and all(name in out for name in COMMANDS)
    code, out, _ = run_cli("data", "--help")
    assert code == 0 and "data synth" in out and "study run" not in out
    code, _, err = run_cli()
    assert code == 2 and "which command?" in err
    code, _, err = run_cli("study", "frob")
    assert code == 2 and "unknown command 'study frob'" in err


def test_replay_options_belong_to_replay_only():
    args = build_parser("analyze replay").parse_args(["runs/studies/demo", "--seeds", "5"])
    assert args.seeds == 5 and args.top == 3 and args.storage is None
    with pytest.raises(SystemExit):
        build_parser("analyze").parse_args(["runs/studies/demo", "--seeds", "5"])


def test_replay_takes_a_study_by_its_name_as_the_other_commands_do(run_cli, tmp_path, monkeypatch):
    import study.replay
    from tests.synthetic_study import write_synthetic_study

    write_synthetic_study(tmp_path / "store" / "mine", trials=4, evaluations=2)
    given = []

    def run_replay(source, **options):  # stands in for the re-run study (tests/e2e/test_analysis.py runs one)
        given.append((source, options["storage"]))
        raise study.replay.UserError("stop here")

    monkeypatch.setattr(study.replay, "run_replay", run_replay)
    code, _, err = run_cli("analyze", "replay", "mine", "--storage", tmp_path / "store", "--top", 1)
    assert code == 1 and err.strip().endswith("stop here")
    assert given == [(tmp_path / "store" / "mine", str(tmp_path / "store"))]
    code, _, err = run_cli("analyze", "replay", tmp_path / "store" / "mine")  # a folder, the re-run beside it
    assert code == 1 and given[-1] == (tmp_path / "store" / "mine", None)
    code, _, err = run_cli("analyze", "replay", "other", "--storage", tmp_path / "store")
    assert code == 1 and len(given) == 2 and len(err.strip().splitlines()) == 1 and "no study 'other'" in err


def test_a_driver_refused_on_a_new_study_name_leaves_the_winners_lock(tmp_path, lock_holder, monkeypatch):
    """Two `study run`s race on a new name: the loser, which saw no folder when it began, must not
    remove the lock and folder of the winner, or a third driver could lock while the winner runs."""
    import study.runner as runner
    from trainable.errors import UserError
    from trainable.experiment import driver_lock

    folder = tmp_path / "race"
    holders = []

    def winner_first(path, what):
        holders.append(lock_holder(path))  # the other driver locks between our look and our lock
        return driver_lock(path, what)

    monkeypatch.setattr(runner, "driver_lock", winner_first)
    with pytest.raises(UserError, match=f"in use by another driver \\(pid {{}}\\)".replace("{}", "[0-9]+")):
        with runner._one_driver(folder, "race"):
            pass
    assert (folder / "driver.lock").read_text().strip() == str(holders[0].pid)
    with pytest.raises(UserError, match=f"pid {holders[0].pid}"):  # and a third is still kept out
        with driver_lock(folder, "x"):
            pass


def test_a_lock_whose_file_was_removed_under_it_is_taken_again_on_the_new_file(tmp_path, monkeypatch):
    import os

    from trainable import experiment

    folder = tmp_path / "t"
    folder.mkdir()
    calls = []
    real = experiment._same_file

    def removed_once(fd, path):
        if not calls:
            calls.append(1)
            os.unlink(path)  # the previous holder cleaning up as we locked its file
        return real(fd, path)

    monkeypatch.setattr(experiment, "_same_file", removed_once)
    with experiment.driver_lock(folder, "x"):
        inode = os.stat(folder / "driver.lock").st_ino
        assert (folder / "driver.lock").read_text().strip() == str(os.getpid())
    assert calls and inode == os.stat(folder / "driver.lock").st_ino


def test_a_trial_folder_on_a_read_only_file_system_is_one_line(run_cli, small_file_system):
    place = small_file_system(read_only=True)
    code, out, err = run_cli("trial", "--out", place / "t", "--set", "iterations=1")
    assert code == 1 and err.strip().splitlines() == [f"cgan-study: error: {place / 't'}: cannot write there "
                                                      "(Read-only file system)"]
