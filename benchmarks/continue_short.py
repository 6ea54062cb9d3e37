"""After a study whose trials were too short: how much more compute the summary's "too short" line
leads to before a working CGAN. For each study folder given (a study where no trial worked, e.g. one
that search_from_scratch.py kept with --keep), it counts the study's compute as
search_from_scratch.py does (training iterations over every report), then goes on with its best
still-improving trials as the line's command does (`trial --from STUDY --rank K --continue`, each
to twice its length, one after another, best ranked first), and prints per trial where it first
reported judge conditional accuracy >= 0.5 and its best FD-intra by the new length, and per study
the compute, the study's and the continuations', until the first working report.

    python benchmarks/continue_short.py STUDY [STUDY ...] [--trials 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from analysis import WORKING_ACCURACY, first_working, read_experiment, short_trials
from search_from_scratch import figures, reports  # beside this file
from trainable.experiment import COND_ACCURACY, FID_INTRA, trial_context
from trainable.checkpoint import read_checkpoint
from trainable.generate import find_checkpoint
from trainable.local import BUILTIN, DEFAULT_JUDGE_STEPS, continue_trial


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", metavar="STUDY", help="study folders where no trial worked")
    parser.add_argument("--trials", type=int, default=3, help="still-improving trials to go on with (default 3)")
    parser.add_argument("--keep", help="write the continued trials here (default: a temporary folder)")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.keep or scratch)
        for study in map(Path, args.studies):
            experiment = read_experiment(study)
            if first_working(experiment) is not None:
                print(f"{study.name}: a trial worked already; nothing to go on with")
                continue
            short = short_trials(experiment)
            if short is None:
                print(f"{study.name}: not too short (fewer than half of its trials that ran to their end were "
                      "still improving); nothing to go on with")
                continue
            spent = figures(reports(study), [])["total"]
            working_at = None
            print(f"{study.name}: {spent} iterations, no working trial; {len(short.rising)} of {len(short.ended)} "
                  f"trials still improving at {short.length}; going on to {2 * short.length}:")
            for trial, rank in list(zip(short.rising, short.ranks))[:args.trials]:
                context, checkpoint = trial_context(trial.path), find_checkpoint(trial.path)
                started, reached = time.perf_counter(), int(read_checkpoint(checkpoint)["iteration"])
                outcome = continue_trial(trial.path, checkpoint, out / f"{study.name}-rank{rank}",
                                         iterations=2 * short.length, data=context["data"] or BUILTIN,
                                         judge_steps=int(context["judge_steps"] or DEFAULT_JUDGE_STEPS))
                rows = [row for row in outcome.rows if row["iteration"] > reached]
                first = next((row for row in rows if (row.get(COND_ACCURACY) or 0) >= WORKING_ACCURACY), None)
                best = min(outcome.rows, key=lambda row: row[FID_INTRA] if row.get(FID_INTRA) is not None else math.inf)
                if first is not None and working_at is None:
                    working_at = spent + first["iteration"] - reached
                spent += (rows[-1]["iteration"] if rows else reached) - reached
                print(f"  rank {rank} ({trial.name}, {trial.last[FID_INTRA]:.2f} / {trial.last[COND_ACCURACY]:.2f} at "
                      f"{reached}): " + (f"working at {first['iteration']} ({first[COND_ACCURACY]:.2f})"
                                         if first else "never working")
                      + f"; best {best[FID_INTRA]:.2f} / {best[COND_ACCURACY]:.2f} at {best['iteration']} "
                        f"({time.perf_counter() - started:.0f} s)", flush=True)
            print(f"  first working report after {working_at} iterations of the study and its continuations"
                  if working_at else "  no continued trial worked", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
