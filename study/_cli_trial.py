"""The ``trial`` and ``generate`` commands: one training run without Ray, and a trained G's samples;
and how they pick a trial of a study or a folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from analysis import describe_pick  # plain Python: no torch, no plotly
from study._cli_data import add_source
from study._command import DEFAULT_STORAGE, PROG, Command, add_storage, at_least
from trainable.config import PRESETS
from trainable.errors import UserError
from trainable.experiment import (COLLAPSES, COND_ACCURACY, COVERAGE, DIVERSITY_MIN, FID_INTRA, GRID, INTERRUPTED, JUDGE_ACCURACY,
                                  VERDICT_EVIDENCE)


def pick_trial(args: argparse.Namespace):
    """(the trial SOURCE and --rank name, where it comes from: {"trial", "study", "rank"})."""
    from analysis import is_trial_folder, pick_trial
    from study.runner import load_study
    from trainable.experiment import PARAMS_FILE

    if args.rank < 1 or is_trial_folder(args.source):
        return pick_trial(args.source, args.rank)
    try:
        study_path = load_study(args.source, args.storage)
    except UserError:
        raise UserError(f"{args.source}: neither a trial folder (it holds {PARAMS_FILE}) nor a study "
                        f"(a folder with study.json, or a study name in {args.storage})") from None
    return pick_trial(study_path, args.rank)


def _trial_context(trial) -> tuple[str, int]:
    """(the trial's data set, its judge steps): what it was trained and judged with, the defaults where unknown."""
    from trainable.experiment import trial_context
    from trainable.local import BUILTIN, DEFAULT_JUDGE_STEPS

    context = trial_context(trial.path)
    return context["data"] or BUILTIN, int(context["judge_steps"] or DEFAULT_JUDGE_STEPS)


def _trial_data(trial):
    """(the trial's prepared data set, its judge steps)."""
    from trainable.local import load_data

    data, judge_steps = _trial_context(trial)
    return load_data(data), judge_steps


def picked_generator(args: argparse.Namespace):
    """(trial, its data set, its judge steps, its generator) for SOURCE, --rank and --checkpoint; says which."""
    from trainable.generate import find_checkpoint, load_generator

    trial, origin = pick_trial(args)
    dataset, judge_steps = _trial_data(trial)
    trained = load_generator(find_checkpoint(trial.path, args.checkpoint), num_classes=dataset.num_classes,
                             size=dataset.size)
    print(f"{describe_pick(trial, origin)}: {trained.checkpoint.name} at iteration {trained.iteration}, "
          f"{trained.weights} weights")
    return trial, dataset, judge_steps, trained


def _only_iterations(overrides: dict[str, str], what: str) -> int | None:
    """The one --set a trial that goes on may take, iterations=N (validated), or None."""
    from trainable.config import TrainConfig

    if set(overrides) - {"iterations"}:
        raise UserError(f"{what}; only --set iterations=N may change")
    return TrainConfig.from_dict({"iterations": overrides["iterations"]}).iterations if overrides else None


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected key=value")
        values[key.strip()] = value
    return values


class Trial(Command):
    help = "run one training trial locally, without Ray"
    description = ("Train the paper's CGAN once on this machine. The output folder holds the files of a "
                   "Ray Tune trial folder (params.json, result.json, progress.csv, checkpoints) plus a sample "
                   "grid per evaluation. Ctrl-C stops with a final checkpoint; --resume continues.")
    epilog = ("examples: cgan-study trial --preset V1 --set iterations=5000 --set eval_every=500\n"
              "          cgan-study trial --resume runs/trial-V1-20261125-101500\n"
              "          cgan-study trial --from demo --set iterations=400000   # a study's best, at full length\n"
              "          cgan-study trial --from pbt-study --schedule   # replay the best PBT trial's schedule\n"
              "          cgan-study trial --from shapes --rank 2 --continue --set iterations=2400   # go on past its end")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--preset", choices=list(PRESETS),
                            help="the paper's variant (V0, V1, V2), or the reference recipe of GAN remedies, "
                                 "to start from (default V0)")
        parser.add_argument("--data", type=Path, help="prepared .npz (default: the built-in synthetic set)")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config field, e.g. --set latent_size=64 --set d_filters=16,32,64 "
                                 "--set freeze_after=off (repeatable)")
        parser.add_argument("--out", type=Path, help="trial folder (default runs/trial-PRESET-TIME)")
        parser.add_argument("--resume", type=Path, metavar="DIR",
                            help="continue the trial in DIR from its last checkpoint")
        parser.add_argument("--from", dest="source", metavar="SOURCE",
                            help="start from another trial's exact configuration, data and judge: a trial folder, "
                                 "or a study (folder or name) with --rank; params.json records it under 'from'")
        parser.add_argument("--continue", dest="go_on", action="store_true",
                            help="with --from: go on from that trial's last checkpoint (its weights, optimisers and "
                                 "random state) in a new folder, the trial itself left as it is, to --set "
                                 "iterations=N (default its own length: a trial ASHA cut short goes on to it)")
        add_checkpoint(parser, "with --continue: go on from the trial's checkpoint_K folder (default its last)")
        parser.add_argument("--rank", type=int, default=1,
                            help="with --from a study: the trial at this rank of its ranking (default 1)")
        parser.add_argument("--schedule", action="store_true",
                            help="with --from a PBT trial: replay its schedule, the configs its weights were "
                                 "trained with and the iterations each took effect, instead of its last config")
        add_storage(parser, f"with --from a study name: where studies are (default {DEFAULT_STORAGE})")
        parser.add_argument("--judge-steps", type=int,
                            help="training steps of the judge classifier, trained once per data set "
                                 "(default 1500, or the --from trial's)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.config import preset
        from trainable.local import DEFAULT_JUDGE_STEPS, run_local_trial

        overrides = _parse_sets(args.set)
        at_least("--judge-steps", args.judge_steps, 1)
        if args.resume:
            if args.data or args.preset or args.source or args.judge_steps or args.schedule or args.go_on \
                    or args.checkpoint is not None:
                raise UserError("--resume continues a trial as it was configured; only --set iterations=N may change")
            iterations = _only_iterations(overrides, "--resume continues a trial as it was configured")
            outcome = run_local_trial(args.resume, resume=True, iterations=iterations, progress=True)
        elif args.go_on or args.checkpoint is not None:
            outcome = self._continue_from(args, overrides)
        elif args.source:
            outcome = self._run_from(args, overrides)
        elif args.rank != 1 or args.schedule:
            raise UserError(f"{'--rank' if args.rank != 1 else '--schedule'} needs --from: it picks (the schedule "
                            "of) a trial of the study or trial folder --from names")
        else:
            name = args.preset or "V0"
            config = preset(name, **overrides)
            out = args.out or Path("runs") / f"trial-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            outcome = run_local_trial(out, config=config, preset=name, data=args.data,
                                      judge_steps=args.judge_steps or DEFAULT_JUDGE_STEPS, progress=True)
        last = outcome.rows[-1] if outcome.rows else {}
        print(f"stopped: {outcome.stop_reason} at iteration {last.get('iteration', 0)}")
        if last.get(VERDICT_EVIDENCE):
            print(f"evidence: {last[VERDICT_EVIDENCE]}")
        if last.get(FID_INTRA) is not None:
            print(f"intra-class judge FD {last[FID_INTRA]:.3f}, conditional accuracy {last[COND_ACCURACY]:.3f}, "
                  f"lowest diversity {last[DIVERSITY_MIN]:.3f}, coverage {last[COVERAGE]:.3f} "
                  f"(judge held-out accuracy {last[JUDGE_ACCURACY]:.3f})")
        print(f"trial folder: {outcome.directory}")
        if last.get(GRID):
            print(f"latest grid: {outcome.directory / last[GRID]}")
        if outcome.stop_reason == INTERRUPTED:
            print(f"resume with: cgan-study trial --resume {outcome.directory}")
            return 130
        return 0

    @staticmethod
    def _continue_from(args: argparse.Namespace, overrides: dict[str, str]):
        """A new trial that goes on from the last checkpoint (or --checkpoint K) of the trial SOURCE and --rank name."""
        from trainable.experiment import FROM
        from trainable.generate import find_checkpoint
        from trainable.local import continue_trial

        if not args.go_on:
            raise UserError("--checkpoint picks the checkpoint --continue goes on from; it needs --continue")
        if not args.source:
            raise UserError("--continue needs --from: it goes on from the last checkpoint of the trial --from names")
        what = "--continue goes on with the trial's own configuration, data and judge"
        if args.data or args.preset or args.judge_steps or args.schedule:
            raise UserError(f"{what}; only --set iterations=N may change")
        iterations = _only_iterations(overrides, what)
        trial, origin = pick_trial(args)
        checkpoint = find_checkpoint(trial.path, args.checkpoint)
        data, judge_steps = _trial_context(trial)
        print(f"from {describe_pick(trial, origin)}")
        if trial.stop_reason in COLLAPSES:
            print(f"note: {trial.name} ended in {trial.stop_reason}; the verdict judges the trial that goes on from "
                  "it too, and stops it again while it stays so", file=sys.stderr)
        out = args.out or Path("runs") / f"trial-from-{trial.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        return continue_trial(trial.path, checkpoint, out, iterations=iterations, data=data, judge_steps=judge_steps,
                              meta={FROM: origin}, progress=True)

    @staticmethod
    def _run_from(args: argparse.Namespace, overrides: dict[str, str]):
        """A new trial with the configuration of the trial SOURCE and --rank name (--set on top)."""
        from trainable.config import TrainConfig
        from trainable.experiment import FROM, SCHEDULE, split_params
        from trainable.local import run_local_trial

        if args.preset:
            raise UserError("--from takes the configuration of another trial; --preset cannot be combined with it")
        trial, origin = pick_trial(args)
        values, _ = split_params(trial.params)
        config = TrainConfig.from_dict(overrides, base=TrainConfig.from_dict(values))
        data, judge_steps = _trial_context(trial)
        print(f"from {describe_pick(trial, origin)}")
        meta = {FROM: origin}
        if args.schedule:
            meta[SCHEDULE] = _replayed_schedule(trial, overrides)
            config = TrainConfig.from_dict(split_params(meta[SCHEDULE][0]["config"])[0])
        out = args.out or Path("runs") / f"trial-from-{trial.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        return run_local_trial(out, config=config, data=args.data or data, judge_steps=args.judge_steps or judge_steps,
                               meta=meta, progress=True)


