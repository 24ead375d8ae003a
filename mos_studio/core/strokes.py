"""Colour strokes: a quick stroke over part of the photo, grown by colour to the photo's own edges.

The cut's worst faults are whole patches on the wrong side that the networks are sure of: the dark felt kept
between a plant's stems, a hole through a cat's shadowed back, a dark shoe dropped on dark pavement (docs/MODELS.md,
"cannot"). Neither H's re-refine (it agrees with itself there) nor the plain brush (it needs a steady hand along
every leaf) fixes them quickly. Here the user marks a few pixels of the wrong patch; what has their colours and
hangs together with the stroke, within `reach` of it, goes to the stroke's side, and the new edge follows the
photo: a graph cut (OpenCV's GrabCut, run once with colour mixtures made here and frozen: the stroke's side from the
stroke's colours, the other side from what looks nothing like them), the stroke sure and the cut beyond the reach as
it stands, on a copy of at most `work_side` px, then the edge snap at full resolution.

A stroke only ever adds (object strokes) or only ever removes (background strokes), and nothing beyond its reach
changes: a mistaken stroke costs one undo, never a distant part of the mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from .edges import snap_to_edges

Rect = tuple[int, int, int, int]

WORK_SIDE = 512  # the colour models and graph cut run on a copy of the stroke's surroundings about this long
CONTEXT = 2.0  # colours are learnt from this many reaches around the stroke (the cut there as it stands)
COMPONENTS = 5  # colour clusters per side for the first guess inside the reach
BRUSH_REACH = 4.0  # the app's colour brush may grow this many brush radii from its own pixels...
MIN_REACH = 16.0  # ...and at least this many pixels
MARGIN = 2.0  # the first guess gives the stroke's side only what its colours favour by e² to one


def _clusters(x: np.ndarray, k: int, rng: np.random.Generator) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """A diagonal Gaussian mixture of Lab colours from k-means: (weight, mean, variance) per cluster."""
    if len(x) > 6000:
        x = x[rng.choice(len(x), 6000, replace=False)]
    x = np.ascontiguousarray(x, np.float32)
    k = max(1, min(k, len(x) // 8))
    if k == 1:
        return [(1.0, x.mean(0), x.var(0) + 9.0)]
    _, lab, _ = cv2.kmeans(x, k, None, (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 20, 0.5), 2,
                           cv2.KMEANS_PP_CENTERS)
    lab = lab.ravel()
    out = []
    for j in range(k):
        xs = x[lab == j]
        if len(xs) >= 3:
            out.append((len(xs) / len(x), xs.mean(0), xs.var(0) + 9.0))  # +9: no cluster sharper than 3 Lab units
    return out


def _log_likelihood(model: list[tuple[float, np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    terms = [np.log(w) - 0.5 * (((x - mu) ** 2) / var + np.log(2 * np.pi * var)).sum(-1) for w, mu, var in model]
    return np.logaddexp.reduce(np.stack(terms), axis=0)


def _opencv_model(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 5-component full-covariance colour mixture of `x` (N×3, the graph cut's BGR) in the layout cv2.grabCut
    reads (weights, means, covariances), so the cut can run with these models frozen."""
    if len(x) > 6000:
        x = x[rng.choice(len(x), 6000, replace=False)]
    x = np.ascontiguousarray(x, np.float32)
    k = max(1, min(5, len(x) // 8))
    if k == 1:
        lab = np.zeros(len(x), np.int32)
    else:
        _, lab, _ = cv2.kmeans(x, k, None, (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 20, 0.5), 2,
                               cv2.KMEANS_PP_CENTERS)
        lab = lab.ravel()
    weights, means, covs = np.zeros(5), np.zeros((5, 3)), np.tile(np.eye(3).ravel(), (5, 1))
    for j in range(k):
        xs = x[lab == j].astype(np.float64)
        if len(xs) < 3:
            continue
        weights[j] = len(xs) / len(x)
        means[j] = xs.mean(0)
        covs[j] = (np.cov(xs, rowvar=False) + 9.0 * np.eye(3)).ravel()  # no cluster sharper than 3 levels
    weights /= weights.sum()
    return np.concatenate([weights, means.ravel(), covs.ravel()])[None, :]


def _within(stroke: np.ndarray, reach: float) -> np.ndarray:
    """The pixels within `reach` of the stroke (a distance transform: a dilation with a disc that wide costs the
    disc's area per pixel, seconds for a large brush on a 4K photo)."""
    return cv2.distanceTransform((~stroke).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= reach


def reach_for_brush(radius: float) -> float:
    """How far (photo pixels) a stroke of a brush with this radius may grow, as the app's colour brush lets it."""
    return max(MIN_REACH, BRUSH_REACH * radius)


def stroke_rect(stroke: np.ndarray, reach: float, origin: tuple[int, int] = (0, 0),
                shape: tuple[int, int] | None = None) -> Rect | None:
    """The rectangle a stroke may change: its bounding box grown by `reach`, clipped; None for an empty stroke.

    `stroke` may be a crop of the photo with its top-left pixel at `origin` (x, y) of a photo of `shape` (h, w):
    looking for a small stroke's pixels in a full-size map cost most of a short stroke's time at 8K."""
    ys, xs = np.nonzero(stroke)
    if ys.size == 0:
        return None
    h, w = stroke.shape if shape is None else shape
    ox, oy = origin
    r = int(np.ceil(reach))
    return max(0, ox + int(xs.min()) - r), max(0, oy + int(ys.min()) - r), min(w, ox + int(xs.max()) + 1 + r), \
        min(h, oy + int(ys.max()) + 1 + r)


def colour_stroke(rgb: np.ndarray, mask: np.ndarray, stroke: np.ndarray, add: bool, reach: float,
                  work_side: int = WORK_SIDE, snap: bool = True,
                  origin: tuple[int, int] | None = None) -> tuple[Rect, np.ndarray] | None:
    """The mask after a colour stroke: `(rect, values)`, the bool mask inside `rect`, or None for an empty stroke.

    `mask` (bool, 0/255 or a probability) is the cut before the stroke, `stroke` the pixels the user painted: a
    bool map the photo's size, or, with `origin` (x, y), a crop of it whose top-left pixel lies there (what the app
    hands over: only the stroke's bounding box, never a full-size map); `add` True for an object stroke, `reach` how
    far (photo pixels) the stroke may grow. The stroke's own pixels always take its side.
    """
    rgb, mask, stroke = np.asarray(rgb), np.asarray(mask), np.asarray(stroke)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"colour_stroke: expected an H×W×3 photo, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if mask.shape != (h, w):
        raise ValueError(f"colour_stroke: photo {(h, w)} and mask {mask.shape} differ in size")
    if origin is None:
        if stroke.shape != (h, w):
            raise ValueError(f"colour_stroke: photo {(h, w)} and stroke {stroke.shape} differ in size")
        origin = (0, 0)
    ox, oy = int(origin[0]), int(origin[1])
    if stroke.ndim != 2 or ox < 0 or oy < 0 or ox + stroke.shape[1] > w or oy + stroke.shape[0] > h:
        raise ValueError(f"colour_stroke: a stroke of shape {stroke.shape} at {(ox, oy)} does not fit in the "
                         f"{w}×{h} photo")
    if reach < 1:
        raise ValueError(f"colour_stroke: reach must be at least 1 px, not {reach}")
    stroke = stroke.astype(bool, copy=False)
    rect = stroke_rect(stroke, reach, (ox, oy), (h, w))
    if rect is None:
        return None
    cx0, cy0, cx1, cy1 = stroke_rect(stroke, CONTEXT * reach + 8, (ox, oy), (h, w)) or rect
    st_full = np.zeros((cy1 - cy0, cx1 - cx0), bool)  # the stroke placed in its surroundings
    sx0, sy0 = max(ox, cx0), max(oy, cy0)
    sx1, sy1 = min(ox + stroke.shape[1], cx1), min(oy + stroke.shape[0], cy1)
    st_full[sy0 - cy0:sy1 - cy0, sx0 - cx0:sx1 - cx0] = stroke[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox]
    obj = mask[cy0:cy1, cx0:cx1] > (127 if mask.dtype == np.uint8 else 0.5 if mask.dtype.kind == "f" else 0)
    ch, cw = obj.shape
    s = min(1.0, work_side / max(ch, cw))
    size = (max(1, round(cw * s)), max(1, round(ch * s)))
    small = cv2.resize(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1, :3]), size, interpolation=cv2.INTER_AREA)
    st = cv2.resize(st_full.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0  # a thin stroke survives
    mk = cv2.resize(obj.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    near = _within(st, max(1.0, reach * s))
    other = (~mk if add else mk) & ~st
    grown = st.copy()
    if st.any() and np.count_nonzero(other) >= 16:
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        rng = np.random.default_rng(0)
        cv2.setRNGSeed(0)  # k-means and GrabCut draw on OpenCV's per-thread generator: the same stroke, the same cut
        mine = _clusters(lab[st], COMPONENTS, rng)
        fit_mine = _log_likelihood(mine, lab)
        ratio = fit_mine - _log_likelihood(_clusters(lab[other], COMPONENTS, rng), lab)
        sure_t = cv2.GC_FGD if add else cv2.GC_BGD
        maybe_t, maybe_o = (cv2.GC_PR_FGD, cv2.GC_PR_BGD) if add else (cv2.GC_PR_BGD, cv2.GC_PR_FGD)
        labels = np.where(mk, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)  # outside the reach: the cut as it stands
        labels[near] = np.where(ratio[near] > MARGIN, maybe_t, maybe_o)  # inside: a first guess by colour alone
        labels[st] = sure_t
        # The graph cut runs with colour models made here and frozen: the stroke's side from the stroke alone, the
        # other side from its pixels that look nothing like the stroke. A wrong patch is often most of the other
        # side near the stroke (the felt between the stems), and GrabCut's own models, learnt from the labels,
        # would teach the other side the stroke's colours and keep the patch.
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        pix = bgr.reshape(-1, 3).astype(np.float32)
        unlike = (other & (fit_mine < np.percentile(fit_mine[st], 5) - 2.0)).ravel()  # a little less alike
        model_t = _opencv_model(pix[st.ravel()], rng)
        model_o = _opencv_model(pix[unlike if np.count_nonzero(unlike) >= 16 else other.ravel()], rng)
        fgd, bgd = (model_t, model_o) if add else (model_o, model_t)
        try:
            cv2.grabCut(bgr, labels, None, bgd, fgd, 1, cv2.GC_EVAL_FREEZE_MODEL)
        except cv2.error as err:  # e.g. a colour model it cannot use; the caller keeps the mask as it was
            raise ValueError(f"colour_stroke: the colour models could not be used ({err.msg.strip()})") from err
        taken = ((labels == sure_t) | (labels == maybe_t)) & near
        n, comp = cv2.connectedComponents(taken.astype(np.uint8), connectivity=8)
        keep = np.zeros(n, bool)
        keep[np.unique(comp[st & taken])] = True
        keep[0] = False
        grown = keep[comp] | st
    # Back to full resolution: the grown patch as a soft map over the cut, its edge snapped to the photo's.
    before = obj.astype(np.float32)
    patch = cv2.resize(grown.astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR)
    prob = np.maximum(before, patch) if add else np.minimum(before, 1.0 - patch)
    if snap and s < 1.0:
        prob = snap_to_edges(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1, :3]), prob, cut_only=True)
    new = prob > 0.5
    x0, y0, x1, y1 = rect
    allowed = _within(st_full, reach)
    new = (new | obj) & (allowed | obj) if add else (new & obj) | (obj & ~allowed)  # one direction, within reach
    new[st_full] = add
    ox, oy = x0 - cx0, y0 - cy0
    return rect, new[oy:oy + (y1 - y0), ox:ox + (x1 - x0)].copy()
