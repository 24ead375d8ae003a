"""Pictures for the model documentation: training curves and a held-out gallery of boundary crops.

    python -m training.report curves runs/ship_L runs/ship_H --out docs/training_curves.png
    python -m training.report gallery data/split/val/cats data/split/val/humanseg ... --out docs/gallery.png

`curves` plots, per run folder written by `training.train`, the loss per step (raw and smoothed) and the
validation IoU / mBA / MQ per validation step. `gallery` picks held-out photos by a fixed rule (no cherry-picking:
per dataset in turn, the images whose ground-truth boundary is longest relative to the object's size), runs L
alone (bilinearly upsampled) and the L+H cascade with the shipped weights, and shows, for each photo, the whole
image and a full-resolution crop around the stretch of boundary where L and L+H disagree most:
image | L | L+H | truth, each mask shown as the cut-out on green.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from mos_studio.core.errors import MosError

GREEN = np.array([0, 177, 64], np.float32)


# ----------------------------------------------------------------------------------------------------- curves
def _read_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_curves(runs: list[Path], out: Path) -> Path:
    """One row per run: loss per step, validation metrics per validation step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = []
    for run in runs:
        losses = _read_csv(run / "losses.csv")
        if not losses:
            raise MosError(f"{run}: no losses.csv (not a training.train run folder)")
        data.append((run, losses, _read_csv(run / "val.csv")))
    fig, axes = plt.subplots(len(data), 2, figsize=(11, 3.4 * len(data)), squeeze=False)
    for (run, losses, val), (ax_l, ax_v) in zip(data, axes, strict=True):
        steps = np.array([r["step"] for r in losses])
        total = np.array([r["total"] for r in losses])
        ax_l.plot(steps, total, color="#bbbbbb", lw=0.6, label="loss (per step)")
        ax_l.plot(steps, _smooth(total, max(5, len(total) // 40)), color="#1f5fbf", lw=1.6, label="smoothed")
        ax_l.set_yscale("log")
        ax_l.set_xlabel("step")
        ax_l.set_title(f"{run.name}: training loss")
        ax_l.legend(loc="upper right", fontsize=8)
        ax_l.grid(alpha=0.3)
        if val:
            vs = [r["step"] for r in val]
            for key, colour in (("mq", "#c0392b"), ("mba", "#27ae60"), ("iou", "#8e44ad"), ("input_iou", "#999999")):
                if key in val[0]:
                    label = {"input_iou": "IoU of the perturbed input mask", "iou": "IoU", "mba": "mBA",
                             "mq": "MQ"}[key]
                    ax_v.plot(vs, [r[key] for r in val], marker="o", ms=3, color=colour, label=label,
                              ls="--" if key == "input_iou" else "-")
            ax_v.set_ylim(0, 1)
            ax_v.legend(loc="lower right", fontsize=8)
        ax_v.set_xlabel("step")
        ax_v.set_title(f"{run.name}: held-out validation")
        ax_v.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------------- gallery
def boundary_ratio(mask: np.ndarray) -> float:
    """Boundary pixels per object pixel: long, ragged outlines (hair, legs, tails) score high."""
    m = (mask > 0.5).astype(np.uint8)
    area = int(m.sum())
    if area == 0 or area == m.size:
        return 0.0
    edge = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return float(edge.sum()) / np.sqrt(area)


def pick_images(datasets: list[Path], n: int, min_side: int = 0) -> list[tuple[Path, Path]]:
    """Round-robin over the datasets, each time taking its next image by descending boundary ratio.

    `min_side`: only photos whose long side has at least that many pixels (the gallery of 2K+ photos)."""
    from PIL import Image

    from mos_studio.core.evaluation import dataset_pairs
    from mos_studio.core.io import load_mask

    def big_enough(path: Path) -> bool:
        with Image.open(path) as im:
            return max(im.size) >= min_side

    ranked = []
    for ds in datasets:
        pairs = [p for p in dataset_pairs(ds) if not min_side or big_enough(p.image)]
        scored = sorted(pairs, key=lambda p: (-boundary_ratio(load_mask(p.mask)), p.name))
        ranked.append([(p.image, p.mask) for p in scored])
    chosen: list[tuple[Path, Path]] = []
    k = 0
    while len(chosen) < n and any(k < len(r) for r in ranked):
        chosen += [r[k] for r in ranked if k < len(r)]
        k += 1
    return chosen[:n]


def _on_green(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha, 0, 1)[..., None]
    return (rgb.astype(np.float32) * a + GREEN * (1 - a)).astype(np.uint8)


def _crop_box(low: np.ndarray, high: np.ndarray, gt: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """The side×side window (clipped to the image) around the truth boundary where L and L+H differ most."""
    h, w = gt.shape
    side = min(side, h, w)
    edge = cv2.morphologyEx((gt > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
    score = np.abs((low > 0.5).astype(np.float32) - (high > 0.5).astype(np.float32)) + 0.05 * edge
    box = cv2.boxFilter(score, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    half = side // 2
    inner = box[half:h - (side - half) + 1, half:w - (side - half) + 1]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(x), int(y), int(x) + side, int(y) + side


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (8 + 9 * len(text), 20), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def make_gallery(datasets: list[Path], out: Path, models_dir: Path | None = None, n: int = 6, crop: int = 224,
                 device: str | None = "cpu", min_side: int = 0,
                 before_models_dir: Path | None = None, fine_detail: bool = False) -> tuple[Path, list[dict]]:
    """One row per picked photo; with `before_models_dir`, a column of that (older) pair's L+H beside the new one.
    With `fine_detail`, L+H runs H's full-resolution crops (the app's switch) beside the same pair without them, and
    the crop goes where the two differ most."""
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.io import load_image, load_mask
    from mos_studio.core.metrics import mba

    cascade = Cascade.from_pretrained(models_dir, device=device)
    before = Cascade.from_pretrained(before_models_dir, device=device) if before_models_dir else None
    if fine_detail:
        if before is None:  # the same pair as its cards run it
            before = Cascade.from_pretrained(models_dir, device=device)
        cascade.config.local_passes = True
    rows, info = [], []
    for image_path, mask_path in pick_images(datasets, n, min_side):
        img = load_image(image_path)
        gt = load_mask(mask_path, size=(img.width, img.height))
        low = cascade.run_low(img.rgb)[0]
        high = cascade(img).probability  # the cut as a user gets it (mask=low would take the guarded refine path)
        old = before(img).probability if before is not None else None
        x0, y0, x1, y1 = _crop_box(old if fine_detail else low, high, gt, crop)
        c = (slice(y0, y1), slice(x0, x1))
        rgb = img.rgb
        thumb_h = y1 - y0
        thumb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * thumb_h / rgb.shape[0])), thumb_h),
                           interpolation=cv2.INTER_AREA)
        s = thumb_h / rgb.shape[0]
        cv2.rectangle(thumb, (int(x0 * s), int(y0 * s)), (int(x1 * s) - 1, int(y1 * s) - 1), (255, 60, 60), 2)
        name = f"{image_path.parent.parent.name}/{image_path.stem}"[:40]
        tiles = [_label(thumb, f"{name} ({rgb.shape[1]}x{rgb.shape[0]})"),
                 _label(rgb[c], "image (1:1 crop)")]
        if old is not None:
            tiles.append(_label(_on_green(rgb[c], old[c]), f"{'default' if fine_detail else 'before'}: L+H  mBA "
                                                           f"{mba(old, gt):.3f}"))
        tiles += [_label(_on_green(rgb[c], low[c]), f"L  mBA {mba(low, gt):.3f}"),
                  _label(_on_green(rgb[c], high[c]), f"L+H{' fine detail' if fine_detail else ''}  mBA "
                                                     f"{mba(high, gt):.3f}"),
                  _label(_on_green(rgb[c], gt[c]), "truth")]
        row = np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], 1)
        rows.append(row)
        info.append({"image": str(image_path), "crop": [x0, y0, x1, y1], "mba_L": mba(low, gt),
                     "mba_LH": mba(high, gt)})
    if not rows:
        raise MosError("no held-out images found for the gallery")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.concatenate(rows, 0)[..., ::-1]):
        raise MosError(f"{out}: could not write the gallery")
    return out, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.report", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves", help="loss and validation metrics per step of one or more runs")
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--out", type=Path, default=Path("docs/training_curves.png"))
    g = sub.add_parser("gallery", help="image | L | L+H | truth crops of held-out photos")
    g.add_argument("datasets", nargs="+", type=Path, help="held-out folders with images/ and masks/")
    g.add_argument("--out", type=Path, default=Path("docs/gallery.png"))
    g.add_argument("--models-dir", type=Path, default=None)
    g.add_argument("--n", type=int, default=6)
    g.add_argument("--crop", type=int, default=224, help="side of the full-resolution crop")
    g.add_argument("--min-side", type=int, default=0, help="only photos with a long side of this many px or more")
    g.add_argument("--before-models-dir", type=Path, default=None,
                   help="also show the L+H of these (older) weights, for a before/after look")
    g.add_argument("--fine-detail", action="store_true",
                   help="L+H with H's full-resolution crops beside the pair without them (or the before pair)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "curves":
            print(plot_curves(args.runs, args.out))
        else:
            path, info = make_gallery(args.datasets, args.out, args.models_dir, args.n, args.crop,
                                      min_side=args.min_side, before_models_dir=args.before_models_dir,
                                      fine_detail=args.fine_detail)
            for row in info:
                print(f"{row['image']}: crop {row['crop']}, mBA L {row['mba_L']:.4f} -> L+H {row['mba_LH']:.4f}")
            print(path)
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
