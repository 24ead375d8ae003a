"""benchmarks/eval_strokes.py: a real cut of the bundled cup, one aimed colour stroke, scored against its checked
mask (standing in for the teacher's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_one_aimed_stroke_improves_the_shipped_cut_of_the_cup(cup_val_root: Path) -> None:
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_strokes.py"), str(cup_val_root)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "MOS_THREADS": "2"})
    assert run.returncode == 0, run.stderr
    row = re.search(r"(brush |eraser) r\s*(\d+) patch\s+(\d+) px  IoU ([\d.]+) -> ([\d.]+)", run.stdout)
    assert row is not None, run.stdout
    # The cup's largest wrong patch is the table wedge the cut keeps (about 10,600 px): an eraser dab takes most of it.
    assert row.group(1) == "eraser" and int(row.group(3)) > 5000
    before, after = float(row.group(4)), float(row.group(5))
    assert 0.78 < before < 0.85 and after > before + 0.03, run.stdout
    assert "1 photos stroked (0 skipped" in run.stdout and "worse by more than 0.005: 0" in run.stdout


def test_an_empty_root_is_refused(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_strokes.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no photos" in run.stderr
