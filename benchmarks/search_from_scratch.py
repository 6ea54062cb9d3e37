"""A search from scratch: how much compute the study's default search needs to find a working CGAN
on its own (no recipe, no hand-picked points; the paper's V0 runs as the baseline), against
random search and Optuna's TPE with its default settings over the same space and with the same
early stopping.

Compute is counted in training iterations over all trials, every report made (a redone one too; a
trial that went on from another's end from there: ``trainable.experiment.reports_made``), so the
figures do not depend on the machine's speed. Each method runs one study per seed with a
budget (``[study] budget``); the trials' reports are then put in the order they were made. Per
seed and as median [range] over seeds it prints:
- the iterations until a trial first reported judge conditional accuracy >= 0.5 ("working");
- the best FD-intra reported within 12k, 24k, 36k iterations (by default), with its accuracy;
and the reference recipe's own FD-intra and accuracy at one trial's iterations, trained in the
same run (it is never given to the searches).

    python benchmarks/search_from_scratch.py [--data FILE] [--seeds 3] [--first-seed 0] [--budget 36000]
        [--methods tpe,random,plain-tpe] [--config study.toml] [--set KEY=VALUE ...] [--warm-start STUDY]
        [--keep DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

from study.runner import run_study
from study.spec import DEFAULT_FIXED, load_spec
from trainable.config import RECIPE, TrainConfig
from trainable.experiment import COND_ACCURACY, FID_INTRA, TRIAL_PREFIX, reports_made
from trainable.local import BUILTIN

# The demo's widths and trial length (examples/demo.toml, a study's defaults): what "a trial" is here.
FIXED = dict(DEFAULT_FIXED)
WORKING = 0.5


@dataclasses.dataclass
class Report:
    made: float  # when (the report's timestamp)
    spent: int  # training iterations since the trial's previous report (or its start)
    fid_intra: float
    accuracy: float


def reports(experiment_dir: Path) -> list[Report]:
    """Every report of the study's trials, in the order they were made; redone reports (a retried
    trial) count: their compute was spent."""
    made = []
    for when, spent, row in reports_made(experiment_dir):
        fid, accuracy = row.get(FID_INTRA), row.get(COND_ACCURACY)
        made.append(Report(when, spent, fid if isinstance(fid, (int, float)) and math.isfinite(fid) else math.inf,
                           accuracy if isinstance(accuracy, (int, float)) else 0.0))
    return made


def figures(made: list[Report], marks: list[int]) -> dict:
    """Iterations to the first working report; the best FD-intra (and its accuracy) within each mark."""
    total, best, first, at = 0, None, None, {}
    for report in made:
        total += report.spent
        for mark in marks:
            if total > mark and mark not in at:
                at[mark] = best
        if first is None and report.accuracy >= WORKING:
            first = total
        if best is None or report.fid_intra < best[0]:
            best = (report.fid_intra, report.accuracy)
    for mark in marks:
        at.setdefault(mark, best if total <= mark else at.get(mark))
    return {"first": first, "at": at, "total": total}


def run_search(method: str, seed: int, args, storage: str) -> dict:
    overrides = {key: value for key, value in (item.split("=", 1) for item in args.set)}
    spec = load_spec(args.config)  # the product's defaults (or the study file's), at the widths above
    fixed = {**spec.fixed, **FIXED, **overrides}
    spec = dataclasses.replace(spec, search={key: domain for key, domain in spec.search.items() if key not in overrides},
                               fixed={key: value for key, value in fixed.items() if key not in spec.search
                                      or key in overrides},
                               baselines=("V0",), points=(), samples=10_000, budget=args.budget, seed=seed,
                               sampler=method, warm_start=args.warm_start or "")
    name = f"{method}-{seed}"
    started = time.perf_counter()
    study = run_study(spec, name=name, data=args.data, storage=storage)
    made = reports(Path(study["experiment_dir"]))
    result = figures(made, args.marks)
    result.update(method=method, seed=seed, seconds=time.perf_counter() - started,
                  trials=len(list(Path(study["experiment_dir"]).glob(f"{TRIAL_PREFIX}*"))))
    return result


def run_recipe(seed: int, data: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from trainable.judge import load_or_train_judge
    from trainable.local import load_data
    from trainable.loop import train
    from trainable.training import Trainer

    dataset = load_data(data)
    judge, _ = load_or_train_judge(dataset)
    config = TrainConfig.from_dict({**FIXED, **RECIPE, "seed": seed, "collapse_grace": 10**9})
    rows: list[dict] = []
    train(Trainer(config, dataset, judge), lambda row, grid, trainer: rows.append(row), stop_on_collapse=False)
    return {"fid_intra": rows[-1][FID_INTRA], "accuracy": rows[-1][COND_ACCURACY],
            "first": next((row["iteration"] for row in rows if row[COND_ACCURACY] >= WORKING), None)}


def spread(values: list[float | None], digits: int = 0) -> str:
    """median [min-max] over seeds, a seed that never got there counted as infinitely late (so the
    median is "never" when most never did)."""
    known = [value for value in values if value is not None]
    if not known:
        return "never"
    middle = statistics.median_low([math.inf if value is None else value for value in values])
    text = "never" if middle == math.inf else f"{middle:.{digits}f}"
    text += f" [{min(known):.{digits}f}-{max(known):.{digits}f}]"
    return text + (f", never in {len(values) - len(known)} of {len(values)}" if len(known) < len(values) else "")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=BUILTIN, help="prepared .npz (default: the built-in synthetic set)")
    parser.add_argument("--seeds", type=int, default=3, help="how many study seeds (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first study seed (default 0): more seeds later")
    parser.add_argument("--budget", type=int, default=36_000, help="training iterations per study (default 36000)")
    parser.add_argument("--methods", default="tpe,random,plain-tpe",
                        help="samplers to compare (default tpe,random,plain-tpe; tpe is the product's)")
    parser.add_argument("--config", help="a study file whose space and settings to use (default: the built-in defaults; "
                        "benchmarks/earlier_space.toml: the default space before today's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="fix a config field in every trial, e.g. --set d_filters=16,32,64")
    parser.add_argument("--warm-start", metavar="STUDY",
                        help="give each search's sampler an earlier study's finished trials first (a study folder, "
                             "e.g. examples/builtin-study; their compute is not counted): what a study learnt on "
                             "another set, carried over. Default: none, from scratch")
    parser.add_argument("--keep", help="write the studies here (default: a temporary folder)")
    parser.add_argument("--no-recipe", action="store_true", help="skip the recipe's reference runs")
    args = parser.parse_args()
    args.marks = [mark for mark in (12_000, 24_000, 36_000) if mark < args.budget] + [args.budget]
    return args


def main() -> None:
    args = _arguments()
    from trainable.judge import load_or_train_judge
    from trainable.local import load_data

    load_or_train_judge(load_data(args.data))  # trained (or read from the cache) once, before any clock
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(method, seed) for method in args.methods.split(",") for seed in seeds]
    results: dict[str, list[dict]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        storage = args.keep or scratch
        for done, (method, seed) in enumerate(jobs, 1):
            result = run_search(method, seed, args, storage)
            results.setdefault(method, []).append(result)
            eta = (time.perf_counter() - started) / done * (len(jobs) - done)
            reached = f"working after {result['first']} iterations" if result["first"] else "never working"
            print(f"[{done}/{len(jobs)}, ETA {eta / 60:.0f} min] {method} seed {seed}: {reached}; best FD-intra/accuracy "
                  + ", ".join(f"{mark // 1000}k {best[0]:.2f}/{best[1]:.2f}" if best else f"{mark // 1000}k none"
                              for mark, best in result["at"].items())
                  + f" ({result['trials']} trials, {result['total']} iterations, {result['seconds'] / 60:.1f} min)",
                  file=sys.stderr, flush=True)
    recipe = []
    if not args.no_recipe:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            recipe = list(pool.map(run_recipe, range(args.seeds), [args.data] * args.seeds))
    _print_table(args, results, recipe)


def _print_table(args: argparse.Namespace, results: dict[str, list[dict]], recipe: list[dict]) -> None:
    print(f"\ndata {args.data}; {args.seeds} study seeds; a trial: G {FIXED['g_filters']}, {FIXED['iterations']} "
          f"iterations, evaluated every {FIXED['eval_every']}{''.join(', ' + item for item in args.set)}"
          f"{', warm-started from ' + args.warm_start if args.warm_start else ''}; "
          "median [min-max] over seeds\n")
    header = "| method | iterations to accuracy >= 0.5 | " + " | ".join(
        f"best FD-intra (accuracy) at {mark // 1000}k" for mark in args.marks) + " |"
    print(header)
    print("|" + "---|" * (2 + len(args.marks)))
    for method, runs in results.items():
        cells = []
        for mark in args.marks:
            bests = [run["at"][mark] for run in runs]
            fids = [best[0] if best else None for best in bests]
            accuracies = [best[1] if best else None for best in bests]
            cells.append(f"{spread(fids, 2)} ({spread(accuracies, 2)})")
        label = {"tpe": "the study's default (tpe)", "random": "random search",
                 "plain-tpe": "Optuna's TPE, default settings"}.get(method, method)
        print(f"| {label} | {spread([run['first'] for run in runs])} | " + " | ".join(cells) + " |")
    if recipe:
        print(f"| reference recipe, one trial ({FIXED['iterations']} iterations) | "
              f"{spread([run['first'] for run in recipe])} (its own iterations) | "
              + " | ".join(f"{spread([run['fid_intra'] for run in recipe], 2)} "
                           f"({spread([run['accuracy'] for run in recipe], 2)})" for _ in args.marks) + " |")
    print("\nper seed: " + json.dumps({method: [{"first": run["first"], "trials": run["trials"], "total": run["total"]}
                                                for run in runs] for method, runs in results.items()}))


if __name__ == "__main__":
    main()
