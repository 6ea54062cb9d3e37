"""Search efficiency on the built-in set, same compute budget (total training iterations):
TPE + ASHA + collapse stoppers (the product) against random search without early stopping.

Prints the best score (fid_intra, lower is better) each reaches, and the compute each needed to
reach random search's best. The goal: the product needs <= 1/3 of random search's compute.

    python benchmarks/search_efficiency.py [--random-trials 8] [--iterations 800]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
from pathlib import Path

from study.runner import run_study
from study.spec import load_spec
from trainable.experiment import FID_INTRA, reports_made


def curve(experiment_dir: Path) -> list[tuple[int, float]]:
    """(iterations spent so far, best score so far), in the order reports were made (every
    report, redone ones too: their compute was spent)."""
    points, total, best = [], 0, math.inf
    for _, spent, row in reports_made(experiment_dir):
        score = row.get(FID_INTRA)
        total += spent
        best = min(best, score if isinstance(score, (int, float)) else math.inf)
        points.append((total, best))
    return points


def run(spec, storage: str, name: str) -> list[tuple[int, float]]:
    run_study(spec, name=name, storage=storage)
    return curve(Path(storage) / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-trials", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=800)
    args = parser.parse_args()
    base = load_spec()
    fixed = {**base.fixed, "iterations": args.iterations, "eval_every": args.iterations // 4}
    budget = args.random_trials * args.iterations
    with tempfile.TemporaryDirectory() as storage:
        # Random search: the same space, no baselines to lean on, no early stopping of any kind.
        random_spec = dataclasses.replace(base, fixed=fixed, samples=args.random_trials, sampler="random",
                                          early_stopping=False, baselines=())
        random_curve = run(random_spec, storage, "random")
        # The product: TPE + ASHA + collapse stoppers, with as many trials as the budget allows.
        product_spec = dataclasses.replace(base, fixed=fixed, samples=3 * args.random_trials)
        product_curve = [(spent, best) for spent, best in run(product_spec, storage, "product") if spent <= budget]
    random_best = random_curve[-1][1]
    product_best = product_curve[-1][1] if product_curve else math.inf
    reached = next((spent for spent, best in product_curve if best <= random_best), None)
    print(f"budget {budget} iterations ({args.random_trials} random trials x {args.iterations})")
    print(f"random search, no early stopping: best fid_intra {random_best:.3f} after {random_curve[-1][0]} iterations")
    print(f"TPE + ASHA + collapse stoppers:   best fid_intra {product_best:.3f} within the same budget")
    if reached is None:
        print("the product did not reach random search's best within the budget")
    else:
        print(f"compute to reach random search's best: {reached} iterations = {reached / budget:.2f} of random's")


if __name__ == "__main__":
    main()
