"""The ``analyze`` commands: the dashboard and summary, CAS, a PBT schedule, seed re-runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import describe_pick  # plain Python: no torch, no plotly
from study._cli_data import add_source
from study._cli_trial import add_checkpoint, pick_trial, picked_generator, trial_schedule
from study._command import DEFAULT_STORAGE, PROG, Command, add_address, add_storage
from trainable.errors import UserError


def _study_folder(given: str, storage: str) -> Path:
    """A study's folder, or a trial's: ``given`` as it is, or a study's name under ``storage`` (a study
    stored under a URI fetches its trials)."""
    from study.runner import load_study
    from trainable.experiment import STUDY_FILE

    folder = Path(given)
    if (folder / STUDY_FILE).is_file() or (not folder.exists() and "/" not in given):
        return load_study(given, storage)
    return folder


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
        add_storage(parser, f"where a study named by its name is (default {DEFAULT_STORAGE})")
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

        experiment = read_experiment(_study_folder(args.dir, args.storage))
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
        add_source(parser)
        add_checkpoint(parser)
        parser.add_argument("--steps", type=int,
                            help="classifier training steps (default: the trial's judge steps, so the judge is "
                                 "the ceiling)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.cas import generator_cas
        from trainable.judge import load_or_train_judge
        from trainable.training import resolve_device

        if args.steps is not None and args.steps < 1:
            raise UserError(f"--steps {args.steps}: must be at least 1")
        _, dataset, judge_steps, trained = picked_generator(args)
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
        add_source(parser)
        parser.add_argument("--out", type=Path, help="write the Ray PBT policy file here (JSON lines)")

    def run(self, args: argparse.Namespace) -> int:
        import json

        from analysis import schedule_lines
        from trainable.experiment import ray_policy, write_text_atomic

        trial, origin = pick_trial(args)
        schedule = trial_schedule(trial)
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
    epilog = ("examples: cgan-study analyze replay demo --top 3 --seeds 5\n"
              "          cgan-study analyze replay runs/studies/demo --storage replays")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", metavar="DIR", help="the study to re-run: its folder, or its name under --storage")
        parser.add_argument("--top", type=int, default=3, help="configurations to re-run (default 3)")
        parser.add_argument("--seeds", type=int, default=3, help="new seeds per configuration (default 3)")
        parser.add_argument("--name", help="name of the re-run study (default: DIR's name + '-replay')")
        add_storage(parser, f"where a study named by its name is (default {DEFAULT_STORAGE}); the re-run study "
                            "goes there too (default: beside the study)", default=None)
        add_address(parser)

    def run(self, args: argparse.Namespace) -> int:
        from analysis import format_replay, get_replay_info, read_experiment
        from study.replay import run_replay

        path = run_replay(_study_folder(args.dir, args.storage or DEFAULT_STORAGE), top=args.top, seeds=args.seeds, name=args.name, storage=args.storage,
                          address=args.address, connect_timeout=args.connect_timeout)
        print(format_replay(get_replay_info(read_experiment(path))))
        print(f"re-run study: {path} (cgan-study analyze {path} draws its dashboard)")
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        return (f"interrupted: continue with {PROG} study resume NAME --storage STORAGE "
                "(the name and storage printed above)")
