"""benchmarks/bench_export16.py runs and prints its table (the numbers themselves are docs/PERFORMANCE.md's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_export16_prints_a_row_per_size():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_export16.py"), "--sizes", "640px",
                          "--runs", "1"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| 640px |"))
    cells = [float(c) for c in row.strip("|").split("|")[2:]]
    assert all(c > 0 for c in cells) and cells[5] > cells[4]  # times taken; the 16-bit file is the larger


def test_bench_export16_refuses_an_unknown_size():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_export16.py"), "--sizes", "9K"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "--sizes" in out.stderr
