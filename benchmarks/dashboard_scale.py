"""Dashboard scale: a generated study of 1000 trials x 20 evaluations (goal: built in < 30 s
on 2 cores, HTML < 50 MB). Prints the figures, and against a floor measured in the same run:
reading every trial's files and every thumbnail's bytes, with no figure or page built."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import read_experiment  # noqa: E402
from tests.synthetic_study import write_synthetic_study  # noqa: E402
from analysis.dashboard import build_dashboard  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--evaluations", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="write the study and dashboard here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        study = root / "scale-study"
        started = time.perf_counter()
        write_synthetic_study(study, trials=args.trials, evaluations=args.evaluations)
        print(f"generated {args.trials} trials x {args.evaluations} evaluations in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        experiment = read_experiment(study)
        thumbs = sum(len(p.read_bytes()) for p in study.glob("trial_*/grids/*.thumb.png"))
        floor = time.perf_counter() - started
        print(f"floor (read every result.json and thumbnail, {thumbs / 1e6:.1f} MB of thumbnails): {floor:.2f} s")
        del experiment

        result = build_dashboard(study, root / "dashboard.html")
        print(f"dashboard: {result.seconds:.2f} s ({result.seconds / floor:.1f}x the floor), "
              f"{result.bytes / 1e6:.1f} MB, grids: {result.frame_level}, "
              f"{result.frames_shown} of {result.frames_total} evaluations embedded")
        print(f"goals: < 30 s {'met' if result.seconds < 30 else 'NOT met'}, "
              f"< 50 MB {'met' if result.bytes < 50e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
