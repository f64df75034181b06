"""Progress lines for long stages: throttled, with rate and time left, through a `log` callable.

The stages log through `StageSettings.log` / `PreferenceSettings.log`: the CLI prints to
stderr, pytest writes past its output capture (fixtures/progress.py), tests pass a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Ticker:
    """`update(n)` after each unit of work; a line at most every `every_s` seconds and at the end."""

    def __init__(self, log: Callable[[str], None], label: str, total: int, unit: str,
                 every_s: float = 15.0, done: int = 0):
        self.log, self.label, self.total, self.unit = log, label, total, unit
        self.every_s = every_s
        self.done = self.start_done = done
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.started
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.log(f"{self.label}: {self.done}/{self.total} {self.unit} "
                 f"({100 * self.done / max(self.total, 1):.0f}%), {elapsed:.0f}s elapsed, "
                 + ("done" if self.done >= self.total else f"about {left:.0f}s left"))
