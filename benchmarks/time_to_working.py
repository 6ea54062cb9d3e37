"""Time to a working configuration: the wall time from a study's start until any of its trials
first reports judge conditional accuracy >= 0.5 (chance on the built-in set: 1/7).

Runs a study (the built-in defaults: 20 trials of 1200 iterations; or a study file, e.g. examples/demo.toml) on an embedded Ray sized to
this machine, then reads the clock time of that first report from the trial folders, as the
study summary's "working:" line does. The judge is trained (or read from the cache) before the
clock starts. Prints the figure, or says that no trial got there within the study's budget.

    python benchmarks/time_to_working.py [--config study.toml] [--samples N] [--seeds 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from analysis import WORKING_ACCURACY, first_working, read_experiment
from study.runner import run_study
from study.spec import load_spec
from trainable.data import builtin_dataset
from trainable.judge import load_or_train_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a study file (default: the built-in defaults)")
    parser.add_argument("--samples", type=int, help="trials per study (default: the study file's)")
    parser.add_argument("--seeds", type=int, default=1, help="studies with sampler seeds 0, 1, ...; the median is printed")
    args = parser.parse_args()
    load_or_train_judge(builtin_dataset())
    times: list[float | None] = []
    with tempfile.TemporaryDirectory() as storage:
        for seed in range(args.seeds):
            spec = dataclasses.replace(load_spec(args.config, samples=args.samples), seed=seed)
            study = run_study(spec, name=f"working-{seed}", storage=storage)
            experiment = read_experiment(Path(study["experiment_dir"]))
            working = first_working(experiment)
            times.append(working.seconds if working else None)
            where = (f"{working.trial.name} at iteration {working.row.get('iteration')}, {working.seconds:.0f} s"
                     if working else "no trial reached it")
            print(f"seed {seed}: {len(experiment.trials)} trials; first conditional accuracy >= "
                  f"{WORKING_ACCURACY}: {where}", flush=True)
    reached = [t for t in times if t is not None]
    if len(reached) == len(times):
        print(f"time to a working configuration: median {statistics.median(reached):.0f} s over {len(times)} studies")
    else:
        print(f"time to a working configuration: {len(times) - len(reached)} of {len(times)} studies never got there")


if __name__ == "__main__":
    main()
