"""How far does one colour stroke take the cut? A simulated user on held-out photos against the teacher's masks.

    python benchmarks/eval_strokes.py ROOT [--max-images N] [--min-side PX] [--seed S] [--models-dir DIR]
                                      [--min-depth PX] [--max-radius PX]

ROOT holds eval_teacher.py's layout (<source>/images, <source>/masks). Each photo is cut with the weights, and the
cut's largest wrong patch against the mask (missed object or kept background, whichever is larger) gets one dab of
the colour brush or colour eraser at its deepest point: radius half the patch's depth (at least 3 px, at most
--max-radius), reach as the app gives it (4 radii, at least 16 px). Photos whose largest wrong patch is thinner than
--min-depth px are skipped: there is nothing to aim at. Printed: a line per photo and the means before and after,
how many photos the stroke made better or worse, and the median time of a stroke. The dab is aimed inside the wrong
patch, as a user aims it; what it measures is the tool's reach, not the cut's (docs/MODELS.md, stop 58).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_teacher import pick  # noqa: E402  (this folder is on sys.path when run as a script)

from mos_studio.core import Cascade  # noqa: E402
from mos_studio.core.io import load_image  # noqa: E402
from mos_studio.core.metrics import iou, mba  # noqa: E402
from mos_studio.core.strokes import colour_stroke, reach_for_brush  # noqa: E402
from training.data.sources import read_gray  # noqa: E402


def aim(cut: np.ndarray, truth: np.ndarray) -> tuple[bool, int, int, float, int] | None:
    """(add, x, y, depth, area) of the dab for the cut's largest wrong patch, or None when the cut is right."""
    best = None
    for add, wrong in ((True, truth & ~cut), (False, cut & ~truth)):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(wrong.astype(np.uint8), connectivity=8)
        if n < 2:
            continue
        i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[i, cv2.CC_STAT_AREA])
        if best is None or area > best[4]:
            depth = cv2.distanceTransform((labels == i).astype(np.uint8), cv2.DIST_L2, 5)
            y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
            best = (add, int(x), int(y), float(depth[y, x]), area)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--max-images", type=int, default=0, help="0: every photo")
    ap.add_argument("--min-side", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--min-depth", type=float, default=4.0, help="skip photos whose largest wrong patch is thinner")
    ap.add_argument("--max-radius", type=int, default=20)
    args = ap.parse_args()
    todo = pick(args.root, args.max_images, args.min_side, args.seed)
    if not todo:
        print(f"no photos of {args.min_side} px or more under {args.root}", file=sys.stderr)
        return 2
    cascade = Cascade.from_pretrained(args.models_dir)
    cascade.config.stage_maps = False
    print(f"{len(todo)} photos; one dab on each cut's largest wrong patch; device {cascade.device_name}")
    rows, skipped = [], 0
    for img_path, mask_path in todo:
        rgb = load_image(img_path).rgb
        truth = read_gray(mask_path) > 0.5
        cut = cascade(rgb).mask > 0
        target = aim(cut, truth)
        if target is None or target[3] < args.min_depth:
            skipped += 1
            continue
        add, x, y, depth, area = target
        radius = int(np.clip(depth * 0.5, 3, args.max_radius))
        stroke = np.zeros(cut.shape, np.uint8)
        cv2.circle(stroke, (x, y), radius, 1, -1)
        t0 = time.perf_counter()
        grown = colour_stroke(rgb, cut, stroke > 0, add, reach_for_brush(radius))
        seconds = time.perf_counter() - t0
        after = cut.copy()
        if grown is not None:
            (x0, y0, x1, y1), values = grown
            after[y0:y1, x0:x1] = values
        row = (iou(cut, truth), iou(after, truth), mba(cut, truth), mba(after, truth), add, seconds)
        rows.append(row)
        print(f"{mask_path.parent.parent.name[:14]:14s} {img_path.name[:34]:34s} {'brush ' if add else 'eraser'} "
              f"r{radius:2d} patch {area:7d} px  IoU {row[0]:.3f} -> {row[1]:.3f}  mBA {row[2]:.3f} -> {row[3]:.3f}  "
              f"{seconds:.2f} s", flush=True)
    if not rows:
        print(f"no photo had a wrong patch {args.min_depth:g} px deep or more ({skipped} skipped)")
        return 0
    a = np.array([r[:4] for r in rows])
    gain = a[:, 1] - a[:, 0]
    print(f"\n{len(rows)} photos stroked ({skipped} skipped: their largest wrong patch under {args.min_depth:g} px "
          f"deep): IoU {a[:, 0].mean():.4f} -> {a[:, 1].mean():.4f}, mBA {a[:, 2].mean():.4f} -> {a[:, 3].mean():.4f}")
    print(f"better by more than 0.005 IoU: {(gain > 0.005).sum()}, worse by more than 0.005: {(gain < -0.005).sum()}"
          f" (largest gain {gain.max():+.3f}, largest loss {gain.min():+.3f}); median stroke "
          f"{statistics.median(r[5] for r in rows):.2f} s")
    for add, name in ((True, "brush"), (False, "eraser")):
        sel = np.array([r[4] == add for r in rows])
        if sel.any():
            print(f"  {name}: {sel.sum()} photos, IoU {a[sel, 0].mean():.4f} -> {a[sel, 1].mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
