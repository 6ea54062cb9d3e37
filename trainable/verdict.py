"""The collapse verdict: a pure function over the history of a trial's reports.

Both the local loop and the Ray Tune stoppers call it, so a trial ends for the same reason
wherever it runs.

Thresholds (TrainConfig defaults), measured with the judge on the synthetic set:
- real held-out faces score a lowest per-class diversity ratio of 0.93 and coverage 0.57;
  a generator that outputs one image per class scores 0.0 and 0.01. Healthy small-width runs
  stay at 0.7-0.96 diversity and 0.06-0.46 coverage from the first evaluations on. So mode
  collapse is a lowest per-class diversity ratio under 0.35 or a coverage under 0.05, held
  for ``collapse_patience`` (3) consecutive evaluations: one bad evaluation is noise, three
  are a trend.
- the paper's failure is D loss -> 0. But D loss and accuracy alone mislead: the best run
  we measured (G 32,16,8 against the paper's D 32,64,128, 6000 iterations) had D loss
  0.03-0.06 and D accuracy 0.98-1.00 from iteration 3000 on while G kept improving (judge
  conditional accuracy 0.45 -> 0.56, FD-intra 7.1 -> 4.6). So loss collapse is D loss under
  0.01, or D right on every sample of every iteration (accuracy 1.0), for 3 reports; a
  non-finite loss is a collapse at once.
- the other way to fail is divergence: with learning rates of 1.0 the mean D loss reached
  62-114. Healthy runs peaked at D 1.4 and G 5.4, so a D or G loss above 25 for 3 reports
  is a loss collapse too.
- nothing is judged before ``collapse_grace`` iterations: an untrained G makes near-identical
  grey blobs, which look like mode collapse but are only the start.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from trainable.experiment import (COVERAGE, D_LOSS, DIVERSITY_LOWEST_CLASS, DIVERSITY_MIN, G_LOSS, LOSS_COLLAPSE,
                                  MODE_COLLAPSE, NONE)

# The D loss under which D has won, per loss (TrainConfig.loss_collapse_d_loss = None picks it).
# Each loss is 0 only when D is right with full confidence on every sample (cross-entropy:
# p(real) -> 1; hinge: every margin past 1; least squares: outputs on their targets).
# Measured with benchmarks/remedies.py (G 32,16,8, the paper's D, latent 32, [-1,1], lr 2e-3,
# 2 seeds): where D wins (G starved: g_lr 1e-5, 2000 iterations) the mean D loss per report
# fell to cross-entropy 0.0001-0.08, hinge 0.0002-0.05 (both bouncing), least squares 0.02 (and
# still falling); runs that went on learning never went below cross-entropy 0.03 (the best
# 6000-iteration run above), hinge 0.34, least squares 0.15. So hinge and least squares get 0.05,
# a third of their learning runs' lowest; cross-entropy keeps 0.01, under its 0.03.
LOSS_COLLAPSE_D_LOSS = {"bce": 0.01, "hinge": 0.05, "least-squares": 0.05}


@dataclasses.dataclass(frozen=True)
class Verdict:
    kind: str
    evidence: str = ""
    iteration: int | None = None  # where the collapse began

    @property
    def collapsed(self) -> bool:
        return self.kind != NONE


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def verdict_window(history: Sequence[Mapping[str, Any]], *, grace: int, patience: int) -> list[Mapping[str, Any]] | None:
    """The reports the verdict judges, the last ``patience`` from iteration ``grace`` on; None while
    there are fewer: before that it judges nothing (collapse_verdict, and who asks whether a trial
    was ever judged: analysis/_reader.py)."""
    judged = [row for row in history if row.get("iteration", 0) >= grace]
    return judged[-patience:] if len(judged) >= patience else None


def collapse_verdict(history: Sequence[Mapping[str, Any]], *, patience: int = 3, grace: int = 2000,
                     diversity: float = 0.35, coverage: float = 0.05, d_loss: float = 0.01,
                     accuracy: float = 1.0, divergence: float = 25.0) -> Verdict:
    """none, mode-collapse or loss-collapse, with the evidence, from the reports so far."""
    for row in history:
        if row.get("nonfinite") or not all(_finite(row.get(k)) for k in (D_LOSS, G_LOSS)):
            return Verdict(LOSS_COLLAPSE, f"non-finite loss at iteration {row.get('iteration')} "
                                          f"(D {row.get('d_loss')}, G {row.get('g_loss')})", row.get("iteration"))
    recent = verdict_window(history, grace=grace, patience=patience)
    if recent is None:
        return Verdict(NONE)
    span = f"iterations {recent[0]['iteration']}-{recent[-1]['iteration']}"

    def d_accuracy(row: Mapping[str, Any]) -> float:
        return (row["d_real_accuracy"] + row["d_fake_accuracy"]) / 2

    if all(row[D_LOSS] < d_loss or d_accuracy(row) >= accuracy for row in recent):
        losses = ", ".join(f"{row[D_LOSS]:.4f}" for row in recent)
        accuracies = ", ".join(f"{d_accuracy(row):.3f}" for row in recent)
        return Verdict(LOSS_COLLAPSE, f"D wins over {span}: D loss {losses} (threshold {d_loss}), "
                                      f"D accuracy {accuracies} (threshold {accuracy})", recent[0]["iteration"])
    if all(max(row[D_LOSS], row[G_LOSS]) > divergence for row in recent):
        losses = ", ".join(f"D {row[D_LOSS]:.3g} G {row[G_LOSS]:.3g}" for row in recent)
        return Verdict(LOSS_COLLAPSE, f"losses diverged over {span}: {losses} (threshold {divergence})",
                       recent[0]["iteration"])
    scored = [row for row in recent if _finite(row.get(DIVERSITY_MIN)) and _finite(row.get(COVERAGE))]
    if len(scored) == patience and all(row[DIVERSITY_MIN] < diversity or row[COVERAGE] < coverage
                                       for row in scored):
        ratios = ", ".join(f"{row[DIVERSITY_MIN]:.3f}" for row in scored)
        coverages = ", ".join(f"{row['coverage']:.3f}" for row in scored)
        lowest = scored[-1].get(DIVERSITY_LOWEST_CLASS)
        which = f" (lowest: {lowest})" if lowest else ""
        return Verdict(MODE_COLLAPSE, f"generated images stopped varying over {span}: lowest per-class diversity "
                                      f"ratio {ratios} (threshold {diversity}){which}, coverage {coverages} "
                                      f"(threshold {coverage})", recent[0]["iteration"])
    return Verdict(NONE)


def verdict_for(history: Sequence[Mapping[str, Any]], config) -> Verdict:
    """collapse_verdict with the thresholds of a TrainConfig."""
    d_loss = config.loss_collapse_d_loss
    return collapse_verdict(history, patience=config.collapse_patience, grace=config.collapse_grace,
                            diversity=config.mode_collapse_diversity, coverage=config.mode_collapse_coverage,
                            d_loss=LOSS_COLLAPSE_D_LOSS[config.loss] if d_loss is None else d_loss,
                            accuracy=config.loss_collapse_accuracy,
                            divergence=config.loss_collapse_divergence)
