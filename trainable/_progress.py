"""A dependency-free progress line on stderr for long work (preparation, training)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Rewrites one status line at most every ``interval`` seconds.

    On a terminal the line is redrawn in place; elsewhere (CI logs, pipes) a full line is
    printed at most every ``log_interval`` seconds so logs stay short but show life.
    """

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 interval: float = 0.25, log_interval: float = 10.0, enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.is_tty else log_interval
        self.enabled = enabled
        self.started = time.perf_counter()
        self._last = self.started  # the first line after one interval, not at 0/N
        self._width = 0

    def update(self, done: int, detail: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        count = f"{done}/{self.total}" if self.total else f"{done}"
        line = f"{self.label}: {count} ({rate:,.0f}/s, {elapsed:.0f}s)"
        if detail:
            line += f" {detail}"
        if self.is_tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, done: int, detail: str = "") -> None:
        if not self.enabled:
            return
        self.update(done, detail, force=True)
        if self.is_tty:
            self.stream.write("\n")
            self.stream.flush()
