"""The end-of-study summary printed by `study run`, `study resume` and `study status`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from analysis import (WORKING_ACCURACY, first_working, format_factors, get_factors_info, rank, rankable,
                      read_experiment, row_at, short_value)
from trainable.config import preset_label
from trainable.experiment import ARTIFACTS_DIR, COND_ACCURACY, FINAL_CAS, JOURNAL_FILE, start_iteration
from trainable.space import space_size


def _cas(trial) -> str:
    """", CAS 0.412" where the trial's last row has it (a study with final_cas = true)."""
    value = trial.last.get(FINAL_CAS)
    return f", CAS {value:.3f}" if isinstance(value, (int, float)) else ""


def _ran_through(experiment) -> str:
    """" (every configuration of its search space: 6 of the 10 trials asked)" where the search ended
    because a finite space had a trial at every point (study._search.StudySearcher), else ""."""
    size = space_size(experiment.search) if experiment.search else None  # a local trial searches nothing
    asked = ((experiment.study or {}).get("spec") or {}).get("samples")
    if size is None or not isinstance(asked, int):
        return ""
    count = len(experiment.trials)
    return f" (every configuration of its search space: {count} of the {asked} trials asked)" \
        if size <= count < asked else ""


def _went_on(trial) -> str:
    """" (going on from trial_X's end at iteration 1200)" where the study lengthened its trials and this
    one went on from another's end ([study] lengthen), else ""."""
    return f" (going on from {trial.continues}'s end at iteration {start_iteration(trial.params)})" \
        if trial.continues else ""


def _working(experiment) -> str:
    """The line that says when a trial first reached WORKING_ACCURACY, or that none did (against chance)."""
    working = first_working(experiment)
    if working is None:
        classes = experiment.class_count or 7
        return f"working: no trial reached conditional accuracy {WORKING_ACCURACY} (chance 1/{classes} = {1 / classes:.3f})"
    minutes, seconds = divmod(round(working.seconds), 60)
    return (f"working: {working.trial.name} first reached conditional accuracy {working.row[COND_ACCURACY]:.3f} >= "
            f"{WORKING_ACCURACY} at iteration {working.row.get('iteration')}{_went_on(working.trial)}, "
            f"{minutes} min {seconds:02d} s into the study")


def summary(experiment_dir: Path) -> str:
    """The best trial against the paper's baselines and the reference recipe (and against V0 at
    the same iteration), when a configuration first worked, stop reasons, where the results are."""
    experiment = read_experiment(experiment_dir)
    ranked = rank(experiment.trials)
    metric, label = experiment.metric, experiment.metric_label  # what the study ranks on
    lines = [f"study {experiment_dir.name}: {len(experiment.trials)} trials in {experiment_dir}"
             f"{_ran_through(experiment)}"]
    counts = Counter(trial.stop_reason for trial in experiment.trials)
    lines.append("stop reasons: " + ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())))
    scored = [t for t in ranked if rankable(t)]
    if scored:
        best = scored[0]
        lines.append(f"best: {best.name} {label} {best.score:.3f}, conditional accuracy "
                     f"{best.last.get(COND_ACCURACY, float('nan')):.3f}{_cas(best)} at iteration "
                     f"{best.last.get('iteration')}{_went_on(best)}"
                     + (f" ({preset_label(best.baseline)})" if best.baseline else "")
                     + (f"; {best.stop_reason}: no trial was judged healthy" if best.collapsed else ""))
        searched = experiment.search
        # 4 significant digits to read (g_lr=0.000625, not 0.0006250253762274371): params.json holds them all.
        lines.append("  params: " + ", ".join(f"{k}={short_value(best.params[k], digits=4)}" for k in searched if k in best.params))
        v0 = next((t for t in experiment.trials if t.baseline == "V0" and t.rows), None)
        if v0 is not None and best is not v0:
            # At the same budget: where V0 stopped (ASHA may have cut it), or where the best did.
            iteration = min(v0.last.get("iteration", 0), best.last.get("iteration", 0))
            ours, theirs = row_at(best, iteration), row_at(v0, iteration)
            if ours and theirs and ours.get(metric) and theirs.get(metric):
                lines.append(f"  vs the paper's V0 at iteration {iteration}: {label} {ours[metric]:.3f} vs "
                             f"{theirs[metric]:.3f} ({ours[metric] / theirs[metric]:.2f}x), conditional "
                             f"accuracy {ours.get(COND_ACCURACY, float('nan')):.3f} vs "
                             f"{theirs.get(COND_ACCURACY, float('nan')):.3f}")
    else:
        lines.append("best: no trial with a score yet")
    lines.append(_working(experiment))
    for trial in experiment.trials:
        if trial.baseline:
            score = f"{label} {trial.score:.3f}" if trial.score is not None else "no score"
            accuracy = trial.last.get(COND_ACCURACY)
            score += f", conditional accuracy {accuracy:.3f}" if isinstance(accuracy, (int, float)) else ""
            score += _cas(trial)
            lines.append(f"{preset_label(trial.baseline)}: {score}, {trial.stop_reason} at iteration "
                         f"{trial.last.get('iteration')}"
                         + (f" ({trial.evidence})" if trial.evidence and trial.collapsed else ""))
    if len(experiment.trials) > 1:
        lines += format_factors(get_factors_info(experiment))
    if experiment.skipped:
        lines.append(f"skipped {len(experiment.skipped)} unreadable entries (first: {experiment.skipped[0]})")
    lines.append(f"optuna store: optuna-dashboard {experiment_dir / JOURNAL_FILE} "
                 f"--artifact-dir {experiment_dir / ARTIFACTS_DIR}")
    lines.append(f"dashboard: cgan-study analyze {experiment_dir}")
    return "\n".join(lines)
