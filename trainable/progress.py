"""A progress line on stderr for long work (preparation, judge, training, dashboards): count,
elapsed time, rate and time left, as tqdm formats them (a slow rate reads "2.10s/it", not 0/s)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

_WITH_TOTAL = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
_WITHOUT_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}]"


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

    def line(self, done: int, elapsed: float, detail: str = "") -> str:
        """The status: e.g. "training:   3% 120/4000 [01:00<32:20, 2.00it/s] D 0.61 G 1.20"."""
        meter = tqdm.format_meter(done, self.total, elapsed, prefix=self.label, unit="it",
                                  bar_format=_WITH_TOTAL if self.total else _WITHOUT_TOTAL)
        return f"{meter} {detail}" if detail else meter

    def due(self) -> bool:
        """Whether the next ``update`` draws: a caller can skip making a costly detail until then."""
        return self.enabled and time.perf_counter() - self._last >= self.interval

    def update(self, done: int, detail: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = self.line(done, now - self.started, detail)
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
