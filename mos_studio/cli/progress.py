"""A dependency-free text progress bar on stderr (quiet when stderr is not a terminal unless forced)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total: int, label: str = "", stream=None, enabled: bool | None = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self.done = 0

    def update(self, done: float, note: str = "") -> None:
        self.done = done
        if not self.enabled:
            return
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        rate = done / max(1e-9, time.perf_counter() - self.start)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {rate:5.2f}/s {note[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
