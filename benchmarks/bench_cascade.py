"""Seconds, peak memory and GFLOPs of the L/H cascade at 1K, 2K, 4K and 8K, per encoder.

Each (encoder, size) runs in its own process so peak RSS belongs to that run alone. Weights are random with the
real architecture (same FLOPs as trained ones). Random weights leave H uncertain everywhere, so *every* crop is
refined: the measured H time is the worst case. `--weights DIR` (e.g. `models`) loads trained weights instead: H
is then confident away from the object and only the crops along its edge run — the time a user sees. The script
also prints how many crops a real object's boundary needs (a synthetic object's edge on the same crop grid) and the
time that implies.

    python benchmarks/bench_cascade.py [--encoders mobilenetv3,resnet50] [--sizes 1K,2K,4K,8K] [--device cpu]
                                       [--weights models]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = {"1K": (1920, 1080), "2K": (2560, 1440), "4K": (3840, 2160), "8K": (7680, 4320)}


def synthetic(w: int, h: int):
    """A photo-like image (smooth colour field + noise) with an elliptical object that has thin strands."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    small = (rng.random((h // 64 + 2, w // 64 + 2, 3)) * 255).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 5, h // 4), 0, 0, 360, 255, -1)
    for _ in range(40):
        a = rng.uniform(0, 2 * np.pi)
        p0 = (int(w / 2 + np.cos(a) * w / 5), int(h / 2 + np.sin(a) * h / 4))
        p1 = (int(p0[0] + np.cos(a) * w / 10), int(p0[1] + np.sin(a) * h / 8))
        cv2.line(mask, p0, p1, 255, max(1, w // 1500))
    img[mask > 0] = (img[mask > 0] * 0.4 + np.array([200, 80, 40]) * 0.6).astype(np.uint8)
    return img, mask


def gflops(model, shape) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape))
    return counter.get_total_flops() / 1e9


def run_one(encoder: str, size: str, device: str | None, weights: str | None = None) -> dict:
    import numpy as np
    import torch

    from mos_studio.core.cascade import Cascade, CascadeConfig, crop_starts
    from mos_studio.core.model import MeticulousNet

    torch.manual_seed(0)
    w, h = SIZES[size]
    img, obj = synthetic(w, h)
    if weights:
        cascade = Cascade.from_pretrained(weights, encoder=encoder, device=device)
        cfg = cascade.config
    else:
        cfg = CascadeConfig()
        cascade = Cascade(MeticulousNet(encoder, 3), MeticulousNet(encoder, 4), device=device, config=cfg)
    cascade(img[:256, :256].copy())  # warm-up (allocator, kernels)
    if cascade.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = cascade(img)
    if cascade.device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    n_crops = int(res.timings.get("H crops", 0))
    # Crops a real boundary would need: the object's edge on the same grid.
    import cv2

    edge = cv2.morphologyEx(obj, cv2.MORPH_GRADIENT, np.ones((7, 7), np.uint8)) > 0
    c = cfg.crop_size
    step = c - cfg.crop_overlap
    needed = sum(
        bool(edge[y : y + c, x : x + c].any()) for y in crop_starts(h, c, step) for x in crop_starts(w, c, step)
    )
    per_crop = res.timings.get("H local", 0.0) / max(1, n_crops)
    scale = min(1.0, cfg.global_size / max(h, w))
    low, high = cascade.l_model.cpu(), cascade.h_model.cpu()
    row = {
        "encoder": encoder,
        "size": f"{size} ({w}x{h})",
        "device": res.device,
        "weights": weights or "random",
        "L_s": round(res.timings["L"], 2),
        "H_global_s": round(res.timings["H global"], 2),
        "H_local_s": round(res.timings.get("H local", 0.0), 2),
        "total_s": round(total, 2),
        "crops_run": n_crops,
        "crops_boundary": needed,
        "total_boundary_est_s": round(res.timings["L"] + res.timings["H global"] + needed * per_crop, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "gflops_L": round(gflops(low, (1, 3, cfg.l_size, cfg.l_size)), 1),
        "gflops_H_global": round(gflops(high, (1, 4, round(h * scale), round(w * scale))), 1),
        "gflops_H_crop": round(gflops(high, (1, 4, c, c)), 1),
    }
    row["gflops_total"] = round(row["gflops_L"] + row["gflops_H_global"] + n_crops * row["gflops_H_crop"], 1)
    if cascade.device.type == "cuda":
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", default="mobilenetv3,resnet50")
    ap.add_argument("--sizes", default="1K,2K,4K,8K")
    ap.add_argument("--device", default=None)
    ap.add_argument("--weights", default=None, help="folder of trained weights (default: random weights)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: "encoder:size"
    args = ap.parse_args()
    if args.one:
        enc, size = args.one.split(":")
        print(json.dumps(run_one(enc, size, args.device, args.weights)))
        return
    rows = []
    for enc in args.encoders.split(","):
        for size in args.sizes.split(","):
            cmd = [sys.executable, __file__, "--one", f"{enc}:{size}"]
            cmd += ["--device", args.device] if args.device else []
            cmd += ["--weights", args.weights] if args.weights else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{enc} {size}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if rows:
        keys = list(rows[0])
        print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in rows:
            print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
