"""The end-of-study summary printed by `study run`, `study resume` and `study status`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from analysis import rank, read_experiment
from trainable.experiment import COND_ACCURACY, JOURNAL_FILE


def summary(experiment_dir: Path) -> str:
    """The best trial against the paper's baselines, stop reasons, and where the results are."""
    experiment = read_experiment(experiment_dir)
    ranked = rank(experiment.trials)
    lines = [f"study {experiment_dir.name}: {len(experiment.trials)} trials in {experiment_dir}"]
    counts = Counter(trial.stop_reason for trial in experiment.trials)
    lines.append("stop reasons: " + ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())))
    healthy = [t for t in ranked if t.healthy]
    if healthy:
        best = healthy[0]
        lines.append(f"best: {best.name} FD-intra {best.score:.3f}, conditional accuracy "
                     f"{best.last.get(COND_ACCURACY, float('nan')):.3f} at iteration {best.last.get('iteration')}"
                     + (f" (the paper's {best.baseline})" if best.baseline else ""))
        searched = experiment.search
        lines.append("  params: " + ", ".join(f"{k}={best.params[k]}" for k in searched if k in best.params))
    else:
        lines.append("best: no healthy trial with a score yet")
    for trial in experiment.trials:
        if trial.baseline:
            score = f"FD-intra {trial.score:.3f}" if trial.score is not None else "no score"
            lines.append(f"baseline {trial.baseline}: {score}, {trial.stop_reason}"
                         + (f" ({trial.evidence})" if trial.evidence and trial.collapsed else ""))
    if experiment.skipped:
        lines.append(f"skipped {len(experiment.skipped)} unreadable entries (first: {experiment.skipped[0]})")
    lines.append(f"optuna journal: {experiment_dir / JOURNAL_FILE} (optuna-dashboard can open it)")
    lines.append(f"dashboard: cgan-study analyze {experiment_dir}")
    return "\n".join(lines)
