"""Segmentation metrics of the paper, vectorised with numpy/OpenCV: IoU, MAE, S-measure, mBA, MQ and C_IPQ.

Conventions (docs/METRICS.md has the formulas and the edge cases):
* probability maps are float in [0, 1]; 8-bit masks are binarised with > 128, float maps with > 0.5;
* boundary bands follow CascadePSP's mBA code exactly (radii, elliptical kernel, morphological gradient of the GT);
* sizes must match: a mismatch is a `ValueError` naming both sizes, never a silent resize.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

N_BANDS = 5


# ---------------------------------------------------------------------------------------------------------- inputs
def as_probability(a: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from bool, uint8 (0–255), uint16 or float input."""
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., 0]
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def binarize(a: np.ndarray) -> np.ndarray:
    """Bool mask: uint8 > 128 (CascadePSP's evaluator), float > 0.5, bool as is."""
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., 0]
    if a.dtype == bool:
        return a
    if a.dtype == np.uint8:
        return a > 128
    if a.dtype == np.uint16:
        return a > 32896
    return a > 0.5


def _check_same(pred: np.ndarray, gt: np.ndarray) -> None:
    ps, gs = np.shape(pred)[:2], np.shape(gt)[:2]
    if ps != gs:
        raise ValueError(f"prediction is {ps[1]}×{ps[0]} but the ground truth is {gs[1]}×{gs[0]}")


# ------------------------------------------------------------------------------------------------------ IoU / MAE
def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    _check_same(pred, gt)
    p, g = binarize(pred), binarize(gt)
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of the binarised masks; 1.0 when both are empty."""
    inter, union = intersection_union(pred, gt)
    return 1.0 if union == 0 else inter / union


def mae(prob: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error of the probability map against the (soft) ground truth."""
    _check_same(prob, gt)
    return float(np.abs(as_probability(prob) - as_probability(gt)).mean(dtype=np.float64))


# ------------------------------------------------------------------------------------------------- mBA and MQ
def boundary_radii(width: int, height: int, n: int = N_BANDS) -> list[int]:
    """CascadePSP's radii: r_i = 1 + int((R − 1)/n · i), R = (w + h)/300, i = 0 … n−1."""
    big_r = (width + height) / 300.0
    return [1 + int((big_r - 1) / n * i) for i in range(n)]


def boundary_bands(gt: np.ndarray, n: int = N_BANDS) -> list[np.ndarray]:
    """For each radius, dilation minus erosion of the GT with a disk of diameter 2r+1 (bool maps)."""
    g = binarize(gt).astype(np.uint8)
    h, w = g.shape
    bands = []
    for r in boundary_radii(w, h, n):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        bands.append(cv2.morphologyEx(g, cv2.MORPH_GRADIENT, kernel) > 0)
    return bands


def _band_scores(pred: np.ndarray, gt: np.ndarray, bands: list[np.ndarray] | None = None) -> tuple[float, float]:
    """(mBA, accuracy outside the widest band), sharing one set of bands (`gt`'s, given when already made)."""
    _check_same(pred, gt)
    p, g = binarize(pred), binarize(gt)
    correct = p == g
    if bands is None:
        bands = boundary_bands(g)
    if not bands[-1].any():
        # No boundary (empty or full GT): bands are empty, so both terms are the plain pixel accuracy.
        acc = float(correct.mean())
        return acc, acc
    accs = [float(correct[b].mean()) for b in bands if b.any()]
    outside = ~bands[-1]
    body = float(correct[outside].mean()) if outside.any() else float(np.mean(accs))
    return float(np.mean(accs)), body


def mba(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean boundary accuracy over the 5 bands (paper §4.1, CascadePSP)."""
    return _band_scores(pred, gt)[0]


def mq(pred: np.ndarray, gt: np.ndarray) -> float:
    """Meticulosity Quality: ½ · accuracy outside the widest band + ½ · mean accuracy inside the bands."""
    m, body = _band_scores(pred, gt)
    return 0.5 * body + 0.5 * m


def error_split(pred: np.ndarray, gt: np.ndarray, width: int = 2) -> dict[str, float]:
    """Where a mask's IoU and mBA are lost: in thin errors (at most about `width` px across: an edge placed a pixel
    or two off) or in thick ones (a part taken or missed). A wrong pixel is thick when it lies in a patch of wrong
    pixels that an opening with a disc 2·width + 1 across keeps, or within that disc of one; the rest are thin (so
    a missed structure thinner than the disc, a 1 px antenna, counts as thin too).
    Returns the counts and the IoU and mBA the mask would score with either kind put right, so the two losses can
    be told apart: a better edge step can only win back the thin share, a better L or H the thick one."""
    _check_same(pred, gt)
    p, g = binarize(pred), binarize(gt)
    wrong = (p != g).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    thick = (cv2.dilate(cv2.morphologyEx(wrong, cv2.MORPH_OPEN, disc), disc) > 0) & (wrong > 0)
    thin = (wrong > 0) & ~thick
    without_thin = np.where(thin, g, p)
    without_thick = np.where(thick, g, p)
    bands = boundary_bands(g)  # the truth's bands, made once for the three masks scored against them

    def band_mba(x: np.ndarray) -> float:
        return _band_scores(x, g, bands)[0]

    return {"iou": iou(p, g), "mba": band_mba(p),
            "iou_without_thin": iou(without_thin, g), "mba_without_thin": band_mba(without_thin),
            "iou_without_thick": iou(without_thick, g), "mba_without_thick": band_mba(without_thick),
            "thin_px": float(np.count_nonzero(thin)), "thick_px": float(np.count_nonzero(thick))}


def stage_split(low: np.ndarray, full: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Who lost L+H's IoU: L (both stages wrong on a pixel, so H did not mend L's error) or H (H overruled a right L).
    Each count is a share of the union of L+H's mask and the truth, so the four wrong kinds add up to 1 − IoU.
    `iou_if_h_right` is what L+H would score with H's wrong overrulings undone and its right ones kept: the most a
    rule deciding where H may overrule L could reach, which tells whether to work on that rule or on L."""
    _check_same(full, gt)
    _check_same(low, gt)
    lo, hi, g = binarize(low), binarize(full), binarize(gt)
    union = max(1, int(np.count_nonzero(hi | g)))

    def share(m: np.ndarray) -> float:
        return np.count_nonzero(m) / union

    undone = np.where((lo != hi) & (lo == g), lo, hi)
    return {"iou": iou(hi, g), "iou_low": iou(lo, g), "iou_if_h_right": iou(undone, g),
            "both_missed": share(~lo & ~hi & g), "both_kept": share(lo & hi & ~g),
            "h_dropped": share(lo & ~hi & g), "h_added": share(~lo & hi & ~g),
            "h_found": share(~lo & hi & g), "h_cleared": share(lo & ~hi & ~g)}


