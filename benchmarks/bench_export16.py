"""What does keeping a 16-bit photo's depth in its cut-out cost? Time, file size, memory.

    python benchmarks/bench_export16.py [--sizes 640px,4K,8K] [--runs 3]

A 16-bit PNG made from bench_cascade's photo at each size (its 8-bit colours scaled up, with a little noise in the
low bits so the file is a real 16-bit one), a mask of large blobs with a soft row. Printed per size: opening the
photo (`load_image`, 8-bit, as every cut does), reading its 16-bit colours (`load_colours16`), writing the cut-out
at 8 bits and at 16 bits (`save_cutout`, hard alpha), the files' sizes and the peak RSS. No timing assertions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cascade import PHOTOS, SIZES, load_photo  # noqa: E402  (this folder is on sys.path as a script)
from bench_edges import check_sizes, peak_mb  # noqa: E402


def best(runs: int, fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> int:
    import cv2
    import numpy as np

    from mos_studio.core.io import load_colours16, load_image, save_cutout

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640px,4K,8K")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = check_sizes(ap, args.sizes)
    print(f"16-bit cut-outs on the CPU, best of {args.runs}")
    print("| size | pixels | open (8-bit) s | read 16-bit colours s | write 8-bit cut-out s | write 16-bit cut-out s "
          "| 8-bit file MB | 16-bit file MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        w, h = SIZES[size]
        rgb = load_photo(PHOTOS.get(size, "astronaut"), w, h)
        rng = np.random.default_rng(0)
        deep = rgb.astype(np.uint16) * 257 + rng.integers(0, 200, rgb.shape, dtype=np.uint16)
        g = cv2.GaussianBlur(rgb[..., 1].astype(np.float32), (0, 0), max(w, h) / 60)
        alpha = (g > np.median(g)).astype(np.float32)
        alpha[h // 2] *= 0.5
        with tempfile.TemporaryDirectory() as folder:
            src = Path(folder) / "photo16.png"
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(deep[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            src.write_bytes(buf.tobytes())
            t_open, loaded = best(args.runs, load_image, src)
            t_read, colours = best(args.runs, load_colours16, src, (w, h))
            assert loaded.depth == 16 and colours is not None
            out8, out16 = Path(folder) / "cut8.png", Path(folder) / "cut16.png"
            t8, p8 = best(args.runs, save_cutout, loaded.rgb, alpha, out8, overwrite=True)
            t16, p16 = best(args.runs, save_cutout, loaded.rgb, alpha, out16, overwrite=True, colours16=colours)
            mb8, mb16 = p8.stat().st_size / 1e6, p16.stat().st_size / 1e6
        peak = peak_mb()
        print(f"| {size} | {w}x{h} | {t_open:.3f} | {t_read:.3f} | {t8:.3f} | {t16:.3f} | {mb8:.1f} | {mb16:.1f} | "
              f"{peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
