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

BAND_ROWS = 256
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


def snap_to_edges(rgb: np.ndarray, prob: np.ndarray, radius: int = 8, eps: float = 1e-3,
                  work_side: int = 1024, out: np.ndarray | None = None, cut_only: bool = False) -> np.ndarray:
    """`prob` (float32 h×w in [0, 1]) filtered with `rgb` (uint8 h×w×3) as the guide, written to `out` (a new
    float32 array when None; `prob` itself may be passed, as nothing reads it once the fit is made).

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
    # cut_only: the cut may move only within REACH windows of `prob`'s own cut, so the filter moves an edge H drew
    # and never makes one of its own (a faint ghost with crisp colour edges, all below 0.5, stays below). At 1.5
    # every move the held-out photos rewarded was within reach (at 1.0, mBA fell 0.8 points).
    reach = None
    if cut_only:
        k = 2 * round(REACH * radius) + 1
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        reach = cv2.morphologyEx((small > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, disc)

    def put(r0: int, c: np.ndarray, band: np.ndarray, near: np.ndarray | None) -> None:
        q = (c[..., :3] * band).sum(-1) + c[..., 3]
        np.clip(q, 0.0, 1.0, out=q)
        if near is not None:
            given = prob[r0:r0 + q.shape[0]]
            q = np.where(((q > 0.5) != (given > 0.5)) & (near > 0), q, given)
        out[r0:r0 + q.shape[0]] = q

    if scale == 1.0:
        for r0 in range(0, h, BAND_ROWS):
            put(r0, coef[r0:r0 + BAND_ROWS], guide[r0:r0 + BAND_ROWS],
                None if reach is None else reach[r0:r0 + BAND_ROWS])
    else:
        # Bilinear upsampling of the coefficients band by band, on cv2.resize's pixel grid (centres aligned).
        sh, sw = coef.shape[:2]
        map_x = np.broadcast_to(((np.arange(w, dtype=np.float32) + 0.5) * (sw / w) - 0.5)[None, :],
                                (BAND_ROWS, w))
        for r0 in range(0, h, BAND_ROWS):
            rows = min(BAND_ROWS, h - r0)
            ys = (np.arange(r0, r0 + rows, dtype=np.float32) + 0.5) * (sh / h) - 0.5
            map_y = np.ascontiguousarray(np.broadcast_to(ys[:, None], (rows, w)))
            mx = np.ascontiguousarray(map_x[:rows])
            c = cv2.remap(coef, mx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            near = None if reach is None else cv2.remap(reach, mx, map_y, cv2.INTER_NEAREST,
                                                       borderMode=cv2.BORDER_REPLICATE)
            put(r0, c, rgb[r0:r0 + rows].astype(np.float32) / 255.0, near)
    return out
