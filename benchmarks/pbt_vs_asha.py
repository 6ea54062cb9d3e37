"""Population Based Training against TPE + ASHA (+ the collapse stoppers of both) on the built-in
set, at equal compute: the same total training iterations, over seeds.

PBT trains a population of P trials for N iterations each (P x N iterations; its exploits copy
weights, they train nothing). TPE + ASHA runs 2P trials of N iterations (2N for those it lengthens:
[study] lengthen), whose reports are counted in the order they were made until P x N iterations
were spent. Both search the default space
(the paper's knobs and the remedies) with no baselines; PBT mutates its mutable fields. For each
method and seed it prints the best report within the budget (lowest fid_intra) and that report's
cond_accuracy, then the median and range over seeds.

    python benchmarks/pbt_vs_asha.py [--population 4] [--iterations 600] [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import tempfile
import time
from pathlib import Path

from study.runner import run_study
from study.spec import load_spec
from trainable.experiment import COND_ACCURACY, FID_INTRA, reports_made


def reports(experiment_dir: Path) -> list[tuple[float, int, float, float]]:
    """(time, iterations trained for it, fid_intra, cond_accuracy) of every report of a study, in the
    order they were made. Under synchronous PBT a trial takes another's weights at the iteration it
    stopped at, so iterations since its previous report are what it trained."""
    found = []
    for when, trained, row in reports_made(experiment_dir):
        score, accuracy = row.get(FID_INTRA), row.get(COND_ACCURACY)
        found.append((when, trained, score if isinstance(score, (int, float)) else math.inf,
                      accuracy if isinstance(accuracy, (int, float)) else 0.0))
    return found


def best_within(found, budget: int) -> tuple[float, float, int]:
    """(fid_intra, cond_accuracy) of the best report made within ``budget`` iterations, and the spent."""
    spent, best = 0, (math.inf, 0.0)
    for _, trained, score, accuracy in found:
        if spent + trained > budget:
            break
        spent += trained
        best = min(best, (score, -accuracy))
    return best[0], -best[1], spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4, help="PBT's trials (TPE + ASHA gets twice as many)")
    parser.add_argument("--iterations", type=int, default=600, help="iterations of a trial run to its end")
    parser.add_argument("--evaluations", type=int, default=4, help="reports of a trial run to its end")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    base = load_spec()
    fixed = {**base.fixed, "iterations": args.iterations, "eval_every": args.iterations // args.evaluations,
             "collapse_grace": args.iterations // 2}
    budget = args.population * args.iterations
    results: dict[str, list[tuple[float, float, int, float]]] = {"PBT": [], "TPE + ASHA": []}
    with tempfile.TemporaryDirectory() as storage:
        for seed in range(args.seeds):
            seeded = {**fixed, "seed": seed}
            specs = {
                "PBT": dataclasses.replace(base, fixed=seeded, samples=args.population, baselines=(), seed=seed,
                                           scheduler="pbt", perturbation_interval=1),
                "TPE + ASHA": dataclasses.replace(base, fixed=seeded, samples=2 * args.population, baselines=(),
                                                  seed=seed, grace_period=1, reduction_factor=3),
            }
            for method, spec in specs.items():
                name = f"{method.split()[0].lower()}-{seed}"
                started = time.perf_counter()
                run_study(spec, name=name, storage=storage)
                seconds = time.perf_counter() - started
                score, accuracy, spent = best_within(reports(Path(storage) / name), budget)
                results[method].append((score, accuracy, spent, seconds))
                print(f"seed {seed} {method:<10}: best fid_intra {score:.3f}, its cond_accuracy {accuracy:.3f} "
                      f"({spent} of {budget} iterations, study {seconds:.0f} s)", flush=True)
    print(f"\nbudget {budget} iterations per study ({args.population} PBT trials x {args.iterations}); "
          f"median [min-max] over {args.seeds} seed(s):")
    for method, rows in results.items():
        scores, accuracies = [row[0] for row in rows], [row[1] for row in rows]
        print(f"{method:<10}  fid_intra {statistics.median(scores):.3f} [{min(scores):.3f}-{max(scores):.3f}]  "
              f"cond_accuracy {statistics.median(accuracies):.3f} [{min(accuracies):.3f}-{max(accuracies):.3f}]  "
              f"study {statistics.median(row[3] for row in rows):.0f} s")
    pbt, asha = (statistics.median(row[0] for row in results[m]) for m in ("PBT", "TPE + ASHA"))
    print(f"PBT / TPE + ASHA median fid_intra: {pbt / asha:.2f}")


if __name__ == "__main__":
    main()
