"""What does a colour stroke (the app's colour brush and eraser, mos_studio.core.strokes) cost? Time and memory.

    python benchmarks/bench_strokes.py [--sizes 640px,4K,8K] [--radii 5,20,80] [--runs 5]

A real photo (bench_cascade's photos and sizes), a mask with object edges on it (bench_edges' blobs), and a stroke
across the photo's middle with a brush of each radius (the app's reach: 4 radii, at least 16 px), as an eraser and
as a brush. Each size runs in a fresh child process, so peak RSS is that size's alone. Printed: the median and
minimum seconds of --runs calls per radius and kind with the stroke handed over as the app does (its bounding box
and where it lies, `origin=`), the median with a full-size stroke map as well (as the app did up to stop 58), the
peak RSS before and after them, and how many pixels the last call changed. The app runs the same call on its GUI
thread when a stroke ends. No timing assertions anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cascade import PHOTOS, SIZES, load_photo  # noqa: E402  (this folder is on sys.path as a script)
from bench_edges import check_sizes, peak_mb, run_child  # noqa: E402


def child(size: str, radii: list[int], runs: int) -> dict:
    import cv2
    import numpy as np

    from mos_studio.core.strokes import colour_stroke, reach_for_brush

    w, h = SIZES[size]
    rgb = load_photo(PHOTOS.get(size, "astronaut"), w, h)
    g = cv2.GaussianBlur(rgb[..., 1].astype(np.float32), (0, 0), max(w, h) / 60)  # a few large blobs
    mask = g > np.median(g)
    before = peak_mb()
    rows = []
    for radius in radii:
        stroke = np.zeros((h, w), np.uint8)
        cv2.line(stroke, (int(w * 0.4), int(h * 0.45)), (int(w * 0.6), int(h * 0.55)), 1, 2 * radius)
        ys, xs = np.nonzero(stroke)
        origin = (int(xs.min()), int(ys.min()))
        crop = stroke[origin[1]:ys.max() + 1, origin[0]:xs.max() + 1] > 0  # what the app's brush hands over
        reach = reach_for_brush(radius)
        for add in (False, True):
            times, full_times, changed = [], [], 0
            for _ in range(runs):
                t0 = time.perf_counter()
                rect, values = colour_stroke(rgb, mask, crop, add, reach, origin=origin)
                times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                colour_stroke(rgb, mask, stroke > 0, add, reach)
                full_times.append(time.perf_counter() - t0)
                x0, y0, x1, y1 = rect
                changed = int(np.count_nonzero(values != mask[y0:y1, x0:x1]))
            rows.append({"radius": radius, "reach": reach, "kind": "brush" if add else "eraser",
                         "median_s": statistics.median(times), "min_s": min(times),
                         "full_map_median_s": statistics.median(full_times), "changed_px": changed,
                         "rect": f"{x1 - x0}x{y1 - y0}"})
    return {"size": size, "pixels": f"{w}x{h}", "rows": rows, "peak_before_mb": before, "peak_after_mb": peak_mb()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640px,4K,8K")
    ap.add_argument("--radii", default="5,20,80", help="brush radii in photo pixels, comma-separated")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        radii = [int(r) for r in args.radii.split(",")]
    except ValueError:
        ap.error(f"--radii: give whole numbers of pixels, comma-separated, not {args.radii!r}")
    if args.child:
        print(json.dumps(child(args.child, radii, args.runs)))
        return 0
    print(f"colour strokes on the CPU, {args.runs} runs each; peak RSS per size in a fresh process")
    print("| size | pixels | brush radius (px) | reach (px) | stroke | region | median s | min s | full-size map, "
          "median s | changed (px) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in check_sizes(ap, args.sizes):
        r = run_child(__file__, ["--child", size, "--radii", args.radii, "--runs", str(args.runs)])
        if isinstance(r, str):
            print(f"| {size} | failed: {r} |")
            continue
        for row in r["rows"]:
            print(f"| {r['size']} | {r['pixels']} | {row['radius']} | {row['reach']:.0f} | {row['kind']} | "
                  f"{row['rect']} | {row['median_s']:.3f} | {row['min_s']:.3f} | {row['full_map_median_s']:.3f} | "
                  f"{row['changed_px']} |")
        print(f"| {r['size']} | peak RSS {r['peak_before_mb']:.0f} MB before the strokes, {r['peak_after_mb']:.0f} "
              f"MB after | | | | | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
