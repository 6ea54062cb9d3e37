"""Trials sharing one device: the aggregate iterations/s of N trainers training at once on one GPU
(or on the CPU), against one alone.

Each trial is a process of its own, as a Ray trial with ``gpus_per_trial = 1/N`` is (its own CUDA
context; Ray only sets CUDA_VISIBLE_DEVICES, and packs N such trials on one GPU). Each builds the
trainer (the paper's V0 by default, at the precision "auto" picks there), warms up, waits for the
others, then trains for ``--seconds`` and counts its iterations, ending with a device sync; its
rate is iterations / its own window. The aggregate is the sum of the N rates, printed per N with
the ratio to N = 1 (issue 12's goal on a GPU: >= 3x at some N). Every process runs with one CPU
thread, as a 1-CPU Ray trial does, so on a CPU-only machine this measures how trials share the
cores instead.

Needs only what trainable/ imports (torch, numpy, pillow, tqdm; no Ray, no Optuna): it runs where
the project is not installed.

    python benchmarks/gpu_sharing.py [--trials 1,2,4,8] [--seconds 20] [--config V0|small] [--device auto] [--eager]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import threading
import time

from study.runner import environment  # imports neither Ray nor Optuna: this runs where they are not
from train_speed import ONE_THREAD, SMALL  # benchmarks/, the folder Python runs this script from

_START_TIMEOUT = 300  # seconds a trial may take to build and warm up before the others stop waiting


def _config(name: str):
    from trainable.config import TrainConfig, preset

    return TrainConfig.from_dict(SMALL) if name == "small" else preset(name)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trial(name: str, device_name: str, seconds: float, warmup: int, graphs: bool, barrier, results) -> None:
    """One trial's process: build, warm up, wait for the others, train for ``seconds``. Whatever
    happens, it puts one result on the queue: (iterations, seconds) or ("error", why)."""
    try:
        import torch

        from trainable.data import builtin_dataset
        from trainable.training import Trainer

        torch.set_num_threads(1)
        trainer = Trainer(_config(name), builtin_dataset(), device=device_name, cuda_graphs=graphs)
        for _ in range(warmup):
            trainer.advance()
        _sync(trainer.device)
    except BaseException as exc:  # the others must not wait for a trial that cannot start
        barrier.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        barrier.wait(timeout=_START_TIMEOUT)
    except threading.BrokenBarrierError:
        results.put(("error", "another trial could not start"))
        return
    try:
        count, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(10):
                trainer.advance()
            count += 10
            if time.perf_counter() >= deadline:
                break
        _sync(trainer.device)
        results.put((count, time.perf_counter() - start))
    except BaseException as exc:  # an out-of-memory error at 8 trials, say
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def run(n: int, name: str, device: str, seconds: float, warmup: int, graphs: bool = True) -> list[float] | str:
    """The rates (it/s) of ``n`` trials training at once on ``device``, or why they could not."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(n), spawn.Queue()
    workers = [spawn.Process(target=_trial, args=(name, device, seconds, warmup, graphs, barrier, results))
               for _ in range(n)]
    with environment(**ONE_THREAD):  # what the spawned processes inherit
        for worker in workers:
            worker.start()
    outcomes = []
    deadline = time.monotonic() + _START_TIMEOUT + seconds + 60
    while len(outcomes) < n:
        try:
            outcomes.append(results.get(timeout=5))
        except queue.Empty:
            # A process that died without a word (killed for memory, a crash in CUDA) never answers.
            dead = [worker for worker in workers if worker.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for worker in workers:
                    worker.kill()
                return (f"trial process ended with exit code {dead[0].exitcode}" if dead
                        else "no answer in time")
    for worker in workers:
        worker.join()
    errors = sorted((detail for kind, detail in outcomes if kind == "error"),
                    key=lambda detail: detail.startswith("another trial"))  # the cause first
    return errors[0] if errors else [count / elapsed for count, elapsed in outcomes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="1,2,4,8", help="how many trials share the device, one run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="each run's timed window")
    parser.add_argument("--warmup", type=int, default=30, help="iterations each trial trains before the window")
    parser.add_argument("--config", default="V0", choices=("V0", "V1", "V2", "recipe", "small"))
    parser.add_argument("--device", default="auto", help="cuda, cpu, or auto (cuda where there is one)")
    parser.add_argument("--eager", action="store_true", help="on CUDA, eager steps instead of CUDA graphs")
    args = parser.parse_args()
    try:
        counts = [int(value) for value in args.trials.split(",")]
    except ValueError:
        parser.error(f"--trials: expected whole numbers separated by commas, got {args.trials!r}")
    if not counts or min(counts) < 1 or args.seconds <= 0:
        parser.error("--trials must be positive whole numbers and --seconds above 0")
    import torch

    from trainable.data import builtin_dataset

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    builtin_dataset()  # drawn and cached once, before any process reads it
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    steps = " (eager steps)" if args.eager and device == "cuda" else " (steps as CUDA graphs)" if device == "cuda" else ""
    print(f"{args.config} trials{steps} sharing one {where}, {args.seconds:.0f} s window each run, torch {torch.__version__}",
          flush=True)
    alone = None
    for n in counts:
        rates = run(n, args.config, device, args.seconds, args.warmup, graphs=not args.eager)
        if isinstance(rates, str):  # the larger counts may not fit: say so and go on
            print(f"{n} at once: failed ({rates})", flush=True)
            continue
        total = sum(rates)
        alone = alone if alone is not None else (total if n == 1 else None)
        ratio = f"{total / alone:.2f}x one alone" if alone else "(no N = 1 run to compare with)"
        print(f"{n} at once: aggregate {total:.1f} it/s, {ratio}; per trial {min(rates):.1f}-{max(rates):.1f} it/s",
              flush=True)


if __name__ == "__main__":
    main()
