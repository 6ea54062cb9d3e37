"""Throughput of fused trials: K trials of one architecture stepped as one batched model
(trainable/fused.py) against one trial alone, in aggregate iterations/s, measured in this process
and interleaved (alone, fused, alone, ...) so the ratio holds on a busy machine. On CUDA both are
replayed as CUDA graphs (as a study trains them), and the fused step is also timed eager.

    python benchmarks/fused_throughput.py [--device cpu|cuda] [--trials 1,2,4,8,16] [--seconds 5]
        [--set KEY=VALUE ...]

A trial here: the demo's G (32,16,8), D 16,32,64, latent 64, batch 64 (``--set`` changes any field);
the fused trials differ in seed and learning rates, as a study's do.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainable.config import TrainConfig
from trainable.data import builtin_dataset
from trainable.errors import UserError
from trainable.fused import FusedTrainers
from trainable.training import Trainer

TRIAL = {"g_filters": "32,16,8", "d_filters": "16,32,64", "latent_size": 64}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(advance, trials: int, seconds: float, device: torch.device) -> float:
    """Aggregate iterations/s: ``trials`` iterations per call of ``advance``, over about ``seconds``."""
    for _ in range(3):  # warm-up (and a CUDA graph's capture)
        advance()
    _sync(device)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10):
            advance()
        calls += 10
        _sync(device)
    return calls * trials / (time.perf_counter() - started)


def configs(base: dict, count: int) -> list[TrainConfig]:
    """``count`` trials that differ where a study's fused trials do: seed and learning rates."""
    rates = [2e-4 * 10 ** (index % 5 / 4) for index in range(count)]  # 2e-4 .. 2e-3
    return [TrainConfig.from_dict({**base, "seed": index, "g_lr": rates[index], "d_lr": rates[-1 - index]})
            for index in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trials", default="1,2,4,8,16", help="numbers of fused trials (default 1,2,4,8,16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per measurement (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as a 1-CPU trial)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config field of every trial")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    try:
        counts = [int(value) for value in args.trials.split(",")]
        base = {**TRIAL, **dict(item.split("=", 1) for item in args.set), "device": args.device}
        TrainConfig.from_dict(base)
    except (ValueError, UserError) as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = builtin_dataset()
    alone = Trainer(configs(base, 1)[0], dataset)
    print(f"{device.type}, {alone.precision}, a trial: G {alone.config.g_filters}, D {alone.config.d_filters}, "
          f"latent {alone.config.latent_size}, batch {alone.config.batch_size}; aggregate iterations/s", flush=True)
    references = []
    for count in counts:
        references.append(rate(alone.advance, 1, args.seconds, device))
        fused = FusedTrainers([Trainer(config, dataset) for config in configs(base, count)])
        together = {"fused": rate(fused.advance, count, args.seconds, device)}
        if device.type == "cuda":
            eager = FusedTrainers([Trainer(config, dataset, cuda_graphs=False) for config in configs(base, count)])
            together["fused eager"] = rate(eager.advance, count, args.seconds, device)
        references.append(rate(alone.advance, 1, args.seconds, device))
        reference = statistics.mean(references[-2:])
        print(f"K={count:>3}: one trial alone {reference:8.1f} | " + " | ".join(
            f"{label} {value:8.1f} ({value / reference:.2f}x)" for label, value in together.items()), flush=True)
        del fused


if __name__ == "__main__":
    main()
