"""benchmarks/bench_strokes.py runs and prints its table (the numbers themselves are docs/PERFORMANCE.md's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_strokes_prints_a_row_per_stroke_and_the_memory():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_strokes.py"), "--sizes", "640px",
                          "--radii", "5", "--runs", "1"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 640px | 640x427 | 5 |")]
    assert [r.split("|")[5].strip() for r in rows] == ["eraser", "brush"]
    assert all(float(r.split("|")[7]) > 0 and float(r.split("|")[9]) > 0 for r in rows)  # times were taken
    assert "peak RSS" in out.stdout and "failed" not in out.stdout


def test_bench_strokes_refuses_a_bad_radius_list():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_strokes.py"), "--radii", "big"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "--radii" in out.stderr
