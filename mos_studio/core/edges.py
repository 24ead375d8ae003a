"""Edge snap: a colour guided filter (He, Sun & Tang) of H's probability, with the photo as the guide.

H decides where the object is; its edge still wanders a pixel or two off the photo's own edge (H's 1:1 and enlarged
passes are blended, and large photos see H at 1024 px). The guided filter fits, in every small window, the
probability as a linear function of the photo's colour, so an edge that lies near a colour edge moves onto it, and
flat regions keep their value. Measured against the teacher on 60 random held-out photos: mBA +3.7 points (stop 22,
docs/MODELS.md).

Large photos: the coefficients are fitted on a copy shrunk to about `work_side` (the fast guided filter of He & Sun,
2015) and applied to the full-resolution photo in bands of rows, so the extra memory is a few low-resolution maps
and one band, never a full-size colour temporary.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_RADIUS = 8  # the shipped H's card's radius (stop 22, docs/MODELS.md)
BAND_ROWS = 128
DENSE_SHARE = 0.1  # a band with more of its pixels in reach than this is filtered whole
REACH = 1.5  # how far (in windows) the cut may move from the given cut, with cut_only


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Window-averaged (a_r, a_g, a_b, b) of the local fits p ≈ a·I + b, as an h×w×4 float32 array."""
    mean_i = _box(guide, r)  # h×w×3
    mean_p = _box(p, r)
    cov = _box(guide * p[..., None], r) - mean_i * mean_p[..., None]
    # The symmetric 3×3 covariance of the guide per pixel, regularised, inverted by cofactors (no per-pixel solver).
    def var(i: int, j: int) -> np.ndarray:
        return _box(guide[..., i] * guide[..., j], r) - mean_i[..., i] * mean_i[..., j]

    s_rr, s_rg, s_rb = var(0, 0) + eps, var(0, 1), var(0, 2)
    s_gg, s_gb, s_bb = var(1, 1) + eps, var(1, 2), var(2, 2) + eps
    i_rr = s_gg * s_bb - s_gb * s_gb
    i_rg = s_gb * s_rb - s_rg * s_bb
    i_rb = s_rg * s_gb - s_gg * s_rb
    i_gg = s_rr * s_bb - s_rb * s_rb
    i_gb = s_rb * s_rg - s_rr * s_gb
    i_bb = s_rr * s_gg - s_rg * s_rg
    det = s_rr * i_rr + s_rg * i_rg + s_rb * i_rb
    c_r, c_g, c_b = cov[..., 0], cov[..., 1], cov[..., 2]
    out = np.empty(p.shape + (4,), np.float32)
    out[..., 0] = (i_rr * c_r + i_rg * c_g + i_rb * c_b) / det
    out[..., 1] = (i_rg * c_r + i_gg * c_g + i_gb * c_b) / det
    out[..., 2] = (i_rb * c_r + i_gb * c_g + i_bb * c_b) / det
    out[..., 3] = mean_p - (out[..., :3] * mean_i).sum(-1)
    return _box(out, r)


