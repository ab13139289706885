"""A one-line progress bar on stderr (no dependency): redrawn in place, at most 10 times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int | None, *, unit: str = "rows", stream: TextIO | None = None) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr  # looked up now: tests and callers may swap stderr
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int, extra: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        rate = done / max(now - self.started, 1e-6)
        if self.total:
            filled = int(30 * min(done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} {self.unit}"
        else:
            bar = f"{done} {self.unit}"
        self.stream.write(f"\r{bar}  {extra}  {rate:,.0f} {self.unit}/s ")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
