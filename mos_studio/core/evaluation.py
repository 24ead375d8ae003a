"""Dataset evaluation shared by `mos eval` and training's validation: pairing, scoring, tables, gallery.

A dataset is a folder with `images/` and `masks/` whose files share stems. Rows are written to the CSV as they are
scored (and flushed), so an interrupted run keeps everything already done.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import metrics
from .errors import MosError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
CSV_FIELDS = ["name", "width", "height", "mae", "s_measure", "iou", "mba", "mq", "intersection", "union"]
SPLIT_FIELDS = ["iou_without_thin", "iou_without_thick", "mba_without_thin", "mba_without_thick", "thin_px", "thick_px"]
TABLE_KEYS = [("MAE", "mae"), ("S-m", "s_measure"), ("IoU", "iou"), ("IoU pooled", "iou_pooled"), ("mBA", "mba"),
              ("MQ", "mq")]


@dataclass
class Pair:
    name: str
    image: Path | None
    mask: Path


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def pair_folders(images: Path | None, masks: Path, what: str = "images") -> list[Pair]:
    """Match files by stem; a clear error when folders are missing or files have no partner."""
    if not masks.is_dir():
        raise MosError(f"{masks}: folder does not exist")
    gts = _by_stem(masks)
    if images is None:
        return [Pair(stem, None, path) for stem, path in gts.items()]
    if not images.is_dir():
        raise MosError(f"{images}: folder does not exist")
    imgs = _by_stem(images)
    missing = sorted(set(imgs) - set(gts))
    if missing:
        shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
        raise MosError(f"{masks}: {len(missing)} of the {what} have no mask with the same name ({shown})")
    if not imgs:
        raise MosError(f"{images}: no {what} found ({', '.join(IMAGE_SUFFIXES)})")
    return [Pair(stem, imgs[stem], gts[stem]) for stem in imgs]


def dataset_pairs(root: Path) -> list[Pair]:
    if not root.is_dir():
        raise MosError(f"{root}: dataset folder does not exist")
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise MosError(f"{root}: a dataset needs the subfolders images/ and masks/ (same file names)")
    return pair_folders(root / "images", root / "masks")


def write_summary(out_dir: Path, summary: dict, title: str) -> str:
    """summary.json (fractions) and table.md (the paper's units, ×10⁻²); returns the Markdown."""
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    head = "| set | n | " + " | ".join(k for k, _ in TABLE_KEYS) + " |"
    sep = "|---|---|" + "---|" * len(TABLE_KEYS)

    def cell(key: str) -> str:
        v = summary.get(key, float("nan"))
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"

    row = f"| {title} | {summary['n']} | " + " | ".join(cell(k) for _, k in TABLE_KEYS) + " |"
    table = f"Units: ×10⁻² (MAE: lower is better; the others: higher is better)\n\n{head}\n{sep}\n{row}\n"
    if "mba_without_thin" in summary:
        wrong = summary["thin_px"] + summary["thick_px"]
        share = f"{100 * summary['thin_px'] / wrong:.0f} %" if wrong and not math.isnan(wrong) else "–"
        table += ("\nWhere IoU and mBA are lost (the score with that kind of error put right; thin: an edge a pixel or "
                  "two off, thick: a part taken or missed; docs/METRICS.md):\n\n"
                  "| set | IoU | without thin | without thick | mBA | without thin | without thick | thin share of "
                  "wrong pixels |\n|---|---|---|---|---|---|---|---|\n"
                  f"| {title} | {cell('iou')} | {cell('iou_without_thin')} | {cell('iou_without_thick')} | "
                  f"{cell('mba')} | {cell('mba_without_thin')} | {cell('mba_without_thick')} | {share} |\n")
    (out_dir / "table.md").write_text(table, encoding="utf-8")
    return table


def _tile(a: np.ndarray, height: int) -> np.ndarray:
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    w = max(1, round(a.shape[1] * height / a.shape[0]))
    return cv2.resize(a, (w, height), interpolation=cv2.INTER_AREA)


def error_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Correct = grey level of the truth, false positive = red, false negative = blue."""
    p, g = metrics.binarize(pred), metrics.binarize(gt)
    out = np.where(g[..., None], 90, 0).astype(np.uint8).repeat(3, axis=2)
    out[p & ~g] = (230, 40, 40)
    out[~p & g] = (40, 80, 230)
    return out


def gallery_row(name: str, rgb: np.ndarray, gt: np.ndarray, pred: np.ndarray, height: int = 256) -> np.ndarray:
    """One gallery row: image | truth | prediction | error, `height` px tall, with the name written on it."""
    g8 = (metrics.binarize(gt) * 255).astype(np.uint8)
    p8 = (metrics.binarize(pred) * 255).astype(np.uint8)
    tiles = [_tile(rgb, height), _tile(g8, height), _tile(p8, height), _tile(error_map(pred, gt), height)]
    row = np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1)
    cv2.putText(row, name[:40], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)
    return row


def _write_rows(path: Path, rows: list[np.ndarray]) -> None:
    if not rows:
        return
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def write_gallery(path: Path, items: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], height: int = 256) -> None:
    """Rows of image | truth | prediction | error for the given (name, rgb, gt, pred) items."""
    _write_rows(path, [gallery_row(name, rgb, gt, pred, height) for name, rgb, gt, pred in items])


Predictor = Callable[[Pair], tuple[np.ndarray, np.ndarray, np.ndarray]]  # -> (rgb, gt, prediction)


def evaluate(
    pairs: list[Pair],
    predict: Predictor,
    out_dir: Path,
    title: str,
    progress: Callable[[int, int, str], None] | None = None,
    gallery_size: int = 8,
    error_split: bool = False,
) -> tuple[dict, bool]:
    """Score every pair, streaming rows to per_image.csv; returns (summary, interrupted).

    `predict` runs once per pair: the gallery rows of the `gallery_size` lowest-MQ pairs so far are kept in memory
    (small tiles), so Ctrl-C stops at once, with the rows, summary and gallery of what was done. `error_split` adds
    `metrics.error_split`'s columns to the rows and its means to the summary and table.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    worst: list[tuple[float, str, np.ndarray]] = []  # (MQ, name, gallery row), lowest MQ first
    interrupted = False
    with open(out_dir / "per_image.csv", "w", newline="", encoding="utf-8") as f:
        fields = CSV_FIELDS + (SPLIT_FIELDS if error_split else [])
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        try:
            for i, pair in enumerate(pairs):
                rgb, gt, pred = predict(pair)
                row = metrics.score_pair(pred, gt)
                row.update(name=pair.name, width=gt.shape[1], height=gt.shape[0])
                if error_split:
                    split = metrics.error_split(pred, gt)
                    row.update({k: split[k] for k in SPLIT_FIELDS})
                writer.writerow({k: row[k] for k in fields})
                f.flush()
                rows.append(row)
                key = (row["mq"], pair.name)
                if gallery_size > 0 and (len(worst) < gallery_size or key < worst[-1][:2]):
                    worst.append((*key, gallery_row(pair.name, rgb, gt, pred)))
                    worst.sort(key=lambda t: t[:2])
                    del worst[gallery_size:]
                if progress:
                    progress(i + 1, len(pairs), pair.name)
        except KeyboardInterrupt:
            interrupted = True
    summary = metrics.aggregate(rows)
    if error_split:
        for k in SPLIT_FIELDS:
            summary[k] = float(np.mean([r[k] for r in rows])) if rows else float("nan")
    summary["interrupted"] = interrupted
    write_summary(out_dir, summary, title)
    _write_rows(out_dir / "worst.png", [r for _, _, r in worst])
    return summary, interrupted
