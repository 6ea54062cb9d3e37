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
