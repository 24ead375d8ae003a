"""What does keeping a recovery copy of an unexported mask cost (mos_studio.app.recovery)? Time, file size, memory.

    python benchmarks/bench_recovery.py [--sizes 640px,4K,8K] [--runs 3]

A mask of large blobs at each of bench_cascade's sizes. Printed per size: the copy the window takes on the GUI
thread, the write on the store's thread (PNG, compression 1, fsync, atomic rename), the read when a photo opens,
the file's size and the peak RSS. The window writes a copy 1.5 s after the edits pause. No timing assertions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cascade import SIZES  # noqa: E402  (this folder is on sys.path as a script)
from bench_edges import check_sizes, peak_mb  # noqa: E402


def main() -> int:
    import cv2
    import numpy as np

    from mos_studio.app.recovery import RecoveryStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640px,4K,8K")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = check_sizes(ap, args.sizes)
    print(f"recovery copies on the CPU, best of {args.runs}")
    print("| size | pixels | copy on the GUI thread (ms) | write (s) | read (s) | file (MB) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        w, h = SIZES[size]
        rng = np.random.default_rng(0)
        g = cv2.GaussianBlur(rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32), (0, 0), 3)
        mask = np.where(cv2.resize(g, (w, h)) > g.mean(), 255, 0).astype(np.uint8)
        with tempfile.TemporaryDirectory() as folder:
            store = RecoveryStore(folder)
            copies, writes, reads = [], [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                copy = mask.copy()
                copies.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                store.save("bench", "/photo.jpg", copy, None).result()
                writes.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                found = store.find("bench", w, h)
                reads.append(time.perf_counter() - t0)
                assert found is not None and np.array_equal(found.mask, mask)
            mb = (Path(folder) / "bench.mask.png").stat().st_size / 1e6
            store.close()
        peak = peak_mb()
        print(f"| {size} | {w}x{h} | {min(copies) * 1000:.1f} | {min(writes):.3f} | {min(reads):.3f} | {mb:.2f} | "
              f"{peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