def _bilinear(grid: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """`grid` (h×w×c) sampled bilinearly at the points (fx, fy), coordinates clamped to the grid (edge replicated)."""
    gh, gw = grid.shape[:2]
    fx = np.clip(fx, 0.0, gw - 1.0)
    fy = np.clip(fy, 0.0, gh - 1.0)
    x0 = np.minimum(fx.astype(np.int64), max(gw - 2, 0))
    y0 = np.minimum(fy.astype(np.int64), max(gh - 2, 0))
    x1, y1 = np.minimum(x0 + 1, gw - 1), np.minimum(y0 + 1, gh - 1)
    wx, wy = (fx - x0)[:, None], (fy - y0)[:, None]
    top = grid[y0, x0] * (1 - wx) + grid[y0, x1] * wx
    bottom = grid[y1, x0] * (1 - wx) + grid[y1, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def _fit(c: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """a·I + b for coefficients `c` (…×4) and colours (…×3), clipped to [0, 1]."""
    return np.clip((c[..., :3] * colour).sum(-1) + c[..., 3], 0.0, 1.0)


def _band_maps(map_x: np.ndarray, r0: int, rows: int, h: int, sh: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2.remap maps (x, y) of a band of output rows on the shrunk grid (cv2.resize's: centres aligned), and the
    band's y coordinates."""
    fy = (np.arange(r0, r0 + rows, dtype=np.float32) + 0.5) * (sh / h) - 0.5
    mx = np.ascontiguousarray(np.broadcast_to(map_x, (rows, map_x.size)))
    my = np.ascontiguousarray(np.broadcast_to(fy[:, None], (rows, map_x.size)))
    return mx, my, fy


def _band(rgb: np.ndarray, guide: np.ndarray, coef: np.ndarray, maps: tuple | None, r0: int,
          rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A band's coefficients and colours at full resolution: sliced at 1:1 (`maps` None), else upsampled."""
    if maps is None:
        return coef[r0:r0 + rows], guide[r0:r0 + rows]
    mx, my, _ = maps
    c = cv2.remap(coef, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return c, rgb[r0:r0 + rows].astype(np.float32) / 255.0


def snap_to_edges(rgb: np.ndarray, prob: np.ndarray, radius: int = DEFAULT_RADIUS, eps: float = 1e-3,
                  work_side: int = 1024, out: np.ndarray | None = None, cut_only: bool = False) -> np.ndarray:
    """`prob` (float32 h×w in [0, 1]) filtered with `rgb` (uint8 h×w×3) as the guide, written to `out` (a new
    float32 array when None; `prob` itself may be passed: each band of it is read before that band is written).

    `radius` is in pixels of a view `work_side` long: the coefficients are fitted on the photo shrunk to that long
    side when it is larger, and with the radius scaled down (at least 1 px) when it is smaller, so the window is
    the same share of every photo (mBA's bands scale with the photo too). `eps` regularises the fit.
    `cut_only`: take the filtered value only where it moves the 0.5 cut (the mask's edge), no further than REACH
    windows from `prob`'s own cut; `prob`'s own value everywhere else, so the edge moves but the filter's smoothing
    does not soften the rest of the map."""
    h, w = prob.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"guide {rgb.shape[:2]} and probability {prob.shape} differ in size")
    scale = min(1.0, work_side / max(h, w))
    radius = max(1, round(radius * min(1.0, max(h, w) / work_side)))
    if scale < 1.0:
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        guide = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        small = cv2.resize(np.ascontiguousarray(prob, np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    else:
        guide = rgb.astype(np.float32) / 255.0
        small = np.ascontiguousarray(prob, np.float32)
    coef = _coefficients(guide, small, radius, float(eps))
    if out is None:
        out = np.empty((h, w), np.float32)
    elif out.shape != (h, w) or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of {(h, w)}, got {out.dtype} {out.shape}")
    sh, sw = coef.shape[:2]
    map_x = (np.arange(w, dtype=np.float32) + 0.5) * (sw / w) - 0.5
    if not cut_only:
        for r0 in range(0, h, BAND_ROWS):
            rows = min(BAND_ROWS, h - r0)
            maps = None if scale == 1.0 else _band_maps(map_x, r0, rows, h, sh)
            out[r0:r0 + rows] = _fit(*_band(rgb, guide, coef, maps, r0, rows))
        return out
    # cut_only: the cut may move only within REACH windows of `prob`'s own cut, so the filter moves an edge H drew
    # and never makes one of its own (a faint ghost with crisp colour edges, all below 0.5, stays below). At 1.5
    # every move the held-out photos rewarded was within reach (at 1.0, mBA fell 0.8 points). Only the pixels in
    # reach are filtered at all: the work follows the edge's length, not the photo's area.
    k = 2 * round(REACH * radius) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    reach = cv2.morphologyEx((small > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, disc)
    for r0 in range(0, h, BAND_ROWS):
        rows = min(BAND_ROWS, h - r0)
        given = prob[r0:r0 + rows]
        maps = None if scale == 1.0 else _band_maps(map_x, r0, rows, h, sh)
        if maps is None:
            near = reach[r0:r0 + rows]
        else:
            near = cv2.remap(reach, maps[0], maps[1], cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        share = np.count_nonzero(near) / near.size
        if share > DENSE_SHARE:  # much of the band is in reach: filter it whole (vector work beats gathers)
            q = _fit(*_band(rgb, guide, coef, maps, r0, rows))
            out[r0:r0 + rows] = np.where(((q > 0.5) != (given > 0.5)) & (near > 0), q, given)
            continue
        if out is not prob:
            out[r0:r0 + rows] = given
        if share == 0.0:
            continue
        ys, xs = np.nonzero(near)
        if maps is None:
            q = _fit(coef[r0 + ys, xs], guide[r0 + ys, xs])
        else:
            q = _fit(_bilinear(coef, map_x[xs], maps[2][ys]), rgb[r0 + ys, xs].astype(np.float32) / 255.0)
        moved = (q > 0.5) != (given[ys, xs] > 0.5)
        out[r0 + ys[moved], xs[moved]] = q[moved]
    return out
