"""The ``study`` commands: run, resume and look at a study."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from study._command import DEFAULT_STORAGE, PROG, Command, add_address, add_storage, at_least
from trainable.errors import UserError


def _resume_hint(args: argparse.Namespace) -> str:
    from study.runner import study_dir  # loaded already: the command that was interrupted imported it
    from trainable.experiment import is_study

    try:
        started = args.name is not None and is_study(study_dir(args.storage, args.name))
    except UserError:  # a bad name, interrupted before it was refused
        started = False
    if not started:
        return "interrupted before the study started; nothing to resume (run it again)"
    return f"interrupted: continue with {PROG} study resume {args.name} --storage {args.storage}"


class StudyRun(Command):
    help = "start a study (embedded local Ray, or --address to join a cluster)"
    description = ("Start a study: Optuna TPE search, ASHA and collapse stopping (or Population Based Training: "
                   "scheduler = \"pbt\" in the study file), trials across Ray workers. "
                   "Without --address it starts a local Ray sized to this machine and shuts it down on exit. "
                   "The paper's V0, V1 and V2, and the reference recipe where the space holds it, run first as baseline "
                   "points (once per distinct point of the space), unless [study].baselines in the study file names "
                   "others.")
    epilog = ("examples: cgan-study study run --samples 12\n"
              "          cgan-study study run --config study.toml --address auto --gpus-per-trial 0.25 "
              "--storage s3://bucket/studies")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", type=Path,
                            help="study file (TOML: [study], [fixed], [search]); default: built-in")
        parser.add_argument("--data", type=Path, help="prepared .npz (default: the built-in synthetic set)")
        parser.add_argument("--name", help="study name (default study-TIME)")
        parser.add_argument("--samples", type=int,
                            help="number of trials, baselines included (default from the study file: 20)")
        add_address(parser)
        parser.add_argument("--gpus-per-trial", type=float, help="GPU share per trial, e.g. 0.25 = four trials per GPU")
        parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
        parser.add_argument("--wait-for-gpus", action="store_true",
                            help="keep GPU requests even when no GPU is up yet (autoscaling clusters)")
        parser.add_argument("--fused-trials", action="store_true", default=None,
                            help="one process (on the GPU, taken whole) trains the trials, those of one "
                                 "architecture fused into one batched model")
        parser.add_argument("--seed", type=int, help="TPE sampler seed")
        parser.add_argument("--warm-start", metavar="STUDY",
                            help="an earlier study (name under --storage, or folder) whose finished trials the "
                                 "sampler starts from")
        parser.add_argument("--budget", type=int, metavar="ITERATIONS",
                            help="total training iterations of all trials; none is started once spent")
        parser.add_argument("--judge-steps", type=int, default=1500, help="judge training steps (default 1500)")
        add_storage(parser, f"where results go: a local or shared folder, or s3://... (default {DEFAULT_STORAGE})")

    def run(self, args: argparse.Namespace) -> int:
        from study._summary import summary
        from study.runner import load_study, run_study
        from study.spec import load_spec

        at_least("--judge-steps", args.judge_steps, 1)
        spec = load_spec(args.config, samples=args.samples, gpus_per_trial=args.gpus_per_trial,
                         cpus_per_trial=args.cpus_per_trial, seed=args.seed, warm_start=args.warm_start,
                         budget=args.budget, fused_trials=args.fused_trials)
        args.name = args.name or f"study-{time.strftime('%Y%m%d-%H%M%S')}"
        run_study(spec, name=args.name, data=str(args.data) if args.data else None, storage=args.storage,
                  address=args.address, judge_steps=args.judge_steps, wait_for_gpus=args.wait_for_gpus,
                  connect_timeout=args.connect_timeout)
        print(summary(load_study(args.name, args.storage)))
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        return _resume_hint(args)


class StudyResume(Command):
    help = "finish a study whose driver stopped or was killed"
    description = ("Continue a study from its saved state: unfinished trials resume from their checkpoints, "
                   "the searcher where it was.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")
        add_storage(parser)
        add_address(parser)

    def run(self, args: argparse.Namespace) -> int:
        from study._summary import summary
        from study.runner import load_study, resume_study

        resume_study(args.name, storage=args.storage, address=args.address, connect_timeout=args.connect_timeout)
        print(summary(load_study(args.name, args.storage)))
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        return _resume_hint(args)


class StudyStatus(Command):
    help = "show a study's trials from disk (no Ray needed)"
    description = "Rank a study's trials from the files on disk."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="study name or folder")
        add_storage(parser)

    def run(self, args: argparse.Namespace) -> int:
        from analysis import format_ranking, get_leaderboard_info, read_experiment
        from study._summary import summary
        from study.runner import load_study

        path = load_study(args.name, args.storage)
        print(format_ranking(get_leaderboard_info(read_experiment(path))))
        print(summary(path))
        return 0
