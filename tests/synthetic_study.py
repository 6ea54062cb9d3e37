"""Test data: a generated study folder in the real on-disk format, with known outcomes, for
tests that need exact expected figures and for the scale benchmark (1000 trials x 20 evaluations).

Grids are real sample grids of the built-in synthetic faces written by the trainer's own
``write_grid`` (so sizes and thumbnails are what a study writes); a pool of them is drawn once
and copied, because drawing 20,000 PNGs would take longer than the dashboard it feeds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from study.spec import SearchSpace, StudySpec, load_spec
from trainable.experiment import (ASHA, COLLAPSES, COMPLETED, FID_INTRA, GRIDS_DIR, HOSTNAME, LOSS_COLLAPSE,
                                  MODE_COLLAPSE, NODE_ID, NODE_IP, NONE, PARAMS_FILE, RESULT_FILE, grid_file,
                                  thumb_name, trial_dir_name, write_stop, write_study)
from trainable.trial_dir import write_grid

POOL = 24
CLASSES = 7


def _grid_pool(directory: Path, seed: int) -> list[tuple[Path, Path]]:
    """POOL grids (half of them collapsed: one face repeated) written once, reused by every trial."""
    from trainable.data import generate_faces, prepare_faces

    images, labels, _, split = generate_faces(CLASSES * 8 * 4, seed=seed)
    faces = prepare_faces(images, labels, split, size=28)
    rng = np.random.default_rng(seed)
    pool = []
    for index in range(POOL):
        grid = np.stack([faces.images[rng.choice(np.flatnonzero(faces.labels == c), 8)] for c in range(CLASSES)])
        if index % 2:
            grid[:] = grid[0, 0]
        noisy = np.clip(grid.astype(np.int16) + rng.integers(-30, 30, grid.shape), 0, 255).astype(np.uint8)
        path = write_grid(directory / f"pool_{index}", 0, noisy)
        pool.append((path, path.with_name(thumb_name(path.name))))
    return pool


def node_id(number: int) -> str:
    """Ray's node id of synthetic node ``number``: 56 hex digits, as Ray writes them."""
    return hashlib.sha224(f"node {number}".encode()).hexdigest()


def node_host(number: int) -> tuple[str, str]:
    """Hostname and IP of synthetic node ``number``: nodes 0 and 1 share a machine, as two nodes
    started on one host do, and so on in pairs; the names are as long as a cloud's."""
    return f"ip-10-0-0-{number // 2 + 1}.eu-west-1.compute.internal", f"10.0.0.{number // 2 + 1}"


