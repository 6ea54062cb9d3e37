"""The ``cgan-study`` console script: one entry point, a table of commands.

Each command is a class with its own arguments (``add_arguments``) and its own action
(``run``), as in Optuna's cli.py; ``COMMANDS`` maps the words a user types to it. A command is
found by the longest run of words that names one, so ``analyze DIR`` and ``analyze replay DIR``
are two commands. The commands live by group in study/_cli_data.py, _cli_trial.py,
_cli_study.py and _cli_analyze.py, their shared parts in study/_command.py. Heavy imports
(torch, ray, plotly) happen inside ``run``, so ``cgan-study --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from study._cli_analyze import Analyze, AnalyzeCas, AnalyzeReplay, AnalyzeSchedule
from study._cli_data import DataExportPickle, DataFuse, DataImportPickle, DataInfo, DataPrepare, DataSynth
from study._cli_study import StudyResume, StudyRun, StudyStatus
from study._cli_trial import Generate, Trial
from study._command import DESCRIPTION, PROG, Command
from trainable.errors import UserError


COMMANDS: dict[str, type[Command]] = {
    "data synth": DataSynth,
    "data prepare": DataPrepare,
    "data fuse": DataFuse,
    "data info": DataInfo,
    "data export-pickle": DataExportPickle,
    "data import-pickle": DataImportPickle,
    "trial": Trial,
    "study run": StudyRun,
    "study resume": StudyResume,
    "study status": StudyStatus,
    "analyze": Analyze,
    "analyze replay": AnalyzeReplay,
    "analyze cas": AnalyzeCas,
    "analyze schedule": AnalyzeSchedule,
    "generate": Generate,
}


def find_command(argv: Sequence[str]) -> str | None:
    """The longest command whose words begin ``argv``."""
    named = [name for name in COMMANDS if list(argv[:len(name.split())]) == name.split()]
    return max(named, key=lambda name: len(name.split()), default=None)


def listing(group: str = "") -> str:
    """Usage and the commands of ``group`` ("data", "study", ...; all commands when empty)."""
    names = [name for name in COMMANDS if not group or name.startswith(f"{group} ")]
    width = max(len(name) for name in names)
    lines = [f"usage: {PROG} COMMAND [ARGS]", "", DESCRIPTION, "", "commands:"]
    lines += [f"  {name:<{width}}  {COMMANDS[name].help}" for name in names]
    lines += ["", f"'{PROG} COMMAND --help' shows a command's options."]
    return "\n".join(lines)


def build_parser(name: str) -> argparse.ArgumentParser:
    command = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=command.description or command.help,
                                     epilog=command.epilog or None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    command().add_arguments(parser)
    return parser


def _no_command(argv: list[str]) -> int:
    """`cgan-study`, `cgan-study --help`, `cgan-study data`, or a word that names no command."""
    words = [word for word in argv if not word.startswith("-")]
    groups = {name.split()[0] for name in COMMANDS if " " in name}
    group = words[0] if len(words) == 1 and words[0] in groups else ""
    if words and not group:
        print(f"{listing()}\n\n{PROG}: error: unknown command {' '.join(words[:2])!r}", file=sys.stderr)
        return 2
    if "-h" in argv or "--help" in argv:
        print(listing(group))
        return 0
    print(f"{listing(group)}\n\n{PROG}: error: which command?", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = find_command(argv)
    if name is None:
        return _no_command(argv)
    args = build_parser(name).parse_args(argv[len(name.split()):])
    command = COMMANDS[name]()
    try:
        return int(command.run(args) or 0)
    except KeyboardInterrupt:
        print(command.interrupted(args), file=sys.stderr)
        return 130
    except (UserError, FileExistsError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `cgan-study ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
