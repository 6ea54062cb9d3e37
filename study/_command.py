"""What every command of the ``cgan-study`` console script shares: the Command class, the
program's name and the options several commands take."""

from __future__ import annotations

import argparse

from trainable.errors import UserError


PROG = "cgan-study"


DESCRIPTION = "Hyper-parameter studies of the paper's conditional GAN for facial expressions."


DEFAULT_STORAGE = "runs/studies"  # study.runner.DEFAULT_STORAGE, not imported: it imports torch


class Command:
    """A subcommand: ``help`` for the command list, ``description`` and ``epilog`` for its --help."""

    help = ""
    description = ""
    epilog = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError

    def interrupted(self, args: argparse.Namespace) -> str:
        """What to tell the user after Ctrl-C."""
        return f"{PROG}: interrupted"


def add_storage(parser: argparse.ArgumentParser, help: str = f"where studies are (default {DEFAULT_STORAGE})",
                 default: str | None = DEFAULT_STORAGE) -> None:
    parser.add_argument("--storage", default=default, help=help)


def add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: start Ray here")
    parser.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                        help="with --address: give up when nothing answers there within S seconds (default 30)")


def at_least(option: str, value: int | float | None, least: int) -> None:
    """Refuse a number too small for the option before anything runs or is written."""
    if value is not None and value < least:
        raise UserError(f"{option} {value}: must be at least {least}")