def write_synthetic_study(path: str | Path, *, trials: int = 40, evaluations: int = 10, eval_every: int = 100,
                          seed: int = 0, nodes: int = 1, space: str = "default") -> dict[str, Any]:
    """Write a study folder; returns the truth: each trial's stop reason, final score and the
    nodes it reported from.

    Trial 0, 1, 2 are the baselines V0, V1, V2. Every 5th trial (from 5) mode-collapses, every
    7th (from 7, unless already collapsing) loss-collapses, every 4th is cut by ASHA at half way.
    Trial i runs on node i % nodes; on several nodes, every 6th (from 6) moves to the next node
    half way, as a trial does when Ray retries it elsewhere after its node died. ``space`` is the
    study's ``[study].space``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spec = load_spec(space=space)
    pool = _grid_pool(path / ".pool", seed)
    points = spec.baseline_points()
    sampler = _Sampler(spec, seed)
    study = {"name": path.name, "storage": str(path.parent), "storage_uri": str(path), "experiment_dir": str(path),
             "data": "builtin:synthetic", "judge_steps": 1500, "spec": spec.to_dict(),
             "baselines": dict(zip(spec.baselines, points)), "synthetic": True}
    write_study(path, study)
    truth: dict[str, Any] = {}
    start = 1_800_000_000.0
    for number in range(trials):
        trial_id = f"{number:05d}"
        name = trial_dir_name(trial_id)
        trial_dir = path / name
        params = dict(points[number]) if number < len(points) else sampler.sample()
        (trial_dir / GRIDS_DIR).mkdir(parents=True, exist_ok=True)
        # The collapse verdict's window: a trial that runs to its end reports at or past
        # collapse_grace three times (collapse_patience) where it has three reports; one ASHA cut
        # at half way fewer.
        window = {"collapse_grace": eval_every * max(1, evaluations - 2), "collapse_patience": 3}
        (trial_dir / PARAMS_FILE).write_text(json.dumps({**spec.fixed, **window, **params}))
        reason = (MODE_COLLAPSE if number >= 5 and number % 5 == 0 else
                  LOSS_COLLAPSE if number >= 7 and number % 7 == 0 else
                  ASHA if number >= 4 and number % 4 == 0 else COMPLETED)
        count = evaluations // 2 if reason == ASHA else evaluations
        final = float(rng.uniform(5, 60))
        rows = []
        moves = nodes > 1 and number >= 6 and number % 6 == 0
        for index in range(count):
            node = (number + (1 if moves and index >= count // 2 else 0)) % nodes
            iteration = (index + 1) * eval_every
            progress = (index + 1) / evaluations
            collapsing = reason in COLLAPSES and progress > 0.5
            score = final * (1 + 3 * (1 - progress)) * (3 if collapsing and reason == MODE_COLLAPSE else 1)
            pick = pool[(2 * number + (1 if collapsing else 0) * 1 + 2 * index) % POOL]
            grid = grid_file(iteration)
            shutil.copyfile(pick[0], trial_dir / grid)
            shutil.copyfile(pick[1], trial_dir / thumb_name(grid))
            verdict = reason if collapsing and index == count - 1 else NONE
            rows.append({
                "iteration": iteration, "training_iteration": index + 1,
                "d_loss": 0.001 if collapsing and reason == LOSS_COLLAPSE else float(0.6 + 0.1 * rng.standard_normal()),
                "g_loss": float(1.2 + 0.2 * rng.standard_normal()),
                "d_real_accuracy": 1.0 if collapsing else float(rng.uniform(0.5, 0.9)),
                "d_fake_accuracy": 1.0 if collapsing else float(rng.uniform(0.5, 0.9)),
                "frozen": False,
                "freeze_events": [{"iteration": iteration - eval_every // 2, "event": "freeze", "accuracy": 0.97}]
                if index == 1 and number % 3 == 0 else [],
                "fid": score * 0.9, FID_INTRA: score, "cond_accuracy": float(min(1.0, progress * 0.6)),
                "diversity_min": 0.05 if collapsing and reason == MODE_COLLAPSE else float(rng.uniform(0.7, 1.0)),
                "diversity_mean": 0.9, "coverage": float(rng.uniform(0.0, 0.5)),
                "fid_per_class": [score] * CLASSES, "diversity_per_class": [0.9] * CLASSES,
                "verdict": verdict, "verdict_evidence": f"{reason} (synthetic)" if verdict != NONE else "",
                "judge_accuracy": 0.8, "time_total_s": 3.0 * (index + 1), "timestamp": start + number * 60 + 3 * (index + 1),
                "stop_reason": None, "score": score, "grid": grid, "trial_id": trial_id,
                "done": index == count - 1, NODE_ID: node_id(node), HOSTNAME: node_host(node)[0],
                NODE_IP: node_host(node)[1],
            })
        (trial_dir / RESULT_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
        write_stop(trial_dir, {"trial_id": trial_id, "stop_reason": reason, "iteration": rows[-1]["iteration"],
                               "evidence": f"{reason} (synthetic)" if reason in COLLAPSES else "",
                               "score": rows[-1][FID_INTRA]})
        truth[name] = {"reason": reason, "score": rows[-1][FID_INTRA], "evaluations": count,
                       "baseline": spec.baselines[number] if number < len(points) else None,
                       "nodes": list(dict.fromkeys(row[NODE_ID] for row in rows))}
    shutil.rmtree(path / ".pool")
    return truth


class _Sampler:
    """Points of the study's search space drawn as a study draws them: its define-by-run space
    on an Optuna trial (random sampler, seeded)."""

    def __init__(self, spec: StudySpec, seed: int) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = SearchSpace(spec)
        self.study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))

    def sample(self) -> dict[str, Any]:
        trial = self.study.ask()
        self.space(trial)
        return dict(trial.params)
