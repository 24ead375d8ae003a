"""What does the edge snap (mos_studio.core.edges.snap_to_edges) cost on its own? Time and extra memory per size.

    python benchmarks/bench_edges.py [--sizes 640px,4K,8K] [--runs 5] [--radius 8]

A real photo (bench_cascade's photos and sizes) and a probability map with object edges on it (the photo's
green channel blurred to a few large blobs and thresholded, then softened). Each size runs in a fresh child
process, so peak RSS is that size's alone. Printed: the median seconds of --runs calls (in place and cut_only, as
the cascade calls it), the peak RSS before and after them, and the difference. No timing assertions anywhere.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cascade import PHOTOS, SIZES, load_photo  # noqa: E402  (this folder is on sys.path as a script)


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB (the benchmarks' memory column)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def check_sizes(ap: argparse.ArgumentParser, text: str) -> list[str]:
    """--sizes as a list of bench_cascade's size names; a usage error (exit 2) naming an unknown one."""
    sizes = text.split(",")
    for size in sizes:
        if size not in SIZES:
            ap.error(f"--sizes: unknown size {size!r} (known: {', '.join(SIZES)})")
    return sizes


def child(size: str, runs: int, radius: int) -> dict:
    import cv2
    import numpy as np

    from mos_studio.core.edges import snap_to_edges

    w, h = SIZES[size]
    rgb = load_photo(PHOTOS.get(size, "astronaut"), w, h)
    g = cv2.GaussianBlur(rgb[..., 1].astype(np.float32), (0, 0), max(w, h) / 60)  # a few large blobs
    prob = cv2.GaussianBlur((g > np.median(g)).astype(np.float32), (0, 0), max(w, h) / 1000)
    work = prob.copy()
    before = peak_mb()
    times = []
    for _ in range(runs):
        np.copyto(work, prob)
        t0 = time.perf_counter()
        snap_to_edges(rgb, work, radius, 1e-3, 1024, out=work, cut_only=True)
        times.append(time.perf_counter() - t0)
    moved = int(((work > 0.5) != (prob > 0.5)).sum())
    return {"size": size, "pixels": f"{w}x{h}", "median_s": statistics.median(times), "min_s": min(times),
            "peak_before_mb": before, "peak_after_mb": peak_mb(), "moved_px": moved}


def run_child(script: str, args: list[str]) -> dict | str:
    """`script` with `args` in a fresh process (so its peak RSS is its own): the JSON of its last stdout line, or
    the last line of its error when it failed."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit status {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640px,4K,8K")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runs, args.radius)))
        return 0
    print(f"edge snap, radius {args.radius} of a 1024 px view, cut_only, in place; {args.runs} runs per size")
    print("| size | pixels | median s | min s | peak RSS before (MB) | after | extra | cut moved (px) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in check_sizes(ap, args.sizes):
        r = run_child(__file__, ["--child", size, "--runs", str(args.runs), "--radius", str(args.radius)])
        if isinstance(r, str):
            print(f"| {size} | failed: {r} |")
            continue
        print(f"| {r['size']} | {r['pixels']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['peak_before_mb']:.0f} | "
              f"{r['peak_after_mb']:.0f} | {r['peak_after_mb'] - r['peak_before_mb']:.0f} | {r['moved_px']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
