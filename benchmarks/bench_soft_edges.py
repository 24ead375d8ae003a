"""Soft edges vs a hard mask vs a rembg-like erosion trimap, on composites whose alpha is known; plus the extra time.

    .venv/bin/python benchmarks/bench_soft_edges.py                 # quality at 2K on 3 composites + time at 4K, 8K
    .venv/bin/python benchmarks/bench_soft_edges.py --quick         # 1K, no 8K (a smoke run)
    .venv/bin/python benchmarks/bench_soft_edges.py --cascade       # also once with the shipped L/H weights
    .venv/bin/python benchmarks/bench_soft_edges.py --pictures docs # also write the pictures docs/SOFT_EDGES.md shows

Composites: alpha drawn procedurally (hair strands, dense fur, a semi-transparent + a motion-blurred object),
foreground colours from scikit-image's `chelsea` photo (a cat's fur), backgrounds from its `coffee`, `rocket`
and `astronaut` photos (real photos, upscaled to the test size). What stands in for the network (unless --cascade):
H's view of the object is the true alpha shrunk to H's global-pass size (long side 1024), blurred (σ = 1.5 px
there) — a refiner that is right on the whole but soft and unsure at fine structure. Its doubt 1 − |2p − 1| at
that resolution is fed to the matting as H's uncertainty, and p > 0.5 (upsampled) is the final hard mask.

Metrics (lower is better), over the whole image: SAD = Σ|α − α*| / 1000; Grad = Σ(|∇α| − |∇α*|)² / 1000 with
Gaussian-derivative gradients (σ = 1.4, as the alpha-matting benchmark); Comp = mean |RGB error| (0-255) of the
cut-out composited on pure green vs the true composite, over pixels whose true alpha is in (0, 1) or where the
methods disagree (the fringe).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mos_studio.core.matting import MattingConfig, erosion_trimap, soft_matte, stage_uncertainty  # noqa: E402

GREEN = np.array([0, 255, 0], np.float32)


# ------------------------------------------------------------------------------------------------ known alphas
def _supersampled(h: int, w: int, draw, ss: int | None = None) -> np.ndarray:  # noqa: ANN001
    """Draw at ss× resolution and average down, so thin strands get fractional coverage like real hair."""
    ss = ss or (4 if max(h, w) <= 4096 else 2)  # 8K at 4× would be a 530 MB canvas
    big = np.zeros((h * ss, w * ss), np.uint8)
    draw(big, ss)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _strand(rng: np.random.Generator, x: float, y: float, angle: float, length: float, bend: float) -> np.ndarray:
    n = max(4, int(length / 4))
    a = angle + np.cumsum(rng.normal(0, bend, n))
    step = length / n
    pts = np.stack([x + np.cumsum(np.cos(a) * step), y + np.cumsum(np.sin(a) * step)], 1)
    return np.vstack([[x, y], pts])


def alpha_strands(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A head-like body with long, thin, partly transparent hair strands flying off it."""
    rng = np.random.default_rng(seed)
    cx, cy, rx, ry = w * 0.5, h * 0.62, w * 0.2, h * 0.28
    unit = max(h, w) / 2048

    def draw(big: np.ndarray, ss: int) -> None:
        cv2.ellipse(big, (int(cx * ss), int(cy * ss)), (int(rx * ss), int(ry * ss)), 0, 0, 360, 255, -1,
                    cv2.LINE_AA)
        for _ in range(int(900 * unit)):
            t = rng.uniform(np.pi * 1.05, np.pi * 1.95)
            x, y = cx + rx * np.cos(t) * 0.97, cy + ry * np.sin(t) * 0.97
            pts = _strand(rng, x, y, t + rng.normal(0, 0.25), rng.uniform(60, 320) * unit, 0.06)
            value = int(rng.uniform(140, 255))
            thick = max(1, int(round(rng.uniform(0.6, 2.2) * unit * ss)))
            cv2.polylines(big, [np.round(pts * ss).astype(np.int32)], False, value, thick, cv2.LINE_AA)

    return _supersampled(h, w, draw)


