"""How good and how fast is the app's region re-refine at each H pass size? Held-out photos, full resolution.

    python benchmarks/bench_region.py SPLIT_VAL_DIR [--min-side 1500] [--max-images 12] [--sizes 1024,768]
                                      [--region 1000] [--threads 2] [--models-dir DIR]

For each held-out photo (long side ≥ --min-side; SPLIT_VAL_DIR holds `<source>/{images,masks}` with the teacher's
masks as the truth), L runs once; its upsampled mask is what the user has. A --region² rectangle centred on that
mask's edge pixel nearest the image centre (bench_cascade's rule) is re-refined as the app does it
(`Cascade(mask=…, roi=…)`), once per `region_size` in --sizes. Prints IoU / mBA inside the region against the
teacher and the median time per size, beside L upsampled alone. No timing assertions anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cascade import refine_roi  # noqa: E402  (this folder is on sys.path when run as a script)
from bench_refine import pairs  # noqa: E402

from mos_studio.core import Cascade, load_image  # noqa: E402
from mos_studio.core.metrics import iou, mba  # noqa: E402
from training.data.sources import read_gray  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--min-side", type=int, default=1500)
    ap.add_argument("--max-images", type=int, default=12)
    ap.add_argument("--sizes", default="1024,768", help="region_size values (long side of H's region pass)")
    ap.add_argument("--region", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models-dir", type=Path, default=None)
    args = ap.parse_args()
    todo = pairs(args.root, args.min_side)[: args.max_images]
    if not todo:
        print(f"no photos of {args.min_side} px or more under {args.root}", file=sys.stderr)
        return 2
    cascade = Cascade.from_pretrained(args.models_dir)
    cascade.config.threads = args.threads
    sizes = [int(v) for v in args.sizes.split(",")]
    rows: dict[int, list[tuple[float, float, float]]] = {s: [] for s in sizes}
    low_rows = []
    print(f"{len(todo)} photos ≥ {args.min_side} px, {args.region}² regions; device {cascade.device_name}")
    for img_path, mask_path in todo:
        rgb = load_image(img_path).rgb
        truth = read_gray(mask_path) > 0.5
        low = cascade.run_low(rgb)[0]
        x0, y0, x1, y1 = roi = refine_roi(low, args.region)
        t = truth[y0:y1, x0:x1]
        low_rows.append((iou(low[y0:y1, x0:x1] > 0.5, t), mba(low[y0:y1, x0:x1] > 0.5, t)))
        line = [f"{img_path.parent.parent.name[:14]:14s} {img_path.name[:30]:30s} L-up {low_rows[-1][0]:.3f}/"
                f"{low_rows[-1][1]:.3f}"]
        for s in sizes:
            cascade.config.region_size = s
            t0 = time.perf_counter()
            p = cascade(rgb, mask=low > 0.5, roi=roi).mask[y0:y1, x0:x1]
            rows[s].append((iou(p, t), mba(p, t), time.perf_counter() - t0))
            line.append(f"{s}: {rows[s][-1][0]:.3f}/{rows[s][-1][1]:.3f} {rows[s][-1][2]:.2f}s")
        print("  ".join(line), flush=True)
    lo = np.mean(low_rows, 0)
    print(f"\nmeans inside the region (IoU / mBA against the teacher), n={len(todo)}: L upsampled {lo[0]:.3f} / "
          f"{lo[1]:.3f}")
    for s in sizes:
        v = np.array(rows[s])
        print(f"  region_size {s}: {v[:, 0].mean():.3f} / {v[:, 1].mean():.3f}, median "
              f"{statistics.median(v[:, 2]):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
