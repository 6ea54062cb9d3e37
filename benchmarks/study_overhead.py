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

import multiprocessing

import torch

from study.runner import run_study
from study.spec import Choice, load_spec
from trainable.data import builtin_dataset
from trainable.judge import load_or_train_judge
from trainable.loop import train
from trainable.training import Trainer


def _alone(config, seconds) -> None:
    torch.set_num_threads(1)
    dataset = builtin_dataset()
    judge, _ = load_or_train_judge(dataset)
    trainer = Trainer(config, dataset, judge)
    start = time.perf_counter()
    train(trainer, lambda row, grid, t: None, stop_on_collapse=False)
    seconds.put(time.perf_counter() - start)


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
    load_or_train_judge(builtin_dataset())  # cached before anything is timed

    config = spec.base_config().replace(**{k: v for k, v in point.items() if k in spec.search})
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    spawn = multiprocessing.get_context("spawn")
    process = spawn.Process(target=_alone, args=(config, queue))
    process.start(), process.join()
    alone = queue.get()
    print(f"one trial alone (1 thread): {alone:.1f} s for {args.iterations} iterations", flush=True)
    # The same trial in C plain processes at once: what the hardware gives without Ray.
    processes = [spawn.Process(target=_alone, args=(config, queue)) for _ in range(concurrency)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    together = max(queue.get() for _ in processes)
    print(f"{concurrency} trials at once in plain processes: {together:.1f} s each "
          f"(hardware contention {together / alone:.2f}x)", flush=True)

    with tempfile.TemporaryDirectory() as storage:
        start = time.perf_counter()
        run_study(spec, name="overhead", storage=storage)
        wall = time.perf_counter() - start
    ideal = args.trials * alone / concurrency
    print(f"study of {args.trials} trials at concurrency {concurrency}: {wall:.1f} s wall "
          f"(Ray start, judge from cache, trials) vs ideal {ideal:.1f} s: overhead ratio {wall / ideal:.2f}")
    contended = args.trials * together / concurrency
    print(f"against the same trials run {concurrency} at a time without Ray ({contended:.1f} s): "
          f"ratio {wall / contended:.2f} (what Ray and the study machinery add)")


if __name__ == "__main__":
    main()