def alpha_fur(h: int, w: int, seed: int = 1) -> np.ndarray:
    """A furry body: thousands of short, dense, slightly curved hairs all around an ellipse."""
    rng = np.random.default_rng(seed)
    cx, cy, rx, ry = w * 0.5, h * 0.5, w * 0.3, h * 0.3
    unit = max(h, w) / 2048

    def draw(big: np.ndarray, ss: int) -> None:
        cv2.ellipse(big, (int(cx * ss), int(cy * ss)), (int(rx * ss), int(ry * ss)), 0, 0, 360, 255, -1,
                    cv2.LINE_AA)
        for _ in range(int(6000 * unit)):
            t = rng.uniform(0, 2 * np.pi)
            x, y = cx + rx * np.cos(t) * 0.95, cy + ry * np.sin(t) * 0.95
            pts = _strand(rng, x, y, t + rng.normal(0, 0.35), rng.uniform(15, 70) * unit, 0.08)
            thick = max(1, int(round(rng.uniform(0.5, 1.6) * unit * ss)))
            cv2.polylines(big, [np.round(pts * ss).astype(np.int32)], False, int(rng.uniform(120, 255)), thick,
                          cv2.LINE_AA)

    return _supersampled(h, w, draw)


def alpha_glass_and_blur(h: int, w: int, seed: int = 2) -> np.ndarray:
    """A semi-transparent glass (35 % alpha, opaque rim) and a motion-blurred ball beside it."""
    unit = max(h, w) / 2048

    def draw(big: np.ndarray, ss: int) -> None:
        c = (int(w * 0.32 * ss), int(h * 0.5 * ss))
        axes = (int(w * 0.16 * ss), int(h * 0.32 * ss))
        cv2.ellipse(big, c, axes, 0, 0, 360, 90, -1, cv2.LINE_AA)
        cv2.ellipse(big, c, axes, 0, 0, 360, 255, int(10 * unit * ss), cv2.LINE_AA)

    a = _supersampled(h, w, draw)
    ball = np.zeros((h, w), np.float32)
    cv2.circle(ball, (int(w * 0.72), int(h * 0.5)), int(h * 0.18), 1.0, -1, cv2.LINE_AA)
    length = int(90 * unit) | 1
    kernel = np.zeros((1, length), np.float32)
    kernel[0] = 1.0 / length
    ball = cv2.filter2D(ball, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return np.maximum(a, ball)


def _photo(name: str, w: int, h: int) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)  # cover, then centre-crop
    big = cv2.resize(img, (int(np.ceil(iw * s)), int(np.ceil(ih * s))), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


def composite_case(kind: str, w: int, h: int) -> dict:
    alpha = {"strands": alpha_strands, "fur": alpha_fur, "glass+blur": alpha_glass_and_blur}[kind](h, w)
    bg_name = {"strands": "coffee", "fur": "rocket", "glass+blur": "astronaut"}[kind]
    fg = _photo("chelsea", w, h).astype(np.float32)
    bg = _photo(bg_name, w, h).astype(np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return {"kind": kind, "bg": bg_name, "alpha": alpha, "fg": fg,
            "image": np.clip(image + 0.5, 0, 255).astype(np.uint8)}


def simulated_h(alpha: np.ndarray, global_size: int = 1024, sigma: float = 1.5):  # noqa: ANN201
    """(hard mask, H-like stage map list): what a good-but-soft refiner at global resolution would say."""
    h, w = alpha.shape
    s = min(1.0, global_size / max(h, w))
    small = cv2.resize(alpha, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    p = cv2.GaussianBlur(small, (0, 0), sigma)
    unc = 1.0 - np.abs(2.0 * p - 1.0)
    mask = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    return mask, [SimpleNamespace(name="S2_3", uncertainty=unc.astype(np.float32))]


# ---------------------------------------------------------------------------------------------------- metrics
def sad(a: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - gt).sum() / 1000.0)


def grad_error(a: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> float:
    def mag(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        gx = ndimage.gaussian_filter(x, sigma, order=(0, 1))
        return np.hypot(gx, ndimage.gaussian_filter(x, sigma, order=(1, 0)))

    return float(((mag(a) - mag(gt)) ** 2).sum() / 1000.0)


def comp_error(alpha: np.ndarray, colours: np.ndarray, case: dict, where: np.ndarray) -> float:
    gt = case["alpha"][..., None] * case["fg"] + (1 - case["alpha"][..., None]) * GREEN
    out = alpha[..., None] * colours.astype(np.float32) + (1 - alpha[..., None]) * GREEN
    return float(np.abs(out - gt)[where].mean())


# ---------------------------------------------------------------------------------------------------- running
def evaluate(case: dict, mask: np.ndarray, unc: np.ndarray | None, cfg: MattingConfig) -> list[dict]:
    img, gt = case["image"], case["alpha"]
    rows = []
    hard = mask.astype(np.float32)
    t = time.perf_counter()
    soft = soft_matte(img, mask, unc, config=cfg)
    t_soft = time.perf_counter() - t
    tri = erosion_trimap(mask, 10)
    t = time.perf_counter()
    ero = soft_matte(img, mask, trimap=tri, config=cfg)
    t_ero = time.perf_counter() - t
    fringe = ((gt > 0.0) & (gt < 1.0)) | soft.band | (tri == 128)
    for name, a, colours, sec, band in (
        ("hard mask", hard, img, 0.0, 0),
        ("erosion trimap 10 px (rembg-like)", ero.alpha, ero.foreground, t_ero, int(ero.band.sum())),
        ("soft (H's doubt)", soft.alpha, soft.foreground, t_soft, int(soft.band.sum())),
    ):
        rows.append({"case": case["kind"], "method": name, "SAD": sad(a, gt), "Grad": grad_error(a, gt),
                     "Comp": comp_error(a, colours, case, fringe), "band": band, "s": sec})
    case["soft"], case["ero"], case["mask"] = soft, ero, mask
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"| {'composite':<11}| {'method':<35}| {'SAD':>8} | {'Grad':>8} | {'Comp':>6} | {'band px':>9} | {'s':>5} |")
    print(f"|{'-' * 12}|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 11}|{'-' * 7}|")
    for r in rows:
        print(f"| {r['case']:<11}| {r['method']:<35}| {r['SAD']:8.2f} | {r['Grad']:8.2f} | {r['Comp']:6.2f} | "
              f"{r['band']:9d} | {r['s']:5.2f} |")


def timing(w: int, h: int, cfg: MattingConfig, kind: str = "strands") -> dict:
    case = composite_case(kind, w, h)
    mask, stages = simulated_h(case["alpha"])
    unc = stage_uncertainty(stages, (w, h))
    t = time.perf_counter()
    m = soft_matte(case["image"], mask, unc, config=cfg)
    total = time.perf_counter() - t
    return {"size": f"{w}×{h}", "total": total, **{k: v for k, v in m.timings.items() if k != "total"},
            "tiles": m.tiles, "band": int(m.band.sum()), "sad_hard": sad(mask.astype(np.float32), case["alpha"]),
            "sad_soft": sad(m.alpha, case["alpha"])}


def run_cascade(case: dict, cfg: MattingConfig) -> list[dict]:
    from mos_studio.core import Cascade
    from mos_studio.core.matting import matte_result

    cascade = Cascade.from_pretrained()
    t = time.perf_counter()
    res = cascade(case["image"])
    print(f"cascade ({cascade.device_name}) on {case['kind']} {case['image'].shape[1]}×{case['image'].shape[0]}: "
          f"{time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    soft = matte_result(case["image"], res, config=cfg)
    t_soft = time.perf_counter() - t
    tri = erosion_trimap(res.mask, 10)
    ero = soft_matte(case["image"], res.mask, trimap=tri, config=cfg)
    gt = case["alpha"]
    fringe = ((gt > 0.0) & (gt < 1.0)) | soft.band
    rows = []
    for name, a, colours, sec, band in (
        ("hard mask (cascade p > 0.5)", res.mask.astype(np.float32), case["image"], 0.0, 0),
        ("cascade probability as alpha", res.probability, case["image"], 0.0, 0),
        ("erosion trimap 10 px (rembg-like)", ero.alpha, ero.foreground, 0.0, int(ero.band.sum())),
        ("soft (H's doubt)", soft.alpha, soft.foreground, t_soft, int(soft.band.sum())),
    ):
        rows.append({"case": case["kind"], "method": name, "SAD": sad(a, gt), "Grad": grad_error(a, gt),
                     "Comp": comp_error(a, colours, case, fringe), "band": band, "s": sec})
    return rows


def save_pictures(cases: list[dict], folder: Path) -> None:
    """One strip per composite crop: image | hard cut-out | erosion | soft, all on green; plus the trimap band."""
    from PIL import Image

    strips = []
    for case in cases:
        h, w = case["alpha"].shape
        # the crop with the most true partial alpha inside the soft band, 320 px square
        part = ((case["alpha"] > 0.02) & (case["alpha"] < 0.98) & case["soft"].band).astype(np.float32)
        score = cv2.boxFilter(part, -1, (320, 320), normalize=False)
        y, x = np.unravel_index(np.argmax(score[160:h - 160, 160:w - 160]), (h - 320, w - 320))
        sl = (slice(y, y + 320), slice(x, x + 320))

        def on_green(a: np.ndarray, col: np.ndarray, sl: tuple = sl) -> np.ndarray:
            a = a[sl][..., None]
            return np.clip(a * col[sl].astype(np.float32) + (1 - a) * GREEN + 0.5, 0, 255).astype(np.uint8)

        band = case["image"][sl].copy()
        b = case["soft"].band[sl]
        band[b] = (0.5 * band[b] + 0.5 * np.array([255, 0, 255])).astype(np.uint8)
        truth = on_green(case["alpha"], case["fg"])
        tiles = [case["image"][sl], band, on_green(case["mask"].astype(np.float32), case["image"]),
                 on_green(case["ero"].alpha, case["ero"].foreground), on_green(case["soft"].alpha,
                                                                             case["soft"].foreground), truth]
        gap = np.full((320, 6, 3), 255, np.uint8)
        row = [tiles[0]]
        for t in tiles[1:]:
            row += [gap, t]
        strips.append(np.hstack(row))
        strips.append(np.full((6, strips[-1].shape[1], 3), 255, np.uint8))
    out = folder / "soft_edges_compare.jpg"
    Image.fromarray(np.vstack(strips[:-1])).save(out, quality=90, optimize=True)
    print(f"wrote {out} (columns: image | soft band in magenta | hard | erosion trimap | soft | truth; on green)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1K quality run, 4K timing only")
    ap.add_argument("--size", default="2048x1536", help="quality composites W×H (default 2048x1536)")
    ap.add_argument("--cascade", action="store_true", help="also run the shipped cascade on the strands composite")
    ap.add_argument("--pictures", type=Path, default=None, help="folder for the comparison picture")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true", help="skip the quality tables")
    args = ap.parse_args(argv)
    cfg = MattingConfig()
    w, h = (1024, 768) if args.quick else tuple(int(v) for v in args.size.lower().split("x"))

    t = time.perf_counter()
    import pymatting  # noqa: F401 - numba kernels load (or compile, the first time) here

    print(f"pymatting import (numba kernels from cache): {time.perf_counter() - t:.2f} s")
    rows: list[dict] = []
    cases = []
    for kind in () if args.timing_only else ("strands", "fur", "glass+blur"):
        case = composite_case(kind, w, h)
        mask, stages = simulated_h(case["alpha"])
        rows += evaluate(case, mask, stage_uncertainty(stages, (w, h)), cfg)
        cases.append(case)
    if rows:
        print(f"\nQuality at {w}×{h} (simulated H; lower is better):")
        print_rows(rows)
    if args.pictures and cases:
        save_pictures(cases, args.pictures)
    if args.cascade and cases:
        print("\nWith the shipped cascade (its own mask and H maps) on the strands composite:")
        print_rows(run_cascade(cases[0], cfg))
    if not args.no_timing:
        print("\nExtra time for soft edges (strands composite, simulated H; trimap + alpha + foreground):")
        sizes = [(3840, 2160)] if args.quick else [(3840, 2160), (7680, 4320)]
        fast = MattingConfig(work_band_px=150_000)
        for sw, sh in sizes:
            for name, c in (("default", cfg), ("work_band_px=150k", fast)):
                r = timing(sw, sh, c)
                print(f"  {r['size']} {name}: {r['total']:.2f} s (trimap {r['trimap']:.2f}, alpha {r['alpha']:.2f}, "
                      f"foreground {r['foreground']:.2f}; work scale {r['work_scale']:.2f}, {r['tiles']} tiles, "
                      f"{r['band']} band px; SAD hard {r['sad_hard']:.1f} → soft {r['sad_soft']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