# ------------------------------------------------------------------------------------------------------ S-measure
def _object_score(x: np.ndarray) -> float:
    if x.size == 0:
        return 0.0
    mu = float(x.mean())
    sigma = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return 2.0 * mu / (mu * mu + 1.0 + sigma + 1e-20)


def _ssim(p: np.ndarray, g: np.ndarray) -> float:
    n = p.size
    if n == 0:
        return 0.0
    x, y = float(p.mean()), float(g.mean())
    if n > 1:
        dx, dy = p - x, g - y
        sx, sy, sxy = (float(v.sum()) / (n - 1) for v in (dx * dx, dy * dy, dx * dy))
    else:
        sx = sy = sxy = 0.0
    alpha = 4.0 * x * y * sxy
    beta = (x * x + y * y) * (sx + sy)
    if alpha != 0:
        return alpha / (beta + 1e-20)
    return 1.0 if beta == 0 else 0.0


def s_measure(prob: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Structure measure of Fan et al. (ICCV 2017): α·S_object + (1 − α)·S_region on the probability map."""
    _check_same(prob, gt)
    p = as_probability(prob).astype(np.float64)
    g = binarize(gt)
    y = float(g.mean())
    if y == 0.0:
        return float(1.0 - p.mean())
    if y == 1.0:
        return float(p.mean())
    gf = g.astype(np.float64)
    # Object-aware term.
    o_fg = _object_score(p[g])
    o_bg = _object_score(1.0 - p[~g])
    s_obj = y * o_fg + (1.0 - y) * o_bg
    # Region-aware term: split at the GT centroid into four blocks weighted by area.
    h, w = g.shape
    rows, cols = np.nonzero(g)
    cx = int(round(cols.mean())) + 1
    cy = int(round(rows.mean())) + 1
    cx, cy = min(max(cx, 1), max(1, w - 1)), min(max(cy, 1), max(1, h - 1))
    total = float(h * w)
    s_reg = 0.0
    for ys, xs in ((slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, w)),
                   (slice(cy, h), slice(0, cx)), (slice(cy, h), slice(cx, w))):
        pb, gb = p[ys, xs], gf[ys, xs]
        s_reg += pb.size / total * _ssim(pb, gb)
    return float(max(0.0, alpha * s_obj + (1.0 - alpha) * s_reg))


# ------------------------------------------------------------------------------------------------------- C_IPQ
def c_ipq(mask: np.ndarray, square: int = 512) -> float:
    """Isoperimetric quotient 4πA/P² of the foreground, cropped to its bounding box and resized to a square.

    P is the total length of all contours (outer boundaries and holes, OpenCV's pixel-chain length). NaN for an
    empty mask. 1 for a disc (up to the pixel grid), far lower for combs, hair and lattices.
    """
    m = binarize(mask)
    if not m.any():
        return float("nan")
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    crop = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8) * 255
    sq = cv2.resize(crop, (square, square), interpolation=cv2.INTER_LINEAR) > 127
    # Pad so contours touching the crop edge are closed around the object.
    sq = np.pad(sq, 1).astype(np.uint8)
    area = float(np.count_nonzero(sq))
    contours, _ = cv2.findContours(sq, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = float(sum(cv2.arcLength(c, True) for c in contours))
    if perimeter == 0.0:
        return float("nan")
    return 4.0 * math.pi * area / (perimeter * perimeter)


def score_pair(prob: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """All per-image metrics for one prediction (probability or mask) and its ground truth."""
    _check_same(prob, gt)
    inter, union = intersection_union(prob, gt)
    m, body = _band_scores(prob, gt)
    return {
        "mae": mae(prob, gt),
        "s_measure": s_measure(prob, gt),
        "iou": 1.0 if union == 0 else inter / union,
        "mba": m,
        "mq": 0.5 * body + 0.5 * m,
        "intersection": float(inter),
        "union": float(union),
    }


def aggregate(rows: list[dict[str, float]]) -> dict[str, float]:
    """Dataset means (fractions) plus IoU pooled over the dataset (Σ intersection / Σ union, as CascadePSP)."""
    n = len(rows)
    out: dict[str, float] = {"n": n}
    for key in ("mae", "s_measure", "iou", "mba", "mq"):
        out[key] = float(np.mean([r[key] for r in rows])) if n else float("nan")
    union = sum(r["union"] for r in rows)
    out["iou_pooled"] = (sum(r["intersection"] for r in rows) / union) if union else float("nan")
    return out
