"""Speed, memory and FLOPs of the L/H cascade on real photos at 4K, 24 MP and 8K, against the unoptimised path.

For each size a real photo (scikit-image's sample photos, or a file) is centre-cropped to the size's aspect ratio
and upscaled (bicubic), so the network sees photo content, not a flat synthetic image. Each size runs in fresh
child processes, so peak RSS is that run's alone:

1. the optimised cascade (`CascadeConfig()`: ONNX Runtime when installed, threads from the free cores; stage maps
   off, while `mos cut` keeps them on for its soft-edge step and `--cli` times that), `--runs` timed runs after
   one warm-up call; the figures are the median of those runs;
2. the unoptimised reference path (`CascadeConfig(optimized=False)`: plain PyTorch eager as trained, the full
   512² crop grid, all threads), `--ref-runs` runs (default 1), in the same invocation, so the ratio compares like
   with like on a shared machine;

and compares the two masks (IoU). Printed per size: L / H global / H local seconds, crops run, GFLOPs (counted with
torch's FlopCounterMode for the exact shapes run), achieved GFLOP/s, peak RSS, threads used, the reference's time
and the speed-up, the IoU, and the 1-minute load average around the run.

Options: `--busy` adds the oversubscribed case (another 2-thread PyTorch job on the same cores: auto threads vs all
cores); `--cli` times `mos cut` as a whole process on the 4K photo; `--box` times an 800 × 800 box prompt on the
object's edge (H's card settings and H on the box alone); `--refine` times the app's re-refine of a
1000×1000 region. `--threads N` fixes the thread count instead of choosing it.

    python benchmarks/bench_cascade.py [--sizes 4K,24MP,8K] [--runs 3] [--ref-runs 1 | --no-ref] [--busy] [--cli]
                                       [--refine] [--box] [--threads N] [--photo NAME_OR_PATH] [--weights models]
                                       [--encoder default] [--crops | --no-crops] [--random-weights] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    "640px": (640, 427),  # a web-sized photo, under 768 px: the shipped card's enlarged edge pass runs
    "1K": (1920, 1080),
    "2K": (2560, 1440),
    "4K": (3840, 2160),
    "24MP": (6000, 4000),
    "8K": (7680, 4320),
}
PHOTOS = {"4K": "astronaut", "24MP": "coffee", "8K": "chelsea"}  # default photo per size (others: astronaut)


def load_photo(name: str, w: int, h: int):
    """A real photo, centre-cropped to w:h and resized (bicubic) to w×h."""
    import cv2
    import numpy as np

    if Path(name).is_file():
        from mos_studio.core.io import load_image

        src = load_image(Path(name)).rgb
    elif name == "sample":
        from mos_studio.core.io import load_image

        src = load_image(ROOT / "resources" / "samples" / "sample.jpg").rgb
    else:
        from skimage import data

        src = getattr(data, name)()
    if src.ndim == 2:
        src = np.stack([src] * 3, -1)
    src = src[..., :3]
    sh, sw = src.shape[:2]
    if sw / sh > w / h:
        cw = round(sh * w / h)
        src = src[:, (sw - cw) // 2 : (sw - cw) // 2 + cw]
    else:
        ch = round(sw * h / w)
        src = src[(sh - ch) // 2 : (sh - ch) // 2 + ch]
    return np.ascontiguousarray(cv2.resize(src, (w, h), interpolation=cv2.INTER_CUBIC))


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------------------- child side
class Flops:
    """GFLOPs of one forward pass per (model, input shape), counted once."""

    def __init__(self) -> None:
        self.cache: dict[tuple, float] = {}

    def __call__(self, model, shape: tuple[int, ...]) -> float:
        key = (id(model), shape)
        if key not in self.cache:
            import torch
            from torch.utils.flop_counter import FlopCounterMode

            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                model(torch.zeros(shape, device=next(model.parameters()).device))
            self.cache[key] = counter.get_total_flops() / 1e9
        return self.cache[key]


def cascade_gflops(cascade, h: int, w: int, crops: list, flops: Flops) -> dict:
    cfg = cascade.config
    low, high = cascade.l_model, cascade.h_model
    lw, lh = cascade.l_input_size(h, w)
    g_l = flops(low, (1, 3, lh, lw))
    if cfg.l_blend:  # L's second, own-shape input
        bw, bh = cascade.l_blend_size(h, w)
        g_l += flops(low, (1, 3, bh, bw))
    box = cascade.last_zoom_box if cfg.l_zoom else None
    if box is not None:  # L's second, closer look at the box around its answer (when the last run took one)
        zw, zh = cascade.l_input_size(box[3] - box[1], box[2] - box[0])
        g_l += flops(low, (1, 3, zh, zw))
    g_l *= 2 if cfg.l_flip else 1
    scale = min(1.0, cfg.global_size / max(h, w))
    mirrored = cfg.h_flip and max(h, w) <= cfg.global_size  # the mirror pass runs only at 1:1
    g_g = flops(high, (1, 4, max(8, round(h * scale)), max(8, round(w * scale)))) * (2 if mirrored else 1)
    enlarged = min(cfg.global_size, cfg.upscale_size or cfg.global_size)
    if cfg.h_upscale and max(h, w) < enlarged:  # a cut's enlarged edge pass (CascadeConfig.h_upscale)
        f = enlarged / max(h, w)
        g_g += flops(high, (1, 4, max(8, round(h * f)), max(8, round(w * f)))) * max(1, cfg.upscale_passes) * (
            2 if mirrored and cfg.upscale_flip else 1)
    g_c = sum(flops(high, (1, 4, y1 - y0, x1 - x0)) for x0, y0, x1, y1 in crops)
    return {"L": g_l, "H global": g_g, "H local": g_c, "total": g_l + g_g + g_c}


def make_cascade(spec: dict):
    import torch

    from mos_studio.core.cascade import Cascade, CascadeConfig
    from mos_studio.core.model import MeticulousNet

    if spec.get("random_weights"):
        torch.manual_seed(0)
        enc = spec["encoder"]
        low, high = MeticulousNet(enc, 3), MeticulousNet(enc, 4)
        cascade = Cascade(low, high, device=spec.get("device"), config=CascadeConfig())
    else:
        cascade = Cascade.from_pretrained(spec["weights"], encoder=spec["encoder"], device=spec.get("device"))
    cfg = cascade.config
    if spec.get("crops") is not None:
        cfg.local_passes = spec["crops"]
    cfg.optimized = spec["mode"] == "opt"
    cfg.stage_maps = not cfg.optimized  # the reference converts every stage map, as the code did before
    cfg.threads = spec.get("threads")
    if not cfg.optimized and spec.get("threads"):
        torch.set_num_threads(spec["threads"])  # the reference path only ever used PyTorch's own pool
    return cascade


def refine_roi(prob, size: int = 1000) -> tuple[int, int, int, int]:
    """A size×size region centred on the object's edge pixel nearest the image centre (where a user would look)."""
    import cv2
    import numpy as np

    h, w = prob.shape
    m = (prob > 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(edge)
    if len(ys) == 0:
        cy, cx = h // 2, w // 2
    else:
        i = int(np.argmin((ys - h / 2) ** 2 + (xs - w / 2) ** 2))
        cy, cx = int(ys[i]), int(xs[i])
    x0 = min(max(0, cx - size // 2), max(0, w - size))
    y0 = min(max(0, cy - size // 2), max(0, h - size))
    return x0, y0, min(w, x0 + size), min(h, y0 + size)


def run_child(spec: dict) -> dict:
    import numpy as np
    import torch

    w, h = SIZES[spec["size"]]
    img = load_photo(spec["photo"], w, h)
    load_before = _load()
    t0 = time.perf_counter()
    cascade = make_cascade(spec)
    cfg = cascade.config
    # Warm-up: allocator, kernels, and (optimised path) the ONNX export or cache read and the sessions, so the timed
    # runs measure steady state; this first-use cost is reported on its own. (If the free cores change between
    # runs, a timed run includes making sessions for the new thread count, as it would for a user.)
    cascade(img[:1024, :1024].copy())
    first_use = time.perf_counter() - t0
    runs = []
    res = None
    for _ in range(spec["runs"]):
        if cascade.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = cascade(img)
        if cascade.device.type == "cuda":
            torch.cuda.synchronize()
        runs.append({"wall": time.perf_counter() - t, **res.timings})
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert res is not None
    if spec.get("out"):
        np.save(spec["out"], np.packbits(res.probability > cfg.threshold))
    row = {
        "mode": spec["mode"],
        "size": spec["size"],
        "pixels": f"{w}x{h}",
        "photo": spec["photo"],
        "device": res.device,
        "runs": len(runs),
        "first_use_s": round(first_use, 2),
        "peak_rss_mb": round(peak_rss),
        "load_before": load_before,
        "load_after": _load(),
    }
    for key in ("L", "H global", "H local", "wall"):
        vals = [r.get(key, 0.0) for r in runs]
        row[f"{key}_s"] = round(statistics.median(vals), 2)
    row["total_runs_s"] = [round(r["wall"], 2) for r in runs]
    row["threads"] = sorted({int(r.get("threads", torch.get_num_threads())) for r in runs})
    row["crops"] = len(res.crops)
    row["crop_area_mpx"] = round(sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in res.crops) / 1e6, 2)
    if spec.get("refine"):
        roi = refine_roi(res.probability)
        user = res.probability > cfg.threshold
        cascade(img, mask=user, roi=roi)  # warm-up of the region's shapes
        times = []
        for _ in range(3):
            time.sleep(1.0)  # a user moves the rectangle between re-refines; the timed call starts from idle
            t = time.perf_counter()
            ref_res = cascade(img, mask=user, roi=roi)
            times.append(time.perf_counter() - t)
        row["refine_1000_s"] = round(statistics.median(times), 2)
        row["refine_1000_runs_s"] = [round(v, 2) for v in times]
        row["refine_roi"] = roi
        if spec.get("out"):
            x0, y0, x1, y1 = roi
            np.save(spec["out"].replace(".npy", "_refine.npy"), ref_res.mask[y0:y1, x0:x1])
    if spec.get("box"):
        # A box prompt of 800 × 800 px centred on the object's edge nearest the photo's centre (one subject among
        # several, as a user would box it), timed with H's card settings (box_context: H also sees the box's
        # surroundings, up to its 1024 px pass) and with H on the box alone.
        box = refine_roi(res.probability, 800)
        card_context = cfg.box_context
        for key, context in (("box", card_context), ("box_alone", 0.0)):
            cfg.box_context = context
            cascade(img, box=box)  # warm-up of the box's shapes
            times, regions = [], set()
            for _ in range(3):
                t = time.perf_counter()
                box_res = cascade(img, box=box)
                times.append(time.perf_counter() - t)
                regions.add(box_res.region)
            row[f"{key}_s"] = round(statistics.median(times), 2)
            row[f"{key}_h_region"] = sorted(regions)[0] if regions else None
        cfg.box_context = card_context
        row["box"] = box
    if cascade.device.type == "cuda":
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    gf = cascade_gflops(cascade, h, w, res.crops, Flops())
    row["gflops"] = round(gf["total"], 1)
    row["gflops_H_local"] = round(gf["H local"], 1)
    row["gflop_per_s"] = round(gf["total"] / row["wall_s"], 1)
    row["gflop_per_s_H_local"] = round(gf["H local"] / row["H local_s"], 1) if row["H local_s"] else None
    return row


def competitor(threads: int) -> None:
    """Another PyTorch job on the same cores: convolutions in a loop on `threads` threads until killed."""
    import torch

    torch.set_num_threads(threads)
    x = torch.rand(1, 64, 256, 256)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    with torch.inference_mode():
        while True:
            conv(x)


# --------------------------------------------------------------------------------------------------- parent side
def spawn(spec: dict) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{spec['size']} {spec['mode']}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    for line in proc.stderr.splitlines():
        if line.startswith("mos:"):
            print(line, file=sys.stderr)  # fallback notices
    return json.loads(proc.stdout.strip().splitlines()[-1])


def iou(a_path: str, b_path: str) -> float:
    """IoU of two saved masks (bit-packed uint8 or bool)."""
    import numpy as np

    a, b = np.load(a_path), np.load(b_path)
    inter = np.unpackbits(a & b).sum() if a.dtype == np.uint8 else (a & b).sum()
    union = np.unpackbits(a | b).sum() if a.dtype == np.uint8 else (a | b).sum()
    return float(inter / union) if union else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4K,24MP,8K")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of the optimised path per size (median shown)")
    ap.add_argument("--ref-runs", type=int, default=1, help="timed runs of the unoptimised path per size")
    ap.add_argument("--no-ref", action="store_true", help="skip the unoptimised path (no ratio, no IoU)")
    ap.add_argument("--ref-threads", type=int, default=None,
                    help="PyTorch threads of the unoptimised path (default: PyTorch's default, all cores, as before)")
    ap.add_argument("--threads", type=int, default=None, help="fix the thread count (default: auto)")
    ap.add_argument("--photo", default=None, help="skimage.data name, 'sample', or an image file (default per size)")
    ap.add_argument("--weights", default=str(ROOT / "models"))
    ap.add_argument("--encoder", default="default", help="which pair (default: the models folder's default.json)")
    ap.add_argument("--crops", action=argparse.BooleanOptionalAction, default=None,
                    help="force H's full-resolution crops on or off (default: as H's card says)")
    ap.add_argument("--random-weights", action="store_true", help="random weights (encoders without shipped ones)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--busy", action="store_true", help="also run 4K beside another 2-thread PyTorch job")
    ap.add_argument("--cli", action="store_true", help="also time `mos cut` as a whole process on the 4K photo")
    ap.add_argument("--refine", action="store_true", help="also time a 1000×1000 region re-refine (4K photo)")
    ap.add_argument("--box", action="store_true",
                    help="also time an 800x800 box prompt on the object's edge, with H's card settings and H on "
                         "the box alone (every size)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--competitor", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    if args.competitor:
        competitor(args.competitor)
        return

    tmp = tempfile.mkdtemp(prefix="bench_cascade_")
    base = {"weights": args.weights, "encoder": args.encoder, "device": args.device, "crops": args.crops,
            "random_weights": args.random_weights}
    rows = []
    print(f"# {os.cpu_count()} CPUs, load average at start {os.getloadavg()}", flush=True)
    for size in args.sizes.split(","):
        photo = args.photo or PHOTOS.get(size, "astronaut")
        spec = {**base, "size": size, "photo": photo, "refine": args.refine and size == "4K", "box": args.box}
        opt = spawn({**spec, "mode": "opt", "runs": args.runs, "threads": args.threads,
                     "out": f"{tmp}/{size}_opt.npy"})
        if opt is None:
            continue
        if not args.no_ref:
            ref = spawn({**spec, "mode": "ref", "runs": args.ref_runs, "threads": args.ref_threads,
                         "out": f"{tmp}/{size}_ref.npy"})
            if ref is not None:
                opt["ref_s"] = ref["wall_s"]
                opt["ref_threads"] = ref["threads"]
                opt["ref_L_H_global_H_local_s"] = [ref["L_s"], ref["H global_s"], ref["H local_s"]]
                opt["ref_crops"] = ref["crops"]
                opt["ref_gflops"] = ref["gflops"]
                opt["ref_gflop_per_s"] = ref["gflop_per_s"]
                opt["ref_peak_rss_mb"] = ref["peak_rss_mb"]
                opt["speedup"] = round(ref["wall_s"] / opt["wall_s"], 2)
                opt["iou_vs_ref"] = round(iou(f"{tmp}/{size}_opt.npy", f"{tmp}/{size}_ref.npy"), 5)
                if "refine_1000_s" in ref:
                    opt["ref_refine_1000_s"] = ref["refine_1000_s"]
                    a, b = f"{tmp}/{size}_opt_refine.npy", f"{tmp}/{size}_ref_refine.npy"
                    opt["refine_iou_vs_ref"] = round(iou(a, b), 5)
        rows.append(opt)
        print(json.dumps(opt), flush=True)

    if args.busy:
        busy_rows = []
        comp = subprocess.Popen([sys.executable, __file__, "--competitor", "2"])
        try:
            time.sleep(3)
            spec = {**base, "size": "4K", "photo": args.photo or PHOTOS["4K"], "mode": "opt", "runs": args.runs}
            for threads in (None, os.cpu_count()):
                r = spawn({**spec, "threads": threads})
                if r is not None:
                    r["case"] = f"beside a 2-thread PyTorch job, threads={'auto' if threads is None else threads}"
                    busy_rows.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            comp.kill()
            comp.wait()
        rows += busy_rows

    if args.cli:
        w, h = SIZES["4K"]
        photo_path = Path(tmp) / "photo4k.jpg"
        from PIL import Image

        Image.fromarray(load_photo(args.photo or PHOTOS["4K"], w, h)).save(photo_path, quality=92)
        times = []
        cmd = [sys.executable, "-m", "mos_studio.cli.main", "cut", str(photo_path), "-o", f"{tmp}/cli", "--overwrite",
               "--export", "mask", "--models-dir", args.weights]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.crops is not None:
            cmd += ["--crops" if args.crops else "--no-crops"]
        for _ in range(args.runs + 1):  # the first run may export to the ONNX cache: reported apart
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if proc.returncode != 0:
                print(f"mos cut failed: {proc.stderr[-2000:]}", file=sys.stderr)
                break
            times.append(round(dt, 2))
        if times:
            row = {"case": "mos cut 4K, whole process", "first_s": times[0], "runs_s": times[1:],
                   "median_s": statistics.median(times[1:] or times), "load_after": _load()}
            rows.append(row)
            print(json.dumps(row), flush=True)

    main_rows = [r for r in rows if "mode" in r and "case" not in r]
    if main_rows:
        keys = ["size", "pixels", "photo", "threads", "L_s", "H global_s", "H local_s", "wall_s", "runs", "crops",
                "gflops", "gflop_per_s", "peak_rss_mb", "ref_s", "ref_threads", "speedup", "ref_crops", "iou_vs_ref",
                "load_before"]
        print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in main_rows:
            print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
