"""The ``cgan-study`` console script: one entry point, a table of subcommands.

Heavy imports (torch, ray, plotly) happen inside the subcommand that needs them, so
``cgan-study --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from trainable.errors import UserError
from trainable.experiment import COND_ACCURACY, COVERAGE, DIVERSITY_MIN, FID_INTRA, INTERRUPTED


def _data_synth(args: argparse.Namespace) -> int:
    from trainable.data import generate_faces, prepare_faces, write_fer_csv, write_image_folders

    out = Path(args.out)
    images, labels, _, split = generate_faces(args.count, seed=args.seed, progress=True)
    forms = set(args.forms.split(","))
    unknown = forms - {"csv", "folders", "prepared"}
    if unknown:
        raise UserError(f"--forms: unknown form(s) {sorted(unknown)}; expected csv, folders, prepared")
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


def _data_prepare(args: argparse.Namespace) -> int:
    from trainable.data import read_any

    dataset = read_any(args.source, fmt=args.format, size=args.size, source=args.name, progress=True)
    dataset.save(args.out)
    _print_info(args.out, dataset)
    return 0


def _data_fuse(args: argparse.Namespace) -> int:
    from trainable.data import fuse, load_prepared

    dataset = fuse([load_prepared(path) for path in args.inputs], names=[str(p) for p in args.inputs])
    dataset.save(args.out)
    _print_info(args.out, dataset)
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from trainable.data import load_prepared
    from trainable.grid import class_grid, save_grid

    dataset = load_prepared(args.file)
    _print_info(args.file, dataset)
    if args.grid:
        train = dataset.select("train")
        save_grid(class_grid(train.images, train.labels, dataset.num_classes, args.columns), args.grid, scale=3)
        print(f"grid of training images (rows = {', '.join(dataset.class_names)}): {args.grid}")
    return 0


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


def _data_export_pickle(args: argparse.Namespace) -> int:
    from trainable.data import export_pickle, load_prepared

    count = export_pickle(load_prepared(args.file), args.images, args.labels, split=args.split)
    print(f"wrote {count} images to {args.images} and labels to {args.labels}")
    return 0


def _data_import_pickle(args: argparse.Namespace) -> int:
    from trainable.data import import_pickle

    class_names = tuple(args.class_names.split(",")) if args.class_names else None
    dataset = import_pickle(args.images, args.labels, class_names=class_names, source=args.name)
    dataset.save(args.out)
    _print_info(args.out, dataset)
    return 0


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected key=value")
        values[key.strip()] = value
    return values


def _trial(args: argparse.Namespace) -> int:
    import time

    from trainable.config import TrainConfig, preset
    from trainable.local import run_local_trial

    overrides = _parse_sets(args.set)
    if args.resume:
        extra = set(overrides) - {"iterations"}
        if extra or args.data or args.preset:
            raise UserError("--resume continues a trial as it was configured; only --set iterations=N may change")
        iterations = TrainConfig.from_dict({"iterations": overrides["iterations"]}).iterations \
            if "iterations" in overrides else None
        outcome = run_local_trial(args.resume, resume=True, iterations=iterations, progress=True)
    else:
        name = args.preset or "V0"
        config = preset(name, **overrides)
        out = args.out or Path("runs") / f"trial-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        outcome = run_local_trial(out, config=config, preset=name, data=args.data,
                                  judge_steps=args.judge_steps, progress=True)
    last = outcome.rows[-1] if outcome.rows else {}
    print(f"stopped: {outcome.stop_reason} at iteration {last.get('iteration', 0)}")
    if last.get("verdict_evidence"):
        print(f"evidence: {last['verdict_evidence']}")
    if last.get(FID_INTRA) is not None:
        print(f"intra-class judge FD {last[FID_INTRA]:.3f}, conditional accuracy {last[COND_ACCURACY]:.3f}, "
              f"lowest diversity {last[DIVERSITY_MIN]:.3f}, coverage {last[COVERAGE]:.3f} "
              f"(judge held-out accuracy {last['judge_accuracy']:.3f})")
    print(f"trial folder: {outcome.directory}")
    if last.get("grid"):
        print(f"latest grid: {outcome.directory / last['grid']}")
    if outcome.stop_reason == INTERRUPTED:
        print(f"resume with: cgan-study trial --resume {outcome.directory}")
        return 130
    return 0


def _study_run(args: argparse.Namespace) -> int:
    import time

    from study._summary import summary
    from study.runner import load_study, run_study
    from study.spec import load_spec

    spec = load_spec(args.config, samples=args.samples, gpus_per_trial=args.gpus_per_trial,
                     cpus_per_trial=args.cpus_per_trial, seed=args.seed)
    name = args.name or f"study-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        run_study(spec, name=name, data=str(args.data) if args.data else None, storage=args.storage,
                  address=args.address, judge_steps=args.judge_steps, wait_for_gpus=args.wait_for_gpus)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: cgan-study study resume {name} --storage {args.storage}", file=sys.stderr)
        return 130
    print(summary(load_study(name, args.storage)))
    return 0


def _study_resume(args: argparse.Namespace) -> int:
    from study._summary import summary
    from study.runner import load_study, resume_study

    try:
        resume_study(args.name, storage=args.storage, address=args.address)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: cgan-study study resume {args.name} --storage {args.storage}",
              file=sys.stderr)
        return 130
    print(summary(load_study(args.name, args.storage)))
    return 0


def _study_status(args: argparse.Namespace) -> int:
    from analysis import read_experiment
    from analysis._leaderboard import format_ranking, get_leaderboard_info
    from study._summary import summary
    from study.runner import load_study

    path = load_study(args.name, args.storage)
    print(format_ranking(get_leaderboard_info(read_experiment(path))))
    print(summary(path))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    import webbrowser

    from analysis import read_experiment
    from analysis._leaderboard import format_ranking, get_leaderboard_info
    from analysis._replay import format_replay, get_replay_info
    from analysis.dashboard import build_dashboard

    if not Path(args.dir).is_dir():
        raise UserError(f"{args.dir}: no such folder (give a study folder or a trial folder)")
    experiment = read_experiment(args.dir)
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
        from analysis._browser import open_page

        report = open_page(result.path, full_page=args.full_page)
        args.screenshot.write_bytes(report.screenshot)
        print(f"screenshot: {args.screenshot}")
        for error in report.errors:
            print(f"browser error: {error}", file=sys.stderr)
    if args.open:
        webbrowser.open(result.path.resolve().as_uri())
    return 0


def _analyze_replay(args: argparse.Namespace) -> int:
    from analysis import read_experiment
    from analysis._replay import format_replay, get_replay_info
    from study.replay import run_replay

    try:
        path = run_replay(args.dir, top=args.top, seeds=args.seeds, name=args.name, storage=args.storage,
                          address=args.address)
    except KeyboardInterrupt:
        print("interrupted; continue with: cgan-study study resume NAME --storage STORAGE "
              "(the name and storage printed above)", file=sys.stderr)
        return 130
    print(format_replay(get_replay_info(read_experiment(path))))
    print(f"re-run study: {path} (cgan-study analyze {path} draws its dashboard)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cgan-study",
        description="Hyper-parameter studies of the paper's conditional GAN for facial expressions.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = commands.add_parser("data", help="generate, prepare, fuse and inspect data sets",
                               description="Generate, prepare, fuse and inspect data sets.")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_commands.add_parser(
        "synth", help="write the built-in synthetic expression set in FER-2013's published forms",
        description="Draw the built-in synthetic faces and write them as fer2013.csv, as image "
                    "folders (images/train/<expression>/*.png) and as a prepared file (synthetic.npz).")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--count", type=int, default=3500, help="number of images (default 3500)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--size", type=int, default=28, help="side of the prepared images (default 28)")
    synth.add_argument("--forms", default="csv,folders,prepared",
                       help="comma-separated forms to write: csv, folders, prepared (default all)")
    synth.set_defaults(handler=_data_synth)

    from trainable.data._readers import FORMATS  # light: numpy and Pillow only

    prepare = data_commands.add_parser(
        "prepare", help="read a data set in its published form into one prepared .npz file",
        description="Read FER-2013 (fer2013.csv or its image folders), MMAFEDB (image folders) or any "
                    "class-folder data set; convert to grayscale, resize, and write one compressed .npz.")
    prepare.add_argument("source", type=Path, help="fer2013.csv, or a folder of split/class or class folders")
    prepare.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
    prepare.add_argument("--format", choices=FORMATS, default="auto", help="input form (default: auto-detect)")
    prepare.add_argument("--size", type=int, default=28, help="side of the prepared images (default 28, as in the paper)")
    prepare.add_argument("--name", help="source name recorded for each image (default from the format or folder)")
    prepare.set_defaults(handler=_data_prepare)

    fuse = data_commands.add_parser("fuse", help="merge prepared sets into one (the paper's 'fuse')",
                                    description="Merge prepared data sets, recording each image's source.")
    fuse.add_argument("inputs", nargs="+", type=Path, help="prepared files to merge")
    fuse.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
    fuse.set_defaults(handler=_data_fuse)

    info = data_commands.add_parser("info", help="summarise a prepared file",
                                    description="Print size, classes, sources, counts per split and the content hash.")
    info.add_argument("file", type=Path)
    info.add_argument("--grid", type=Path, help="also write a PNG grid of training images, one row per class")
    info.add_argument("--columns", type=int, default=12, help="images per row of the grid (default 12)")
    info.set_defaults(handler=_data_info)

    export = data_commands.add_parser("export-pickle", help="write the paper's pickle pair (images, labels)",
                                      description="Write uint8 images (N,S,S,1) and labels (N,) as two pickles.")
    export.add_argument("file", type=Path, help="prepared file")
    export.add_argument("--images", required=True, type=Path)
    export.add_argument("--labels", required=True, type=Path)
    export.add_argument("--split", choices=("train", "valid", "test"), help="export one split only")
    export.set_defaults(handler=_data_export_pickle)

    imp = data_commands.add_parser(
        "import-pickle", help="read the paper's pickle pair, safely",
        description="Read an images pickle and a labels pickle through a restricted unpickler that "
                    "accepts numpy arrays and nothing else (a pickle can run code).")
    imp.add_argument("--images", required=True, type=Path)
    imp.add_argument("--labels", required=True, type=Path)
    imp.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
    imp.add_argument("--class-names", help="comma-separated class names (default: the 7 expressions)")
    imp.add_argument("--name", default="pickle", help="source name (default 'pickle')")
    imp.set_defaults(handler=_data_import_pickle)

    trial = commands.add_parser(
        "trial", help="run one training trial locally, without Ray",
        description="Train the paper's CGAN once on this machine. The output folder holds the files of a "
                    "Ray Tune trial folder (params.json, result.json, progress.csv, checkpoints) plus a sample "
                    "grid per evaluation. Ctrl-C stops with a final checkpoint; --resume continues.",
        epilog="examples: cgan-study trial --preset V1 --set iterations=5000 --set eval_every=500\n"
               "          cgan-study trial --resume runs/trial-V1-20261125-101500",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    trial.add_argument("--preset", choices=("V0", "V1", "V2"), help="the paper's variant to start from (default V0)")
    trial.add_argument("--data", type=Path, help="prepared .npz (default: the built-in synthetic set)")
    trial.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set latent_size=64 --set d_filters=16,32,64 "
                            "--set freeze_after=off (repeatable)")
    trial.add_argument("--out", type=Path, help="trial folder (default runs/trial-PRESET-TIME)")
    trial.add_argument("--resume", type=Path, metavar="DIR", help="continue the trial in DIR from its last checkpoint")
    trial.add_argument("--judge-steps", type=int, default=1500,
                       help="training steps of the judge classifier, trained once per data set (default 1500)")
    trial.set_defaults(handler=_trial)

    study = commands.add_parser("study", help="run, resume and inspect Optuna-searched Ray Tune studies",
                                description="Run, resume and inspect studies: Optuna TPE search, ASHA and "
                                            "collapse stopping, trials across Ray workers.")
    study_commands = study.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    run = study_commands.add_parser(
        "run", help="start a study (embedded local Ray, or --address to join a cluster)",
        description="Start a study. Without --address it starts a local Ray sized to this machine and shuts "
                    "it down on exit. The paper's V0, V1 and V2 always run as baseline points.",
        epilog="examples: cgan-study study run --samples 12\n"
               "          cgan-study study run --config study.toml --address auto --gpus-per-trial 0.25 "
               "--storage s3://bucket/studies",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", type=Path, help="study file (TOML: [study], [fixed], [search]); default: built-in")
    run.add_argument("--data", type=Path, help="prepared .npz (default: the built-in synthetic set)")
    run.add_argument("--name", help="study name (default study-TIME)")
    run.add_argument("--samples", type=int, help="number of trials, baselines included (default from the study file: 20)")
    run.add_argument("--address", help="Ray cluster address (e.g. auto); default: start Ray here")
    run.add_argument("--gpus-per-trial", type=float, help="GPU share per trial, e.g. 0.25 = four trials per GPU")
    run.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
    run.add_argument("--wait-for-gpus", action="store_true",
                     help="keep GPU requests even when no GPU is up yet (autoscaling clusters)")
    run.add_argument("--seed", type=int, help="TPE sampler seed")
    run.add_argument("--judge-steps", type=int, default=1500, help="judge training steps (default 1500)")
    run.add_argument("--storage", default="runs/studies",
                     help="where results go: a local or shared folder, or s3://... (default runs/studies)")
    run.set_defaults(handler=_study_run)
    resume = study_commands.add_parser("resume", help="finish a study whose driver stopped or was killed",
                                       description="Continue a study from its saved state: unfinished trials "
                                                   "resume from their checkpoints, the searcher where it was.")
    resume.add_argument("name")
    resume.add_argument("--storage", default="runs/studies")
    resume.add_argument("--address", help="Ray cluster address; default: start Ray here")
    resume.set_defaults(handler=_study_resume)
    status = study_commands.add_parser("status", help="show a study's trials from disk (no Ray needed)",
                                       description="Rank a study's trials from the files on disk.")
    status.add_argument("name", help="study name or folder")
    status.add_argument("--storage", default="runs/studies")
    status.set_defaults(handler=_study_status)

    analyze = commands.add_parser(
        "analyze", help="rank trials and write the offline HTML dashboard (or: analyze replay ...)",
        description="Rank the trials of a study folder or a single trial folder, print the top of the ranking, "
                    "and write one self-contained HTML dashboard (works offline: plotly and the sample grids "
                    "are inside the file). No Ray needed; a study still running is read as it is.",
        epilog="examples: cgan-study analyze runs/studies/demo --open\n"
               "          cgan-study analyze runs/trial-V1-20261125-101500 --out v1.html\n"
               "          cgan-study analyze replay runs/studies/demo --top 3 --seeds 5   (see: analyze replay --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    analyze.add_argument("dir", type=Path, metavar="DIR", help="a study folder or a trial folder")
    analyze.add_argument("--out", type=Path, help="HTML file to write (default DIR/dashboard.html)")
    analyze.add_argument("--open", action="store_true", help="open the dashboard in the web browser")
    analyze.add_argument("--top", type=int, default=10, help="trials of the ranking printed here (default 10)")
    analyze.add_argument("--max-mb", type=float, default=45.0,
                         help="size budget of the HTML file; grids become thumbnails, then fewer (default 45)")
    analyze.add_argument("--screenshot", type=Path, metavar="PNG",
                         help="also render the dashboard in headless Chromium (network off) and save a PNG")
    analyze.add_argument("--full-page", action="store_true", help="with --screenshot: the whole page, not the top")
    analyze.set_defaults(handler=_analyze)

    replay = commands.add_parser(
        REPLAY_COMMAND, help="the same as `analyze replay`: re-train a study's best configurations with new "
                             "seeds and rank them by the median",
        prog="cgan-study analyze replay",
        description="Re-train the top K configurations of a study with S new seeds each, as a new study run by "
                    "the same machinery (locally, or on a cluster with --address), and rank them by the median "
                    "score with the spread. GAN results vary with the seed about as much as between models.",
        epilog="example: cgan-study analyze replay runs/studies/demo --top 3 --seeds 5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    replay.add_argument("dir", type=Path, metavar="DIR", help="the study folder to re-run")
    replay.add_argument("--top", type=int, default=3, help="configurations to re-run (default 3)")
    replay.add_argument("--seeds", type=int, default=3, help="new seeds per configuration (default 3)")
    replay.add_argument("--name", help="name of the re-run study (default: DIR's name + '-replay')")
    replay.add_argument("--storage", help="where the re-run study goes (default: beside DIR)")
    replay.add_argument("--address", help="Ray cluster address; default: start Ray here")
    replay.set_defaults(handler=_analyze_replay)
    return parser


REPLAY_COMMAND = "analyze-replay"  # typed as two words: `cgan-study analyze replay DIR`


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["analyze", "replay"]:
        argv = [REPLAY_COMMAND, *argv[2:]]
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (UserError, FileExistsError) as exc:
        print(f"cgan-study: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `cgan-study ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("cgan-study: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
