"""A PBT trial's schedule (the configs its weights were trained with, and from which iteration) in words."""

from __future__ import annotations

from typing import Any

from trainable.config import TrainConfig
from trainable.experiment import TRIAL_PREFIX, split_params


def schedule_lines(schedule: list[dict[str, Any]]) -> list[str]:
    """One line per step: its iteration, the trial that trained from there, what changed."""
    lines, previous = [], None
    for step in schedule:
        config = TrainConfig.from_dict(split_params(step["config"])[0])
        changes = config.changes_from(previous) if previous is not None else {}
        told = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in sorted(changes.items()))
        by = f" (trained by {TRIAL_PREFIX}{step['trial']})" if step.get("trial") else ""
        lines.append(f"from iteration {step['iteration']}{by}: "
                     f"{told or ('its starting config' if previous is None else 'same config')}")
        previous = config
    return lines
