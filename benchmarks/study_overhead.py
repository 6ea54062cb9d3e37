"""Study overhead: wall time of a study of N trials at concurrency C over (sum of the same
trials' compute run alone) / C. 1.00 would be perfect; the goal is <= 1.10.

All trials share one configuration (single-choice search space, no ASHA or collapse stop), so
"the same trials run alone" is one trial timed alone, in this process, with the same thread
count a study trial gets (1 CPU each), times N.

    python benchmarks/study_overhead.py [--trials 6] [--iterations 400]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import torch

from study.runner import run_study
from study.spec import Choice, load_spec
from trainable.data import builtin_dataset
from trainable.judge import load_or_train_judge
from trainable.loop import train
from trainable.training import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=400)
    args = parser.parse_args()
    concurrency = os.cpu_count() or 1
    base = load_spec(samples=args.trials)
    fixed = {**base.fixed, "iterations": args.iterations, "eval_every": args.iterations // 4,
             "collapse_grace": 10**9}
    # One point only: every trial (the three baselines included) trains the same configuration.
    point = base.baseline_points()[0]
    spec = dataclasses.replace(base, fixed=fixed, search={k: Choice((v,)) for k, v in point.items()},
                               early_stopping=False, baselines=("V0",))
    dataset = builtin_dataset()
    judge, _ = load_or_train_judge(dataset)

    torch.set_num_threads(1)
    trainer = Trainer(spec.base_config().replace(**{k: v for k, v in point.items() if k in spec.search
                                                    and k not in ("freeze_after", "freeze_accuracy")},
                                                 freeze_after=None, freeze_accuracy=None), dataset, judge)
    start = time.perf_counter()
    train(trainer, lambda row, grid, t: None, stop_on_collapse=False)
    alone = time.perf_counter() - start
    torch.set_num_threads(concurrency)
    print(f"one trial alone (1 thread): {alone:.1f} s for {args.iterations} iterations", flush=True)

    with tempfile.TemporaryDirectory() as storage:
        start = time.perf_counter()
        run_study(spec, name="overhead", storage=storage)
        wall = time.perf_counter() - start
    ideal = args.trials * alone / concurrency
    print(f"study of {args.trials} trials at concurrency {concurrency}: {wall:.1f} s wall "
          f"(Ray start, judge from cache, trials) vs ideal {ideal:.1f} s: overhead ratio {wall / ideal:.2f}")


if __name__ == "__main__":
    main()
