"""The paper's regime: its G (256, 128, 64 filters), its batch of 64 and tens of thousands of
iterations, for V0, V1, V2 and the reference recipe, trained side by side on one device (a GPU:
benchmarks/gpu_paper.sh) as plain processes, each writing a trial folder that `cgan-study analyze`
reads. The collapse verdicts are computed at every evaluation but stop nothing, so the grids show
what happens after them; the summary says when each verdict first fired and on which evidence.

    python benchmarks/paper_regime.py --out DIR [--iterations 50000] [--eval-every 2500]
        [--variants V0,V1,V2,recipe] [--minutes 6] [--device cuda] [--set KEY=VALUE ...]

Each trial stops at its iterations or, at its first evaluation after ``--minutes`` of training, so
the figures and grids are written whatever the time limit of the machine. It prints each
evaluation as it comes, then a table per variant, writes DIR/paper_regime.json and
DIR/timeline.png (rows: variants; columns: evaluations; each cell a sample grid, one row per class).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import time
from pathlib import Path

from trainable.config import TrainConfig, preset
from trainable.errors import UserError
from trainable.experiment import (COND_ACCURACY, D_LOSS, DIVERSITY_MIN, FID_INTRA, GRID, NONE, STOP_REASON, VERDICT,
                                  VERDICT_EVIDENCE, trial_params)


class _TimeUp(Exception):
    pass


def run_variant(name: str, folder: str, overrides: dict, minutes: float) -> dict:
    """One variant's trial, in a process of its own; returns where it stopped and its first verdicts."""
    import torch

    from trainable.judge import load_or_train_judge
    from trainable.local import load_data
    from trainable.loop import train
    from trainable.training import Trainer
    from trainable.trial_dir import LocalReporter, TrialDirectory

    torch.set_num_threads(1)
    config = preset(name, **overrides)
    dataset = load_data(None)
    judge, _ = load_or_train_judge(dataset, device=config.device if config.device != "auto" else None)
    directory = TrialDirectory(folder)
    directory.create(trial_params(config, preset=name, data="builtin:synthetic"))
    reporter, started = LocalReporter(directory), time.perf_counter()

    def report(row: dict, grid, trainer) -> None:
        reporter(row, grid, trainer)
        print(f"[{name:>6}] iter {row['iteration']:>6}: D loss {row[D_LOSS]:.3f} (real {row['d_real_accuracy']:.2f}, "
              f"fake {row['d_fake_accuracy']:.2f}), FD-intra {row.get(FID_INTRA) or float('nan'):.2f}, "
              f"acc {row.get(COND_ACCURACY) or 0:.2f}, div {row.get(DIVERSITY_MIN) or 0:.2f}, "
              f"{row.get('iterations_per_s', 0):.0f} it/s, verdict {row[VERDICT]}", flush=True)
        if time.perf_counter() - started > minutes * 60 and not row["done"]:
            raise _TimeUp

    trainer = Trainer(config, dataset, judge)
    try:
        reason = train(trainer, report, stop_on_collapse=False)
    except _TimeUp:
        reason = "time limit"
    rows = directory.results()
    firsts = {}
    for row in rows:
        if row[VERDICT] != NONE and row[VERDICT] not in firsts:
            firsts[row[VERDICT]] = {"iteration": row["iteration"], "evidence": row.get(VERDICT_EVIDENCE)}
    return {"variant": name, "reason": reason, "iterations": trainer.iteration, "device": str(trainer.device),
            "seconds": time.perf_counter() - started, "first_verdicts": firsts,
            "rows": [{key: row.get(key) for key in ("iteration", D_LOSS, "d_real_accuracy", "d_fake_accuracy",
                                                     FID_INTRA, COND_ACCURACY, DIVERSITY_MIN, VERDICT, GRID,
                                                     "frozen_share", STOP_REASON)} for row in rows]}


def _cell(image, width: int = 240):
    """A sample grid scaled down to ``width`` pixels (its rows are the classes)."""
    return image.resize((width, round(image.height * width / image.width))) if image.width > width else image


def timeline(results: list[dict], out: Path, columns: int = 10) -> Path:
    """One image: a row per variant, up to ``columns`` evaluations spread over its run."""
    from PIL import Image, ImageDraw

    label_width, cells = 90, []
    for result in results:
        rows = [row for row in result["rows"] if row.get(GRID)]
        count = min(columns, len(rows))
        picked = [rows[round(index * (len(rows) - 1) / max(1, count - 1))] for index in range(count)]
        cells.append([(row["iteration"], _cell(Image.open(out / result["variant"] / row[GRID]).convert("L")))
                      for row in picked])
    width = max((image.width for row in cells for _, image in row), default=1)
    height = max((image.height for row in cells for _, image in row), default=1)
    used = max((len(row) for row in cells), default=1)
    sheet = Image.new("L", (label_width + used * (width + 4), len(results) * (height + 18)), 255)
    draw = ImageDraw.Draw(sheet)
    for row_index, (result, row) in enumerate(zip(results, cells)):
        top = row_index * (height + 18)
        draw.text((4, top + height // 2), result["variant"], fill=0)
        for column, (iteration, image) in enumerate(row):
            left = label_width + column * (width + 4)
            sheet.paste(image, (left, top + 14))
            draw.text((left, top + 1), f"{iteration // 1000}k" if iteration >= 1000 else str(iteration), fill=0)
    path = out / "timeline.png"
    sheet.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the trial folders and figures")
    parser.add_argument("--iterations", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--variants", default="V0,V1,V2,recipe", help="presets to run (default V0,V1,V2,recipe)")
    parser.add_argument("--minutes", type=float, default=6.0, help="stop each trial at its first evaluation after this")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config field of every variant")
    args = parser.parse_args()
    variants = args.variants.split(",")
    overrides = {"iterations": args.iterations, "eval_every": args.eval_every, "device": args.device,
                 "collapse_grace": min(10_000, args.iterations), **dict(item.split("=", 1) for item in args.set)}
    try:
        for name in variants:
            TrainConfig.from_dict({**preset(name).to_dict(), **overrides})
        if args.out.exists() and any(args.out.iterdir()):
            raise UserError(f"--out {args.out}: not empty; name a new folder")
    except UserError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(len(variants), mp_context=context) as pool:
        results = list(pool.map(run_variant, variants, [str(args.out / name) for name in variants],
                                [overrides] * len(variants), [args.minutes] * len(variants)))
    for result in results:
        last = result["rows"][-1] if result["rows"] else {}
        print(f"\n{result['variant']}: {result['iterations']} iterations in {result['seconds'] / 60:.1f} min on "
              f"{result['device']} ({result['reason']}); last: D loss {last.get(D_LOSS)}, FD-intra {last.get(FID_INTRA)}, "
              f"acc {last.get(COND_ACCURACY)}; first verdicts: "
              + (", ".join(f"{kind} at {first['iteration']} ({first['evidence']})"
                           for kind, first in result["first_verdicts"].items()) or "none, healthy throughout"))
    (args.out / "paper_regime.json").write_text(json.dumps(results, indent=1))
    print(f"\ntimeline: {timeline(results, args.out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
