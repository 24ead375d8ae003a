"""CascadePSP-style coarse-mask generator for H training (design/ANCHORS.md §D.3).

Steps: contour cut (drop the 10 % run of consecutive contour points whose endpoints are closest, i.e. a protrusion
or neck) → polygon simplification (keep a random 10 % of the rest) → random local dilate/erode rounds until the IoU
drops below a target drawn from `iou_range` → blur-and-threshold. Unlike CascadePSP (which measures IoU against the
polygonised mask, so its real IoU undershoots), every IoU here is measured against the TRUE mask, and any step that
would leave the range is backed off, so the result always lies in `iou_range`.
"""

from __future__ import annotations

import cv2
import numpy as np


def iou_binary(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks count as a perfect match."""
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return np.count_nonzero(a & b) / union


def _kernel(rng: np.random.Generator) -> np.ndarray:
    size = int(rng.integers(3, 10))
    shape = int(rng.integers(0, 4))
    if shape == 0:
        return cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    if shape == 1:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    if shape == 2:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, max(1, size // 2)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(1, size // 2), size))


def polygonise(
    truth: np.ndarray, rng: np.random.Generator, cut_fraction: float = 0.1, keep_fraction: float = 0.1
) -> np.ndarray:
    """Contour cut + random vertex subsampling of every contour, filled back into a uint8 0/1 mask."""
    contours, _ = cv2.findContours(truth.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c in contours:
        pts = c[:, 0, :]
        n = len(pts)
        if n < 10:
            continue
        run = max(1, int(round(n * cut_fraction)))
        if cut_fraction > 0 and run < n - 3:
            ends = np.roll(pts, -run, axis=0)
            d = ((pts - ends) ** 2).sum(1)
            candidates = np.argsort(d, kind="stable")[: max(1, n // 10)]
            start = int(rng.choice(candidates))
            keep_idx = (start + run + np.arange(n - run)) % n
            pts = pts[keep_idx]
        m = len(pts)
        k = max(3, int(round(m * keep_fraction)))
        if k >= m:
            chosen = pts
        else:
            chosen = pts[np.sort(rng.choice(m, size=k, replace=False))]
        polys.append(chosen.reshape(-1, 1, 2).astype(np.int32))
    out = np.zeros(truth.shape, np.uint8)
    if not polys:
        return truth.astype(np.uint8)
    cv2.fillPoly(out, polys, 1)
    return out


def _morph_round(mask: np.ndarray, rng: np.random.Generator) -> None:
    """Four random local dilate/erode operations on random rectangles, in place."""
    h, w = mask.shape
    for _ in range(4):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
        if rng.random() < 0.25:
            mask[(y0 + y1) // 2, (x0 + x1) // 2] = int(rng.integers(0, 2))
        roi = mask[y0:y1, x0:x1]
        if rng.random() < 0.5:
            roi[...] = cv2.dilate(roi, _kernel(rng))
        else:
            roi[...] = cv2.erode(roi, _kernel(rng))


def perturb_mask(
    gt: np.ndarray,
    rng: np.random.Generator,
    iou_range: tuple[float, float] = (0.8, 1.0),
    max_rounds: int = 250,
    attempts: int = 4,
) -> np.ndarray:
    """A float32 0/1 mask whose IoU with `gt > 0.5` lies in `iou_range` (always; the truth itself is the fallback)."""
    lo, hi = iou_range
    truth = np.asarray(gt) > 0.5
    if not truth.any():
        return np.zeros(truth.shape, np.float32)
    target = float(rng.uniform(lo, hi))
    cut, keep = 0.1, 0.1
    for attempt in range(attempts + 1):
        if attempt < attempts:
            mask = polygonise(truth, rng, cut, keep)
        else:
            mask = truth.astype(np.uint8)  # last resort: morphology only, starting from the truth
        if iou_binary(mask.astype(bool), truth) < lo:
            cut, keep = cut * 0.5, min(1.0, keep * 2.0)  # back off: gentler cut, denser polygon
            continue
        # random morphology, undoing the last round if it overshoots below the range
        for _ in range(max_rounds):
            cur = iou_binary(mask.astype(bool), truth)
            if cur < target:
                break
            prev = mask.copy()
            _morph_round(mask, rng)
            if iou_binary(mask.astype(bool), truth) < lo:
                mask = prev
                break
        # blur-and-threshold softens the polygon's straight edges; kept only if it stays in range
        k = int(rng.integers(1, 4)) * 2 + 1
        blurred = (cv2.GaussianBlur(mask.astype(np.float32), (k, k), 0) > rng.uniform(0.4, 0.6)).astype(np.uint8)
        if lo <= iou_binary(blurred.astype(bool), truth) <= hi:
            mask = blurred
        if lo <= iou_binary(mask.astype(bool), truth) <= hi:
            return mask.astype(np.float32)
        cut, keep = cut * 0.5, min(1.0, keep * 2.0)
    return truth.astype(np.float32)
