"""The ``cgan-study`` console script: one entry point, a table of commands.

Each command is a class with its own arguments (``add_arguments``) and its own action
(``run``), as in Optuna's cli.py; ``COMMANDS`` maps the words a user types to it. A command is
found by the longest run of words that names one, so ``analyze DIR`` and ``analyze replay DIR``
are two commands. Heavy imports (torch, ray, plotly) happen inside ``run``, so
``cgan-study --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from analysis import describe_pick  # plain Python: no torch, no plotly
from trainable.config import PRESETS
from trainable.errors import UserError
from trainable.experiment import (COND_ACCURACY, COVERAGE, DIVERSITY_MIN, FID_INTRA, GRID, INTERRUPTED, JUDGE_ACCURACY,
                                  VERDICT_EVIDENCE)

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


def _add_storage(parser: argparse.ArgumentParser, help: str = f"where studies are (default {DEFAULT_STORAGE})",
                 default: str | None = DEFAULT_STORAGE) -> None:
    parser.add_argument("--storage", default=default, help=help)


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: start Ray here")
    parser.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                        help="with --address: give up when nothing answers there within S seconds (default 30)")


def _print_info(path: str | Path, dataset) -> None:
    import numpy as np

    print(f"{path}: {len(dataset.images)} images {dataset.size}x{dataset.size}, "
          f"{dataset.num_classes} classes, content hash {dataset.content_hash}")
    sources, counts = np.unique(dataset.source, return_counts=True)
    print("sources: " + ", ".join(f"{s} {c}" for s, c in zip(sources.tolist(), counts.tolist())))
    per_split = dataset.counts()
    width = max(len(n) for n in dataset.class_names)
    print(f"{'class':<{width}} " + " ".join(f"{s:>7}" for s in per_split))
    for label, name in enumerate(dataset.class_names):
        print(f"{name:<{width}} " + " ".join(f"{per_split[s][label]:>7}" for s in per_split))


def _at_least(option: str, value: int | float | None, least: int) -> None:
    """Refuse a number too small for the option before anything runs or is written."""
    if value is not None and value < least:
        raise UserError(f"{option} {value}: must be at least {least}")


def _save(dataset, out: Path) -> int:
    """Write a prepared file and say what it holds."""
    dataset.save(out)
    _print_info(out, dataset)
    return 0


class DataSynth(Command):
    help = "write the built-in synthetic expression set in FER-2013's published forms"
    description = ("Draw the built-in synthetic faces and write them as fer2013.csv, as image folders "
                   "(images/train/<expression>/*.png) and as a prepared file (synthetic.npz).")
    FORMS = ("csv", "folders", "prepared")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="output folder")
        parser.add_argument("--count", type=int, default=3500, help="number of images (default 3500)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument("--size", type=int, default=28, help="side of the prepared images (default 28)")
        parser.add_argument("--forms", default=",".join(self.FORMS),
                            help="comma-separated forms to write: csv, folders, prepared (default all)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import EXPRESSIONS, generate_faces, prepare_faces, write_fer_csv, write_image_folders

        out = Path(args.out)
        _at_least("--count", args.count, len(EXPRESSIONS))  # one face per expression at least
        _at_least("--seed", args.seed, 0)
        _at_least("--size", args.size, 1)
        forms = set(args.forms.split(","))
        unknown = forms - set(self.FORMS)
        if unknown:
            raise UserError(f"--forms: unknown form(s) {sorted(unknown)}; expected csv, folders, prepared")
        images, labels, _, split = generate_faces(args.count, seed=args.seed, progress=True)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        if "csv" in forms:
            written.append(write_fer_csv(images, labels, split, out / "fer2013.csv"))
        if "folders" in forms:
            written.append(write_image_folders(images, labels, split, out / "images"))
        if "prepared" in forms:
            written.append(prepare_faces(images, labels, split, size=args.size).save(out / "synthetic.npz"))
        for path in written:
            print(path)
        return 0


class DataPrepare(Command):
    help = "read a data set in its published form into one prepared .npz file"
    description = ("Read FER-2013 (fer2013.csv or its image folders), MMAFEDB (image folders) or any "
                   "class-folder data set; convert to grayscale, resize, and write one compressed .npz.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from trainable.data import FORMATS  # light: numpy and Pillow

        parser.add_argument("source", type=Path, help="fer2013.csv, or a folder of split/class or class folders")
        parser.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
        parser.add_argument("--format", choices=FORMATS, default="auto", help="input form (default: auto-detect)")
        parser.add_argument("--size", type=int, default=28,
                            help="side of the prepared images (default 28, as in the paper)")
        parser.add_argument("--name", help="source name recorded for each image (default from the format or folder)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import read_any

        _at_least("--size", args.size, 1)
        dataset = read_any(args.source, fmt=args.format, size=args.size, source=args.name, progress=True)
        return _save(dataset, args.out)


class DataFuse(Command):
    help = "merge prepared sets into one (the paper's 'fuse')"
    description = "Merge prepared data sets, recording each image's source."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", type=Path, help="prepared files to merge")
        parser.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import fuse, load_prepared

        dataset = fuse([load_prepared(path) for path in args.inputs], names=[str(p) for p in args.inputs])
        return _save(dataset, args.out)


class DataInfo(Command):
    help = "summarise a prepared file"
    description = "Print size, classes, sources, counts per split and the content hash."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--grid", type=Path, help="also write a PNG grid of training images, one row per class")
        parser.add_argument("--columns", type=int, default=12, help="images per row of the grid (default 12)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import load_prepared
        from trainable.grid import class_grid, save_grid

        dataset = load_prepared(args.file)
        _print_info(args.file, dataset)
        if args.grid:
            train = dataset.select("train")
            save_grid(class_grid(train.images, train.labels, dataset.num_classes, args.columns), args.grid, scale=3)
            print(f"grid of training images (rows = {', '.join(dataset.class_names)}): {args.grid}")
        return 0


class DataExportPickle(Command):
    help = "write the paper's pickle pair (images, labels)"
    description = "Write uint8 images (N,S,S,1) and labels (N,) as two pickles."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="prepared file")
        parser.add_argument("--images", required=True, type=Path)
        parser.add_argument("--labels", required=True, type=Path)
        parser.add_argument("--split", choices=("train", "valid", "test"), help="export one split only")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import export_pickle, load_prepared

        count = export_pickle(load_prepared(args.file), args.images, args.labels, split=args.split)
        print(f"wrote {count} images to {args.images} and labels to {args.labels}")
        return 0


class DataImportPickle(Command):
    help = "read the paper's pickle pair, safely"
    description = ("Read an images pickle and a labels pickle through a restricted unpickler that "
                   "accepts numpy arrays and nothing else (a pickle can run code).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", required=True, type=Path)
        parser.add_argument("--labels", required=True, type=Path)
        parser.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
        parser.add_argument("--class-names", help="comma-separated class names (default: the 7 expressions)")
        parser.add_argument("--name", default="pickle", help="source name (default 'pickle')")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import import_pickle

        class_names = tuple(args.class_names.split(",")) if args.class_names else None
        dataset = import_pickle(args.images, args.labels, class_names=class_names, source=args.name)
        return _save(dataset, args.out)


def _add_source(parser: argparse.ArgumentParser) -> None:
    """SOURCE and --rank, --storage: one trial, named by its folder or by its rank in a study."""
    parser.add_argument("source", metavar="SOURCE",
                        help="a trial folder (local, or inside a study), or a study (folder or name)")
    parser.add_argument("--rank", type=int, default=1,
                        help="with a study: the trial at this rank of the ranking `analyze` prints (default 1)")
    _add_storage(parser, f"where a study named by its name is (default {DEFAULT_STORAGE})")


def _pick_trial(args: argparse.Namespace):
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


def _picked_generator(args: argparse.Namespace):
    """(trial, its data set, its judge steps, its generator) for SOURCE, --rank and --checkpoint; says which."""
    from trainable.generate import find_checkpoint, load_generator

    trial, origin = _pick_trial(args)
    dataset, judge_steps = _trial_data(trial)
    trained = load_generator(find_checkpoint(trial.path, args.checkpoint), num_classes=dataset.num_classes,
                             size=dataset.size)
    print(f"{describe_pick(trial, origin)}: {trained.checkpoint.name} at iteration {trained.iteration}, "
          f"{trained.weights} weights")
    return trial, dataset, judge_steps, trained


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
              "          cgan-study trial --from pbt-study --schedule   # replay the best PBT trial's schedule")

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
        parser.add_argument("--rank", type=int, default=1,
                            help="with --from a study: the trial at this rank of its ranking (default 1)")
        parser.add_argument("--schedule", action="store_true",
                            help="with --from a PBT trial: replay its schedule, the configs its weights were "
                                 "trained with and the iterations each took effect, instead of its last config")
        _add_storage(parser, f"with --from a study name: where studies are (default {DEFAULT_STORAGE})")
        parser.add_argument("--judge-steps", type=int,
                            help="training steps of the judge classifier, trained once per data set "
                                 "(default 1500, or the --from trial's)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.config import TrainConfig, preset
        from trainable.local import DEFAULT_JUDGE_STEPS, run_local_trial

        overrides = _parse_sets(args.set)
        _at_least("--judge-steps", args.judge_steps, 1)
        if args.resume:
            extra = set(overrides) - {"iterations"}
            if extra or args.data or args.preset or args.source or args.judge_steps or args.schedule:
                raise UserError("--resume continues a trial as it was configured; only --set iterations=N may change")
            iterations = TrainConfig.from_dict({"iterations": overrides["iterations"]}).iterations \
                if "iterations" in overrides else None
            outcome = run_local_trial(args.resume, resume=True, iterations=iterations, progress=True)
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
    def _run_from(args: argparse.Namespace, overrides: dict[str, str]):
        """A new trial with the configuration of the trial SOURCE and --rank name (--set on top)."""
        from trainable.config import TrainConfig
        from trainable.experiment import FROM, SCHEDULE, split_params
        from trainable.local import run_local_trial

        if args.preset:
            raise UserError("--from takes the configuration of another trial; --preset cannot be combined with it")
        trial, origin = _pick_trial(args)
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


def _trial_schedule(trial) -> list[dict]:
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

    steps = replay_schedule(_trial_schedule(trial), overrides, name=trial.name)
    for line in schedule_lines(steps):
        print(f"  schedule: {line}")
    return steps


def _add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=int, metavar="K",
                        help="use the trial's checkpoint_K folder (default: its last checkpoint)")


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

        _add_source(parser)
        parser.add_argument("--per-class", type=int, required=True, metavar="N", help="images of each class")
        parser.add_argument("--out", type=Path, required=True, help="file (npz, csv) or folder (folders) to write")
        parser.add_argument("--format", choices=WRITE_FORMATS, default="npz", help="output form (default npz)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (default 0)")
        _add_checkpoint(parser)

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import write_dataset
        from trainable.generate import available_memory, generate_dataset, memory_needed, source_name

        _at_least("--per-class", args.per_class, 1)
        _at_least("--seed", args.seed, 0)
        if args.out.exists():
            raise UserError(f"{args.out} already exists; generate never overwrites (choose another --out)")
        trial, dataset, _, trained = _picked_generator(args)
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
                   "The paper's V0, V1 and V2 run first as baseline points (once per distinct point of the space), "
                   "unless [study].baselines in the study file names others.")
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
        _add_address(parser)
        parser.add_argument("--gpus-per-trial", type=float, help="GPU share per trial, e.g. 0.25 = four trials per GPU")
        parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
        parser.add_argument("--wait-for-gpus", action="store_true",
                            help="keep GPU requests even when no GPU is up yet (autoscaling clusters)")
        parser.add_argument("--seed", type=int, help="TPE sampler seed")
        parser.add_argument("--warm-start", metavar="STUDY",
                            help="an earlier study (name under --storage, or folder) whose finished trials the "
                                 "sampler starts from")
        parser.add_argument("--budget", type=int, metavar="ITERATIONS",
                            help="total training iterations of all trials; none is started once spent")
        parser.add_argument("--judge-steps", type=int, default=1500, help="judge training steps (default 1500)")
        _add_storage(parser, f"where results go: a local or shared folder, or s3://... (default {DEFAULT_STORAGE})")

    def run(self, args: argparse.Namespace) -> int:
        from study._summary import summary
        from study.runner import load_study, run_study
        from study.spec import load_spec

        _at_least("--judge-steps", args.judge_steps, 1)
        spec = load_spec(args.config, samples=args.samples, gpus_per_trial=args.gpus_per_trial,
                         cpus_per_trial=args.cpus_per_trial, seed=args.seed, warm_start=args.warm_start,
                         budget=args.budget)
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
        _add_storage(parser)
        _add_address(parser)

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
        _add_storage(parser)

    def run(self, args: argparse.Namespace) -> int:
        from analysis import format_ranking, get_leaderboard_info, read_experiment
        from study._summary import summary
        from study.runner import load_study

        path = load_study(args.name, args.storage)
        print(format_ranking(get_leaderboard_info(read_experiment(path))))
        print(summary(path))
        return 0


class Analyze(Command):
    help = "rank trials and write the offline HTML dashboard"
    description = ("Rank the trials of a study folder or a single trial folder, print the top of the ranking, "
                   "and write one self-contained HTML dashboard (works offline: plotly and the sample grids "
                   "are inside the file). No Ray needed; a study still running is read as it is.")
    epilog = ("examples: cgan-study analyze runs/studies/demo --open\n"
              "          cgan-study analyze runs/trial-V1-20261125-101500 --out v1.html\n"
              "see also: cgan-study analyze replay --help")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", metavar="DIR", help="a study folder or a trial folder, or a study's name under "
                                                       "--storage")
        parser.add_argument("--out", type=Path, help="HTML file to write (default DIR/dashboard.html)")
        _add_storage(parser, f"where a study named by its name is (default {DEFAULT_STORAGE})")
        parser.add_argument("--open", action="store_true", help="open the dashboard in the web browser")
        parser.add_argument("--top", type=int, default=10, help="trials of the ranking printed here (default 10)")
        parser.add_argument("--max-mb", type=float, default=45.0,
                            help="size budget of the HTML file; grids become thumbnails, then fewer (default 45)")
        parser.add_argument("--screenshot", type=Path, metavar="PNG",
                            help="also render the dashboard in headless Chromium (network off) and save a PNG")
        parser.add_argument("--full-page", action="store_true",
                            help="with --screenshot: the whole page, not the top")

    def run(self, args: argparse.Namespace) -> int:
        import webbrowser

        from analysis import format_ranking, format_replay, get_leaderboard_info, get_replay_info, read_experiment
        from analysis.dashboard import build_dashboard
        from trainable.experiment import STUDY_FILE

        folder = Path(args.dir)
        if (folder / STUDY_FILE).is_file() or (not folder.exists() and "/" not in args.dir):
            from study.runner import load_study  # a study by its name; one stored under a URI fetches its trials

            folder = load_study(args.dir, args.storage)
        experiment = read_experiment(folder)
        if not experiment.trials:
            raise UserError(f"{args.dir}: no trials found (a study folder holds trial_* folders; "
                            "a trial folder holds params.json)")
        if args.max_mb <= 6:
            raise UserError("--max-mb must be above 6 (plotly's JavaScript alone is about 5 MB)")
        replay = get_replay_info(experiment)
        if replay is not None:
            print(format_replay(replay))
        print(format_ranking(get_leaderboard_info(experiment), top=args.top))
        result = build_dashboard(experiment, args.out, max_mb=args.max_mb, progress=True)
        shown = (f"{result.frames_shown} of {result.frames_total} evaluations' grids as thumbnails"
                 if result.frame_level == "thumbnail" else f"{result.frames_shown} grids")
        print(f"dashboard: {result.path} ({result.bytes / 1e6:.1f} MB, {shown}, {result.seconds:.1f} s)")
        for line in result.skipped[:5]:
            print(f"skipped: {line}", file=sys.stderr)
        if len(result.skipped) > 5:
            print(f"skipped: ... {len(result.skipped) - 5} more (listed in the dashboard)", file=sys.stderr)
        if args.screenshot:
            from analysis.browser import open_page

            report = open_page(result.path, full_page=args.full_page)
            args.screenshot.write_bytes(report.screenshot)
            print(f"screenshot: {args.screenshot}")
            for error in report.errors:
                print(f"browser error: {error}", file=sys.stderr)
        if args.open:
            webbrowser.open(result.path.resolve().as_uri())
        return 0


class AnalyzeCas(Command):
    help = "Classification Accuracy Score of a trial's generator: how useful its faces are as training data"
    description = ("CAS (Ravuri & Vinyals 2019): train the judge's classifier on generated faces only, as many per "
                   "class as the real training split holds, and test it on the real held-out split. Printed beside "
                   "the same classifier trained on the real training split (the judge: the ceiling) and chance. "
                   "Costs one classifier training (about as long as the judge's).")
    epilog = ("examples: cgan-study analyze cas demo\n"
              "          cgan-study analyze cas runs/studies/demo --rank 2\n"
              "          cgan-study analyze cas runs/trial-recipe-20261125-101500")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_source(parser)
        _add_checkpoint(parser)
        parser.add_argument("--steps", type=int,
                            help="classifier training steps (default: the trial's judge steps, so the judge is "
                                 "the ceiling)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.cas import generator_cas
        from trainable.judge import load_or_train_judge
        from trainable.training import resolve_device

        if args.steps is not None and args.steps < 1:
            raise UserError(f"--steps {args.steps}: must be at least 1")
        _, dataset, judge_steps, trained = _picked_generator(args)
        steps = judge_steps if args.steps is None else args.steps
        judge, _ = load_or_train_judge(dataset, steps=steps, progress=True)  # cached: the ceiling
        device = resolve_device("auto")
        result = generator_cas(trained.generator.to(device), dataset, latent_size=trained.config.latent_size,
                               normalization=trained.config.normalization, steps=steps, device=device, progress=True)
        width = max(len(name) for name in dataset.class_names)
        print(f"CAS (generated -> real): {result.accuracy:.3f}  trained on {result.train_images} generated faces, "
              f"tested on {result.heldout_images} real held-out faces")
        print(f"ceiling (real -> real):  {judge.heldout_accuracy:.3f}  the same classifier trained on the real "
              f"training split (the judge)")
        print(f"chance:                  {1 / dataset.num_classes:.3f}")
        for name, value in zip(dataset.class_names, result.per_class):
            print(f"  {name:<{width}} {value:.3f}")
        print(f"cost: {result.seconds:.1f} s ({result.steps} classifier steps on {device.type}, generation included)")
        return 0


class AnalyzeSchedule(Command):
    help = "print a PBT trial's schedule and export it for Ray's PopulationBasedTrainingReplay"
    description = ("Print the schedule of configs a trial's weights were trained with under Population Based "
                   "Training (through the trials PBT copied them from), with the iteration each took effect; "
                   "with --out, write it as a Ray PBT policy file, which ray.tune.schedulers."
                   "PopulationBasedTrainingReplay replays (steps in evaluations). `trial --from SOURCE --schedule` "
                   "replays it without Ray.")
    epilog = "example: cgan-study analyze schedule pbt-study --out best_policy.txt"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_source(parser)
        parser.add_argument("--out", type=Path, help="write the Ray PBT policy file here (JSON lines)")

    def run(self, args: argparse.Namespace) -> int:
        import json

        from analysis import schedule_lines
        from trainable.experiment import ray_policy, write_text_atomic

        trial, origin = _pick_trial(args)
        schedule = _trial_schedule(trial)
        print(f"schedule of {describe_pick(trial, origin)}:")
        for line in schedule_lines(schedule):
            print(f"  {line}")
        if args.out:
            write_text_atomic(args.out, "".join(json.dumps(row) + "\n" for row in ray_policy(schedule)))
            print(f"Ray PBT policy file: {args.out} (PopulationBasedTrainingReplay replays it; or "
                  f"{PROG} trial --from {args.source} --schedule)")
        return 0


class AnalyzeReplay(Command):
    help = "re-train a study's best configurations with new seeds and rank them by the median"
    description = ("Re-train the top K configurations of a study with S new seeds each, as a new study run by "
                   "the same machinery (locally, or on a cluster with --address), and rank them by the median "
                   "score with the spread. GAN results vary with the seed about as much as between models.")
    epilog = "example: cgan-study analyze replay runs/studies/demo --top 3 --seeds 5"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, metavar="DIR", help="the study folder to re-run")
        parser.add_argument("--top", type=int, default=3, help="configurations to re-run (default 3)")
        parser.add_argument("--seeds", type=int, default=3, help="new seeds per configuration (default 3)")
        parser.add_argument("--name", help="name of the re-run study (default: DIR's name + '-replay')")
        _add_storage(parser, "where the re-run study goes (default: beside DIR)", default=None)
        _add_address(parser)

    def run(self, args: argparse.Namespace) -> int:
        from analysis import format_replay, get_replay_info, read_experiment
        from study.replay import run_replay

        path = run_replay(args.dir, top=args.top, seeds=args.seeds, name=args.name, storage=args.storage,
                          address=args.address, connect_timeout=args.connect_timeout)
        print(format_replay(get_replay_info(read_experiment(path))))
        print(f"re-run study: {path} (cgan-study analyze {path} draws its dashboard)")
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        return (f"interrupted: continue with {PROG} study resume NAME --storage STORAGE "
                "(the name and storage printed above)")


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
