"""Which GAN remedies help the paper's CGAN: V0, V0 plus each remedy alone, and the recipe.

Every run trains on the built-in set at the same widths, learning rate and iterations (by
default 3000 iterations at lr 1e-3, the paper's D widths, the study default's G widths), scored by the judge at the end: conditional accuracy (higher is better,
chance 1/7) and FD-intra (lower is better). Prints the median and the range over seeds, the
iterations until conditional accuracy first reached 0.5, and the lowest D loss a run reported
(the figure the loss-collapse thresholds per loss are measured from). Runs go to worker
processes, one CPU thread each.

    python benchmarks/remedies.py [--seeds 3] [--iterations 3000] [--jobs 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import statistics
import time

from trainable.config import RECIPE, TrainConfig
from trainable.experiment import COND_ACCURACY, D_LOSS, DIVERSITY_MIN, FID_INTRA

# V0 at the demo's generator width (study/spec.py DEFAULT_FIXED), latent 32, [-1,1]: the paper's D
# (32,64,128) against a 1/8-width G. With a weaker D (8,16,32; --d-filters) every configuration
# stayed near chance at 2000 iterations (conditional accuracy 0.17-0.23, one seed each; README).
BASE = {"g_filters": (32, 16, 8), "d_filters": (32, 64, 128), "latent_size": 32, "normalization": "[-1,1]",
        "eval_samples_per_class": 50, "collapse_grace": 10**9}
REMEDIES: dict[str, dict] = {
    "V0": {},
    "spectral norm D": {"d_norm": "spectral"},
    "spectral norm D+G": {"d_norm": "spectral", "g_spectral_norm": True},
    "no norm in D": {"d_norm": "none"},
    "projection": {"conditioning": "projection"},
    "hinge": {"loss": "hinge"},
    "least squares": {"loss": "least-squares"},
    "R1 gamma 1": {"r1_gamma": 1.0},
    "DiffAugment translation": {"diffaugment": "translation"},
    "DiffAugment translation,cutout": {"diffaugment": "translation,cutout"},
    "EMA of G 0.999": {"g_ema": 0.999},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "instance noise 0.1": {"instance_noise": 0.1},
    "minibatch std": {"minibatch_std": True},
    "2 D steps": {"d_steps": 2},
    "SN + projection + hinge + EMA": {"d_norm": "spectral", "conditioning": "projection", "loss": "hinge",
                                     "g_ema": 0.999},
    "recipe": RECIPE,
}


def run_one(name: str, base: dict, overrides: dict, seed: int, iterations: int, eval_every: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from trainable.data import builtin_dataset
    from trainable.judge import load_or_train_judge
    from trainable.loop import train
    from trainable.training import Trainer

    dataset = builtin_dataset()
    judge, _ = load_or_train_judge(dataset)
    config = TrainConfig.from_dict({**base, **overrides, "seed": seed,
                                    "iterations": iterations, "eval_every": eval_every})
    rows: list[dict] = []
    started = time.perf_counter()
    train(Trainer(config, dataset, judge), lambda row, grid, trainer: rows.append(row), stop_on_collapse=False)
    reached = next((row["iteration"] for row in rows if (row.get(COND_ACCURACY) or 0) >= 0.5), None)
    return {"name": name, "seed": seed, "accuracy": rows[-1][COND_ACCURACY], "fid_intra": rows[-1][FID_INTRA],
            "diversity_min": rows[-1][DIVERSITY_MIN], "reached": reached,
            "lowest_d_loss": min(row[D_LOSS] for row in rows), "seconds": time.perf_counter() - started,
            "last_d_loss": rows[-1][D_LOSS],
            "last_d_accuracy": (rows[-1]["d_real_accuracy"] + rows[-1]["d_fake_accuracy"]) / 2,
            "curve": " ".join(f"{row['iteration']}:{row[COND_ACCURACY]:.2f}/{row[FID_INTRA]:.1f}/"
                              f"D{row[D_LOSS]:.4f}" for row in rows if row.get(COND_ACCURACY) is not None)}


def spread(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):6.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3, help="G and D learning rate of every run")
    parser.add_argument("--d-filters", default="32,64,128", help="D widths of every run")
    parser.add_argument("--only", nargs="*", choices=list(REMEDIES), help="run only these rows")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of every run's base, e.g. --set batch_size=32 (repeatable)")
    args = parser.parse_args()
    # Passed to each worker: a spawned process imports this module afresh, with the defaults.
    base = {**BASE, "g_lr": args.lr, "d_lr": args.lr, "d_filters": tuple(int(v) for v in args.d_filters.split(","))}
    for item in args.set:
        key, _, value = item.partition("=")
        base[key] = value
    TrainConfig.from_dict(base)  # a bad --set fails here, not in every worker
    names = args.only or list(REMEDIES)
    from trainable.data import builtin_dataset
    from trainable.judge import load_or_train_judge

    load_or_train_judge(builtin_dataset())  # trained once here, cached for the workers
    jobs = [(name, base, REMEDIES[name], seed, args.iterations, args.eval_every) for name in names
            for seed in range(args.seeds)]
    results: dict[str, list[dict]] = {name: [] for name in names}
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        futures = [pool.submit(run_one, *job) for job in jobs]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            result = future.result()
            results[result["name"]].append(result)
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (len(jobs) - done)
            print(f"[{done}/{len(jobs)}, ETA {eta / 60:.1f} min] {result['name']} seed {result['seed']}: "
                  f"acc {result['accuracy']:.3f} FD-intra {result['fid_intra']:.2f} ({result['seconds']:.0f} s; "
                  f"iteration:acc/FD/D loss {result['curve']})",
                  flush=True)
    print(f"\n{args.seeds} seeds x {args.iterations} iterations, lr {args.lr}, G {base['g_filters']}, "
          f"D {base['d_filters']}, latent {base['latent_size']}, {base['normalization']}"
          f"{''.join(f', {item}' for item in args.set)}; median [min-max]\n")
    print("| configuration | cond. accuracy | FD-intra | lowest diversity | first acc >= 0.5 | lowest D loss "
          "| last D loss | last D accuracy | s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        runs = results[name]
        reached = [r["reached"] for r in runs if r["reached"] is not None]
        reach = f"{len(reached)}/{len(runs)} runs, median {statistics.median(reached):.0f}" if reached else "never"
        print(f"| {name} | {spread([r['accuracy'] for r in runs])} | {spread([r['fid_intra'] for r in runs])} | "
              f"{spread([r['diversity_min'] for r in runs])} | {reach} | {min(r['lowest_d_loss'] for r in runs):.4f} | "
              f"{spread([r['last_d_loss'] for r in runs], 4)} | {spread([r['last_d_accuracy'] for r in runs])} | "
              f"{statistics.median(r['seconds'] for r in runs):.0f} |")


if __name__ == "__main__":
    main()
