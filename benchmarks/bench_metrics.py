"""Seconds to score one 4K pair (all metrics) and a 100-image folder through `mos eval --pred --gt`.

    python benchmarks/bench_metrics.py [--size 3840x2160] [--folder-n 100] [--folder-size 1024x768]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def shape_pair(w: int, h: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A blobby truth with thin strands and a prediction with boundary noise and a missing chunk."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((h, w), np.uint8)
    for _ in range(6):
        cv2.circle(gt, (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))),
                   int(rng.integers(h // 10, h // 4)), 255, -1)
    for _ in range(30):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(gt, p0, (p0[0] + int(rng.integers(-w // 8, w // 8)), p0[1] + int(rng.integers(-h // 8, h // 8))),
                 255, max(1, w // 2000))
    noise = cv2.GaussianBlur((rng.random((h, w)) * 255).astype(np.uint8), (0, 0), 3)
    pred = cv2.GaussianBlur(gt, (0, 0), 2).astype(np.float32) / 255 + (noise.astype(np.float32) / 255 - 0.5) * 0.3
    pred[h // 3 : h // 3 + h // 20, w // 2 : w // 2 + w // 20] = 0
    return np.clip(pred, 0, 1), gt


def main() -> None:
    from mos_studio.cli.main import main as mos
    from mos_studio.core.metrics import score_pair

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="3840x2160")
    ap.add_argument("--folder-n", type=int, default=100)
    ap.add_argument("--folder-size", default="1024x768")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    pred, gt = shape_pair(w, h, 0)
    score_pair(pred, gt)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        score_pair(pred, gt)
        times.append(time.perf_counter() - t)
    print(f"one pair {w}x{h}: {min(times):.3f} s (best of 3; all metrics: MAE, S-m, IoU, mBA, MQ) on the CPU")
    fw, fh = (int(v) for v in args.folder_size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pred").mkdir()
        (root / "gt").mkdir()
        for i in range(args.folder_n):
            p, g = shape_pair(fw, fh, i + 1)
            cv2.imwrite(str(root / "pred" / f"{i:03d}.png"), (p * 255).astype(np.uint8))
            cv2.imwrite(str(root / "gt" / f"{i:03d}.png"), g)
        t = time.perf_counter()
        mos(["eval", "--pred", str(root / "pred"), "--gt", str(root / "gt"), "--out", str(root / "out")])
        dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"folder of {args.folder_n} pairs at {fw}x{fh}: {dt:.2f} s ({dt / args.folder_n * 1000:.0f} ms per pair, "
          f"including PNG decoding and the gallery); peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
