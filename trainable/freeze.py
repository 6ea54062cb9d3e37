"""The paper's V2 remedy (section 8): D stops learning after ``freeze_after`` iterations, or while
its accuracy over the last ``freeze_window`` iterations is above ``freeze_accuracy`` (it learns
again once the accuracy falls back). Each change is an event in the next report."""

from __future__ import annotations

import collections

import torch

from trainable.config import TrainConfig
from trainable.experiment import FREEZE_ACCURACY as ACCURACY, FREEZE_AFTER as AFTER, FREEZE_RULES


class FreezeRule:
    def __init__(self, window: int) -> None:
        self.accuracy_window: collections.deque[float] = collections.deque(maxlen=window)
        # Steps' (real, fake) accuracies not yet read back into accuracy_window: only the rule on
        # accuracy needs them at once; otherwise they wait for the next checkpoint.
        self._pending: collections.deque[torch.Tensor] = collections.deque(maxlen=window)
        self.frozen = False
        self.events: list[dict] = []  # freeze / unfreeze, since the last report

    def push(self, accuracies: torch.Tensor) -> None:
        """A step's (real, fake) accuracy of D, still on the device."""
        self._pending.append(accuracies)

    def read(self) -> None:
        """Move the pending accuracies into accuracy_window: one host sync for all of them."""
        if self._pending:
            pairs = torch.stack(list(self._pending)).tolist()
            self._pending.clear()
            self.accuracy_window.extend((real + fake) / 2 for real, fake in pairs)

    def update(self, config: TrainConfig, iteration: int) -> bool:
        """Whether D is frozen for the next step."""
        reasons, rules = [], []
        if config.freeze_after is not None and iteration >= config.freeze_after:
            reasons.append(f"iteration >= {config.freeze_after}")
            rules.append(AFTER)
        if config.freeze_accuracy is not None:
            self.read()  # left pending while the rule was off (PBT may switch it on)
        window_full = len(self.accuracy_window) == self.accuracy_window.maxlen
        if config.freeze_accuracy is not None and window_full:
            accuracy = sum(self.accuracy_window) / len(self.accuracy_window)
            if accuracy > config.freeze_accuracy:
                reasons.append(f"D accuracy {accuracy:.3f} > {config.freeze_accuracy} over {len(self.accuracy_window)} iterations")
                rules.append(ACCURACY)
        frozen = bool(reasons)
        if frozen != self.frozen:
            self.events.append({"iteration": iteration, "event": "freeze" if frozen else "unfreeze",
                                "reason": "; ".join(reasons) if reasons else "D accuracy back under the threshold",
                                FREEZE_RULES: rules})
            self.frozen = frozen
        return frozen

    def take_events(self) -> list[dict]:
        events, self.events = self.events, []
        return events

    def state_dict(self) -> dict:
        self.read()
        return {"accuracy_window": list(self.accuracy_window), "frozen": self.frozen, "events": list(self.events)}

    def load_state_dict(self, state: dict) -> None:
        self._pending.clear()
        self.accuracy_window.clear()
        self.accuracy_window.extend(state["accuracy_window"])
        self.frozen = bool(state["frozen"])
        self.events = list(state["events"])
