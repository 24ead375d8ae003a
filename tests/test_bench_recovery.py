"""benchmarks/bench_recovery.py runs and prints its table (the numbers themselves are docs/PERFORMANCE.md's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_recovery_prints_a_row_per_size():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_recovery.py"), "--sizes", "640px",
                          "--runs", "1"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| 640px |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) > 0 and float(cells[5]) > 0  # a write took time and left a file


def test_bench_recovery_refuses_an_unknown_size():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_recovery.py"), "--sizes", "9K"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "--sizes" in out.stderr