def trial_schedule(trial) -> list[dict]:
    """The schedule of a trial's last weights (a PBT trial's, through the trials it took them from)."""
    from trainable.experiment import read_schedule

    schedule = read_schedule(trial.path)
    if not schedule:
        raise UserError(f"{trial.name}: no schedule recorded (a study trial keeps one in its checkpoints' lineage.json)")
    return schedule


def _replayed_schedule(trial, overrides: dict[str, str]) -> list[dict]:
    """A trial's PBT schedule with --set on every step, checked to change only mutable fields; says it."""
    from analysis import schedule_lines
    from trainable.experiment import replay_schedule

    steps = replay_schedule(trial_schedule(trial), overrides, name=trial.name)
    for line in schedule_lines(steps):
        print(f"  schedule: {line}")
    return steps


def add_checkpoint(parser: argparse.ArgumentParser,
                   help: str = "use the trial's checkpoint_K folder (default: its last checkpoint)") -> None:
    parser.add_argument("--checkpoint", type=int, metavar="K", help=help)


class Generate(Command):
    help = "write a labelled data set of a trial's generated faces (npz, class folders or FER-2013 CSV)"
    description = ("Load a trial's generator from its last checkpoint (the EMA weights when the trial kept an average "
                   "of G, else the raw weights) and write N generated faces per class, labelled, in a form the data "
                   "readers load: a prepared .npz (each image's source 'generated:<trial>'), class folders "
                   "(train/<class>/*.png), or a FER-2013 CSV. The same seed gives the same images. "
                   "An existing --out is never overwritten.")
    epilog = ("examples: cgan-study generate demo --per-class 1000 --out generated.npz\n"
              "          cgan-study generate runs/studies/demo --rank 2 --per-class 500 --format folders --out faces/\n"
              "          cgan-study data fuse real.npz generated.npz --out augmented.npz   # an augmented set")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from trainable.data import WRITE_FORMATS  # light: numpy and Pillow

        add_source(parser)
        parser.add_argument("--per-class", type=int, required=True, metavar="N", help="images of each class")
        parser.add_argument("--out", type=Path, required=True, help="file (npz, csv) or folder (folders) to write")
        parser.add_argument("--format", choices=WRITE_FORMATS, default="npz", help="output form (default npz)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (default 0)")
        add_checkpoint(parser)

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import write_dataset
        from trainable.generate import available_memory, generate_dataset, memory_needed, source_name

        at_least("--per-class", args.per_class, 1)
        at_least("--seed", args.seed, 0)
        if args.out.exists():
            raise UserError(f"{args.out} already exists; generate never overwrites (choose another --out)")
        trial, dataset, _, trained = picked_generator(args)
        total = args.per_class * len(dataset.class_names)
        needed, available = memory_needed(total, latent_size=trained.config.latent_size,
                                          classes=len(dataset.class_names), size=dataset.size), available_memory()
        if needed > 0.8 * available:
            raise UserError(f"--per-class {args.per_class}: {total:,} images of {dataset.size}x{dataset.size} need about "
                            f"{needed / 2**30:,.1f} GiB of memory while they are generated, and this machine has "
                            f"{available / 2**30:,.1f} GiB free; ask for fewer (several runs with other --seed values "
                            "add up)")
        generated = generate_dataset(trained, args.per_class, dataset.class_names, source=source_name(trial.name),
                                     seed=args.seed, progress=True)
        write_dataset(generated, args.out, args.format, progress=True)
        print(f"{args.out}: {len(generated.images)} images {generated.size}x{generated.size}, {args.per_class} of each "
              f"of {', '.join(generated.class_names)} (split train, seed {args.seed})")
        if args.format == "npz":
            print(f"augment a real set with: {PROG} data fuse REAL.npz {args.out} --out augmented.npz")
        return 0
