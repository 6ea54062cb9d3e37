"""The trials of a study trained together in one process (``[study] fused_trials``): the process
that holds the GPU. Each trial is still a Tune trial of its own: its function joins the server
with its config, its restored state and its reports so far, then asks for its next report again
and again; it reports that row and a checkpoint of the state that came with it to Tune, and Tune's
scheduler, stoppers and searcher decide about it as about any trial.

The server trains in rounds. A round waits briefly for the trials that have just reported to ask
again (``gather_s``), then steps every waiting trial: those of one architecture fused into one
model (trainable/fused.py), any other alone, until one of them has a report due, which goes back to
its trial. A trial Tune stopped or paused never asks again: it is left out of every round, and its
state is dropped after ``expire_s``; one that comes back later joins again from its checkpoint.
Ray-free: trainable/tune_adapter.py runs it as an actor.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import threading
import time
from typing import Callable

import numpy as np
import torch

from trainable.checkpoint import checkpoint_bytes
from trainable.config import TrainConfig
from trainable.data import PreparedDataset
from trainable.fused import GLOBAL_RNG_LOCK, Slot, fusion_key, global_rng_state, set_global_rng_state, until_reports
from trainable.judge import Judge
from trainable.training import Trainer, resolve_device

# A report as the server hands it back: the row, the sample grid, the trainer's state (torch.save bytes).
Report = tuple[dict, np.ndarray, bytes]


@dataclasses.dataclass
class _Member:
    slot: Slot
    waiting: bool = False
    since: float = dataclasses.field(default_factory=time.monotonic)  # when it last asked or was answered
    answer: Report | None = None
    failed: str | None = None  # why a round could not train it (its trial raises it)


class FusionServer:
    """Trials joined by id, trained in rounds; ``next_report`` blocks its caller until its trial's
    next report (called from many threads at once: a threaded Ray actor)."""

    def __init__(self, dataset: PreparedDataset, judge: Judge | None, *, device: str = "auto",
                 on_complete: Callable[[Trainer], dict] | None = None, gather_s: float = 0.2,
                 expire_s: float = 300.0) -> None:
        self.dataset, self.judge, self.on_complete = dataset, judge, on_complete
        self.device = resolve_device(device)
        self.gather_s, self.expire_s = gather_s, expire_s
        self._members: dict[str, _Member] = {}
        self._changed = threading.Condition()
        self._round_running = False
        self.rounds: collections.deque[list[int]] = collections.deque(maxlen=10_000)  # group sizes per round

    def join(self, trial_id: str, config: dict, state: bytes | None, history: list[dict]) -> int:
        """Take a trial in (again): from ``state`` (a trainer's state, torch.save bytes) or from
        scratch. Returns its iteration."""
        with GLOBAL_RNG_LOCK:  # the trial's weights are drawn after its seed, its checkpoint sets them
            saved = global_rng_state(self.device)
            trainer = Trainer(TrainConfig.from_dict(config), self.dataset, self.judge, device=self.device)
            if state is not None:
                trainer.load_state_dict(torch.load(io.BytesIO(state), map_location=trainer.device, weights_only=False))
            own = global_rng_state(trainer.device)
            set_global_rng_state(saved, trainer.device)
        member: _Member

        def reporter(row: dict, grid: np.ndarray, trainer: Trainer) -> None:
            # This member's own answer: a trial that joined again meanwhile is another member.
            report = (row, grid, checkpoint_bytes(trainer.state_dict()))
            with self._changed:
                member.answer = report

        member = _Member(Slot.of(trainer, reporter, history, stop_on_collapse=False, on_complete=self.on_complete))
        member.slot.global_rng = own
        with self._changed:
            self._members[trial_id] = member
            self._changed.notify_all()
        return trainer.iteration

    def next_report(self, trial_id: str) -> Report | None:
        """The trial's next report, once the rounds have trained it that far; None when the server
        does not hold the trial (never joined, dropped after ``expire_s``, or joined again by another
        call): join again. Raises when a round could not train it."""
        with self._changed:
            member = self._members.get(trial_id)
            if member is None:
                return None
            member.waiting, member.since = True, time.monotonic()
            self._changed.notify_all()
            try:
                while member.answer is None and member.failed is None:
                    if self._members.get(trial_id) is not member:
                        return None
                    if not self._round_running:  # this caller runs the round; the others wait for it
                        self._lead()
                    else:
                        self._changed.wait(1.0)
                if member.failed is not None:
                    raise RuntimeError(f"the fusion server could not train this trial: {member.failed}")
                answer, member.answer = member.answer, None
                if answer[0].get("done") and self._members.get(trial_id) is member:
                    del self._members[trial_id]  # its last report: it asks no more
                return answer
            finally:
                member.waiting, member.since = False, time.monotonic()

    def _lead(self) -> None:
        """Run one round with the condition's lock released (called holding it)."""
        self._round_running = True
        try:
            self._changed.release()
            try:
                self._round()
            finally:
                self._changed.acquire()
        finally:
            self._round_running = False
            self._changed.notify_all()

    def _gather(self) -> list[_Member]:
        """Wait up to ``gather_s`` for the trials answered lately to ask again (not for those away
        longer: stopped or paused by Tune, they may never ask; dropped after ``expire_s``); the
        members waiting then."""
        deadline = time.monotonic() + self.gather_s
        with self._changed:
            while True:
                now = time.monotonic()
                for trial_id in [key for key, member in self._members.items()
                                 if not member.waiting and now - member.since > self.expire_s]:
                    del self._members[trial_id]
                if now >= deadline or all(member.waiting or now - member.since > self.gather_s
                                          for member in self._members.values()):
                    break
                self._changed.wait(deadline - now)
            return [member for member in self._members.values()
                    if member.waiting and member.answer is None and member.failed is None]

    def _round(self) -> None:
        """Train each group of the gathered trials (fused by architecture) until one has a report
        due. A group that fails is dropped: each of its trials raises the error and joins again
        from its checkpoint when Tune retries it."""
        groups: dict[object, list[_Member]] = collections.defaultdict(list)
        for member in self._gather():
            key = fusion_key(member.slot.trainer.config)
            groups[key if key is not None else ("alone", id(member))].append(member)
        self.rounds.append(sorted((len(group) for group in groups.values()), reverse=True))
        self.on_round(self.rounds[-1])
        for group in groups.values():
            try:
                until_reports([member.slot for member in group])  # the due trials' reporters answer them
            except Exception as exc:  # noqa: BLE001 - whatever a step raises, its trials hear of it
                with self._changed:
                    for member in group:
                        member.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
                        for trial_id in [key for key, value in self._members.items() if value is member]:
                            del self._members[trial_id]

    def on_round(self, groups: list[int]) -> None:
        """Called at each round with its groups' sizes, largest first (the actor logs them)."""
