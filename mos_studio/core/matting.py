"""Soft edges: alpha matting in the band where H is unsure, so hair, fur and blur keep their partial transparency.

A 0/255 mask makes every mixed edge pixel fully opaque, and the old background's colour comes along with it. Here the
final mask and H's own uncertainty maps decide where the answer is unknown:

* trimap: unknown = (H's uncertainty above a threshold, within `max_band_px` of the mask's edge) ∪ a thin band
  along that edge; everything else keeps the mask's 0 or 255. No erosion of the mask decides the band's width (as
  rembg's alpha matting does): it is as wide as H's doubt, so a wispy strand gets a wide band and a clean edge a
  thin one.
* alpha: closed-form matting (pymatting's Laplacian + incomplete-Cholesky-preconditioned CG), solved tile by tile
  with a context margin, only on tiles that hold unknown pixels; peak memory is one tile's system, so 8K fits.
* colour: pymatting's multi-level foreground estimation on the same tiles replaces the band's colours with the
  object's own, so a cut-out carries no fringe of the old background.

When H's doubt is missing or nowhere near the edge (all certain), the hard mask comes back unchanged.
pymatting compiles its kernels with numba; they are cached on disk after the first use (see docs/SOFT_EDGES.md).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .errors import Cancelled, MosError

Rect = tuple[int, int, int, int]
UNKNOWN = 128
# H's last HierPR block: its three maps (strides 4, 2, 1) agree on where the refiner is still unsure.
H_STAGES = ("S8_3", "S4_3", "S2_3")


@dataclass
class MattingConfig:
    uncertain: float = 0.3  # H uncertainty (1 = H's coarse prediction is exactly 0.5) above this is unknown
    edge_px: int = 2  # half-width of the thin unknown band along the final mask's edge, full-resolution pixels
    max_band_px: int | None = None  # unsure pixels further than this from the edge stay known; None: 1.2 % of
    # the long side (25 px at 2K, 46 px at 4K)
    tile: int = 512  # inner side of a solve tile
    margin: int = 32  # context around each tile; its unknown pixels are held to the coarse solve
    rim_px: int = 3  # width of the margin's outer rim held to the coarse solve
    whole_side: int = 1024  # images up to this long side are solved in one piece, untiled
    coarse_side: int = 512  # larger ones get a coarse solve of the whole band at this long side first, which holds
    # each tile's rim
    work_scale: float | None = None  # < 1 solves on a downscaled copy of each tile (faster, blurs 1-px strands);
    # None: full resolution while the band has at most `work_band_px` pixels, else scaled to about that (≥ 0.5)
    work_band_px: int = 400_000
    epsilon: float = 1e-6  # closed-form matting's regulariser
    cg_rtol: float = 1e-5
    cg_maxiter: int = 2000
    foreground: bool = True  # estimate the object's colours in the band (no background fringe)
    workers: int | None = None  # threads solving tiles at once; None: one per CPU core


@dataclass
class Matte:
    """A soft alpha and the colours to use with it."""

    alpha: np.ndarray  # float32 H×W in [0, 1]
    foreground: np.ndarray  # uint8 H×W×3: the image with band colours replaced by the estimated object colours
    trimap: np.ndarray  # uint8 H×W: 0 background, 128 unknown, 255 object
    soft: bool  # False: no unknown band, `alpha` is the hard mask unchanged
    tiles: int = 0  # tiles solved
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def band(self) -> np.ndarray:
        """Where the alpha was solved (the trimap's unknown pixels)."""
        return self.trimap == UNKNOWN

    @property
    def alpha_u8(self) -> np.ndarray:
        return (np.clip(self.alpha, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _as_bool_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != shape:
        raise MosError(f"mask is {m.shape[1] if m.ndim > 1 else '?'}×{m.shape[0]} but the image is "
                       f"{shape[1]}×{shape[0]}")
    if m.dtype == bool:
        return m
    if m.dtype == np.uint8:
        return m > 127
    return np.nan_to_num(m.astype(np.float32)) > 0.5


def _rgb(image: object) -> np.ndarray:
    arr = np.asarray(getattr(image, "rgb", image))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise MosError(f"expected an H×W×3 uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def stage_uncertainty(
    stages: Sequence[object] | None,
    size: tuple[int, int],
    region: Rect | None = None,
    names: Sequence[str] = H_STAGES,
) -> np.ndarray | None:
    """H's doubt as uint8 (255 = most unsure) at the image's size (w, h); None when there are no such maps.

    `stages` is `Result.stages["H"]` (maps at H's global-pass resolution, covering `region` — the box or roi the
    cascade was given — or the whole image). The maps named in `names` are resized to the region and averaged.
    """
    if not stages:
        return None
    chosen = [s for s in stages if getattr(s, "name", None) in names] or list(stages)[-1:]
    w, h = size
    x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    rw, rh = x1 - x0, y1 - y0
    acc = np.zeros((rh, rw), np.float32)
    for s in chosen:
        u = np.nan_to_num(np.asarray(s.uncertainty, np.float32))  # type: ignore[attr-defined]
        acc += cv2.resize(u, (rw, rh), interpolation=cv2.INTER_LINEAR)
    acc *= 255.0 / len(chosen)
    out = np.zeros((h, w), np.uint8)
    out[y0:y1, x0:x1] = np.clip(acc + 0.5, 0, 255).astype(np.uint8)
    return out


def _default_max_band(w: int, h: int) -> int:
    return max(16, int(round(0.012 * max(w, h))))


def _near_edge(mask_u8: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ~`radius` px of the mask's edge, found on a copy of at most 2048 px (cheap at 8K)."""
    h, w = mask_u8.shape
    f = max(1, int(np.ceil(max(h, w) / 2048)))
    small = cv2.resize(mask_u8, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA) if f > 1 else mask_u8
    r = max(1, int(np.ceil(radius / f)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    edge = cv2.morphologyEx((small > 127).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    if f > 1:
        edge |= ((small > 0) & (small < 255)).astype(np.uint8)
    near = cv2.dilate(edge, k)
    if f > 1:
        near = cv2.resize(near, (w, h), interpolation=cv2.INTER_NEAREST)
    return near.astype(bool)


def build_trimap(
    mask: np.ndarray,
    uncertainty: np.ndarray | None,
    config: MattingConfig | None = None,
    probability: np.ndarray | None = None,
    painted: np.ndarray | None = None,
) -> np.ndarray | None:
    """uint8 trimap (0, 128, 255) from the final mask and H's doubt; None when the band is missing or degenerate.

    `uncertainty` is uint8 (255 = most unsure) or float in [0, 1] at the mask's size; `probability` (the cascade's
    final map) adds its own doubt, 1 − |2p − 1|. `painted` (bool or nonzero, the mask's size): pixels the user
    marked for matting (the app's soft-edge brush), unknown wherever they lie and with or without any doubt from H.
    Degenerate: no doubt above the threshold near the mask's edge and nothing painted, a mask with no edge at all
    (empty or full), or a band that leaves no known object or no known background.
    """
    cfg = config or MattingConfig()
    m = np.asarray(mask)
    if m.ndim != 2:
        raise MosError(f"a mask must be H×W, got shape {m.shape}")
    h, w = m.shape
    hard = _as_bool_mask(m, (h, w))
    if not hard.any() or hard.all():
        return None
    mask_u8 = hard.astype(np.uint8) * 255
    limit = int(round(255 * cfg.uncertain))
    unsure = None
    for doubt in (uncertainty, probability):
        if doubt is None:
            continue
        d = np.asarray(doubt)
        if d.shape != (h, w):
            raise MosError(f"uncertainty map is {d.shape[1]}×{d.shape[0]} but the mask is {w}×{h}")
        if doubt is probability:
            p = np.nan_to_num(d.astype(np.float32))
            u = (1.0 - np.abs(2.0 * p - 1.0)) > cfg.uncertain
        elif d.dtype == np.uint8:
            u = d > limit
        else:
            u = np.nan_to_num(d.astype(np.float32)) > cfg.uncertain
        unsure = u if unsure is None else unsure | u
    user = None
    if painted is not None:
        user = np.asarray(painted)
        if user.shape != (h, w):
            raise MosError(f"the painted soft-edge band is {user.shape[1]}×{user.shape[0]} but the mask is {w}×{h}")
        user = user.astype(bool, copy=False)
        if not user.any():
            user = None
    if unsure is not None:
        band = cfg.max_band_px if cfg.max_band_px is not None else _default_max_band(w, h)
        # Only doubt near the edge: a whole see-through interior in the band defeats closed-form matting (measured:
        # SAD 82 vs 46 on the glass composite, docs/SOFT_EDGES.md), and doubt deep inside is texture, not
        # transparency. What the user painted is taken as it is.
        unsure &= _near_edge(mask_u8, band)
        if not unsure.any():
            unsure = None
    if unsure is None and user is None:
        return None
    if unsure is None:
        unsure = user.copy()
    elif user is not None:
        unsure |= user
    if cfg.edge_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cfg.edge_px + 1, 2 * cfg.edge_px + 1))
        unsure |= cv2.morphologyEx(mask_u8, cv2.MORPH_GRADIENT, k) > 0
    trimap = mask_u8
    trimap[unsure] = UNKNOWN
    if not (trimap == 0).any() or not (trimap == 255).any():
        return None  # nothing left known on one side: the solve has no anchor there (it would answer all 1 or 0)
    return trimap


def erosion_trimap(mask: np.ndarray, size: int = 10) -> np.ndarray | None:
    """A rembg-style trimap for comparison: unknown = what a `size`×`size` erosion removes from object and background.

    (rembg erodes the thresholded mask and the inverted mask with a square structuring element; the band has the
    same width everywhere, whatever the image holds.)
    """
    m = np.asarray(mask)
    hard = _as_bool_mask(m, m.shape[:2]).astype(np.uint8)
    if not hard.any() or hard.all():
        return None
    k = np.ones((size, size), np.uint8)
    fg = cv2.erode(hard, k, borderType=cv2.BORDER_REPLICATE) > 0
    bg = cv2.erode(1 - hard, k, borderType=cv2.BORDER_REPLICATE) > 0
    trimap = np.full(hard.shape, UNKNOWN, np.uint8)
    trimap[fg] = 255
    trimap[bg] = 0
    return trimap


_stdout_lock = threading.Lock()
_stdout_users = 0
_stdout_saved: Any = None


class _Discard:
    """A write-only sink: pymatting's solver notes ("PERFORMANCE WARNING … try a larger shift") describe a retry it
    makes by itself, so a user gains nothing from them."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """pymatting's ichol prints its retries to stdout, which is the bridge's JSON channel and the CLI's output: drop
    them while solving.

    Reference-counted, so overlapping calls from several threads restore the real stdout exactly once (a plain
    redirect_stdout per thread can leave sys.stdout pointing at another thread's sink).
    """
    global _stdout_users, _stdout_saved
    with _stdout_lock:
        if _stdout_users == 0:
            _stdout_saved = sys.stdout
            sys.stdout = _Discard()
        _stdout_users += 1
    try:
        yield
    finally:
        with _stdout_lock:
            _stdout_users -= 1
            if _stdout_users == 0:
                sys.stdout = _stdout_saved
                _stdout_saved = None


def _solve_alpha(img: np.ndarray, known: np.ndarray, values: np.ndarray, cfg: MattingConfig) -> np.ndarray:
    """Closed-form matting: float64 image in [0, 1]; alpha fixed to `values` where `known`; solved elsewhere.

    pymatting builds the Laplacian (only windows that touch unknown pixels) and the incomplete-Cholesky
    preconditioner; scipy's CG solves the unknown block and, unlike pymatting's, returns its best answer instead of
    raising when it runs out of iterations. Known values may be fractional (a tile's rim, from the coarse pass).
    """
    from pymatting.laplacian.cf_laplacian import cf_laplacian
    from pymatting.preconditioner.ichol import ichol
    from scipy.sparse.linalg import LinearOperator, cg

    is_known = known.ravel()
    is_unknown = ~is_known
    x = np.where(known, values, 0.5).astype(np.float64).ravel()
    if not is_unknown.any():
        return x.reshape(known.shape)
    if not is_known.any():  # no anchor at all: nothing to solve against
        return np.round(x).reshape(known.shape)
    lap = cf_laplacian(img, epsilon=cfg.epsilon, radius=1, is_known=known).tocsr()
    l_u = lap[is_unknown][:, is_unknown]
    rhs = -(lap[is_unknown][:, is_known] @ x[is_known])
    if not np.any(rhs):  # only zero-alpha anchors around: the solution is 0 (CG would divide by zero)
        x[is_unknown] = 0.0
        return x.reshape(known.shape)
    n = l_u.shape[0]
    try:
        chol = ichol(l_u)
        precond = LinearOperator((n, n), matvec=chol, dtype=np.float64)
    except (ValueError, ZeroDivisionError):  # ichol refuses some matrices: Jacobi still converges, more slowly
        d = l_u.diagonal()
        inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 1.0)
        precond = LinearOperator((n, n), matvec=lambda v: inv * v, dtype=np.float64)
    sol, _info = cg(l_u, rhs, x0=x[is_unknown], rtol=cfg.cg_rtol, maxiter=cfg.cg_maxiter, M=precond)
    x[is_unknown] = np.nan_to_num(sol, nan=0.5)
    return np.clip(x, 0.0, 1.0).reshape(known.shape)


def _solve_region(rgb: np.ndarray, tri: np.ndarray, cfg: MattingConfig, scale: float = 1.0,
                  fixed: np.ndarray | None = None, fixed_values: np.ndarray | None = None) -> np.ndarray:
    """Alpha (float32, the crop's size) for a uint8 trimap crop; `fixed` unknown pixels (a tile's rim) are held at
    `fixed_values` (float in [0, 1]). Solved on a copy scaled by `scale` when it is below 1."""
    known = tri != UNKNOWN
    values = tri.astype(np.float32) / 255.0
    if fixed is not None and fixed_values is not None:
        known = known | fixed
        values = np.where(fixed, fixed_values, values).astype(np.float32)
    h, w = tri.shape
    if scale < 1.0:
        sw, sh = max(4, round(w * scale)), max(4, round(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
        known_s = cv2.resize(known.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST) > 0
        values_s = cv2.resize(values, (sw, sh), interpolation=cv2.INTER_NEAREST)
        a = _solve_alpha(small, known_s, values_s, cfg).astype(np.float32)
        a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        a = _solve_alpha(rgb.astype(np.float64) / 255.0, known, values, cfg).astype(np.float32)
    return np.where(tri == UNKNOWN, a, values).astype(np.float32)


def _resample(coarse: np.ndarray, rect: Rect, size: tuple[int, int]) -> np.ndarray:
    """The coarse alpha (a shrunk copy of a `size` = (w, h) image) over full-resolution `rect`, bilinear."""
    w, h = size
    ch, cw = coarse.shape
    x0, y0, x1, y1 = rect
    mx = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * (cw / w) - 0.5)[None, :].repeat(y1 - y0, 0)
    my = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * (ch / h) - 0.5)[:, None].repeat(x1 - x0, 1)
    return cv2.remap(coarse, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _crop_weights(crop: Rect, size: tuple[int, int], margin: int, rim: int) -> np.ndarray:
    """Blend weights over a solve crop: 1 inside, ramping to 0 across the margin on sides that are not the image's
    edge, and 0 on the rim that was held to the coarse solve."""
    x0, y0, x1, y1 = crop
    w, h = size
    big = 1 << 30

    def ramp(n: int, open_start: bool, open_end: bool) -> np.ndarray:
        i = np.arange(n, dtype=np.float32)
        d = np.full(n, big, np.float32)
        if open_start:
            d = np.minimum(d, i)
        if open_end:
            d = np.minimum(d, n - 1 - i)
        return np.clip((d - rim + 1) / max(1, margin - rim + 1), 0.0, 1.0).astype(np.float32)

    if margin <= 0:
        return np.ones((y1 - y0, x1 - x0), np.float32)
    return np.minimum(ramp(y1 - y0, y0 > 0, y1 < h)[:, None], ramp(x1 - x0, x0 > 0, x1 < w)[None, :])


def _tiles(h: int, w: int, t: int) -> list[Rect]:
    return [(x, y, min(w, x + t), min(h, y + t)) for y in range(0, h, t) for x in range(0, w, t)]


ProgressFn = Callable[[str, float], None]


def soft_matte(
    image: object,
    mask: np.ndarray,
    uncertainty: np.ndarray | None = None,
    *,
    probability: np.ndarray | None = None,
    trimap: np.ndarray | None = None,
    config: MattingConfig | None = None,
    progress: ProgressFn | None = None,
    cancel_check: Callable[[], bool] | None = None,
    painted: np.ndarray | None = None,
) -> Matte:
    """Soft alpha and fringe-free colours for `image` cut by `mask`, solved where H is unsure.

    `mask` is the final (hard) mask; `uncertainty` H's doubt at the image's size (see `stage_uncertainty`, or
    `matte_result` to go straight from a cascade `Result`). `painted`: pixels the user marked for matting (see
    `build_trimap`). A ready `trimap` (0/128/255) skips the trimap step.
    Without an unknown band the result is the hard mask unchanged (`soft=False`). `cancel_check()` returning True
    between tiles raises `Cancelled`.
    """
    cfg = config or MattingConfig()
    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    hard = _as_bool_mask(mask, (h, w))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if trimap is None:
        tri_full = build_trimap(hard, uncertainty, cfg, probability, painted)
    else:
        tri_full = np.asarray(trimap, np.uint8)
        if tri_full.shape != (h, w):
            raise MosError(f"trimap is {tri_full.shape[1]}×{tri_full.shape[0]} but the image is {w}×{h}")
        tri_full = np.where(tri_full > 200, 255, np.where(tri_full < 55, 0, UNKNOWN)).astype(np.uint8)
        if not (tri_full == UNKNOWN).any():
            tri_full = None
    timings["trimap"] = time.perf_counter() - t0
    if tri_full is None:
        return Matte(hard.astype(np.float32), rgb, hard.astype(np.uint8) * 255, soft=False, timings=timings)

    alpha = (tri_full == 255).astype(np.float32)
    fg = rgb.copy() if cfg.foreground else rgb
    unknown = tri_full == UNKNOWN
    band_px = int(unknown.sum())
    scale = cfg.work_scale
    if scale is None:
        scale = 1.0 if band_px <= cfg.work_band_px else max(0.5, float(np.sqrt(cfg.work_band_px / band_px)))
    timings["work_scale"] = scale
    report = progress or (lambda stage, fraction: None)
    m = cfg.margin
    coarse = None
    if max(h, w) <= cfg.whole_side:  # small enough to solve in one piece: no tiles, so no seams
        ys, xs = np.nonzero(unknown.any(axis=1))[0], np.nonzero(unknown.any(axis=0))[0]
        todo = [(int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)]
    else:
        # Tiles, each held at its rim to a coarse solve of the whole band: neighbours agree where they meet, and
        # hair far from the body still sees the object it belongs to (a tile alone would fade it to 0).
        t1 = time.perf_counter()
        f = cfg.coarse_side / max(h, w)
        cw, ch = max(8, round(w * f)), max(8, round(h * f))
        small = cv2.resize(rgb, (cw, ch), interpolation=cv2.INTER_AREA)
        with _stdout_silenced():
            coarse = _solve_region(small, cv2.resize(tri_full, (cw, ch), interpolation=cv2.INTER_NEAREST), cfg)
        timings["coarse"] = time.perf_counter() - t1
        todo = []
        for x0, y0, x1, y1 in _tiles(h, w, cfg.tile):
            sub = unknown[y0:y1, x0:x1]
            ys, xs = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
            if len(ys):  # shrink the tile to its unknown pixels' bounding box: edge-only tiles get much cheaper
                todo.append((x0 + int(xs[0]), y0 + int(ys[0]), x0 + int(xs[-1]) + 1, y0 + int(ys[-1]) + 1))

    def solve(tile: Rect) -> tuple[Rect, np.ndarray, float]:
        """Alpha over the tile plus its margin; runs on a worker thread (pymatting's kernels release the GIL)."""
        x0, y0, x1, y1 = tile
        t1 = time.perf_counter()
        cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
        tri = tri_full[cy0:cy1, cx0:cx1]
        fixed = fixed_values = None
        if coarse is not None:
            # Held: the unknown pixels on the crop's outer rim only. The margin between rim and tile is solved
            # freely, so where the coarse answer misses a thin strand crossing the rim, the error fades out there.
            fixed = np.zeros(tri.shape, bool)
            r = max(1, cfg.rim_px)
            fixed[:r], fixed[-r:], fixed[:, :r], fixed[:, -r:] = True, True, True, True
            fixed &= tri == UNKNOWN
            fixed[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = False  # never inside the tile itself
            fixed_values = _resample(coarse, (cx0, cy0, cx1, cy1), (w, h))
        a = _solve_region(rgb[cy0:cy1, cx0:cx1], tri, cfg, scale, fixed, fixed_values)
        return (cx0, cy0, cx1, cy1), a, time.perf_counter() - t1

    workers = max(1, cfg.workers or os.cpu_count() or 1)
    t_alpha = t_fg = 0.0
    # Running weighted mean of the crops that cover each band pixel (float16 keeps it at 2 bytes a pixel at 8K).
    weight_sum = np.zeros((h, w), np.float16) if len(todo) > 1 else np.zeros((h, w), np.float32)
    with _stdout_silenced(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mos-matting") as pool:
        futures = [pool.submit(solve, tile) for tile in todo]
        try:
            for i, fut in enumerate(futures):
                if cancel_check is not None and cancel_check():
                    raise Cancelled("cancelled during soft edges; nothing was changed")
                crop, a, seconds = fut.result()
                t_alpha += seconds
                cx0, cy0, cx1, cy1 = crop
                # Each crop's answer is blended in over its whole extent, fading out across its margin, so two
                # neighbours that disagree meet in a gradual cross-fade instead of a square step (measured on a
                # 6048 px photo: the step across tile borders was 5× the step beside them when each tile kept only
                # its own inside).
                wt = _crop_weights(crop, (w, h), m, cfg.rim_px)
                u_c = unknown[cy0:cy1, cx0:cx1] & (wt > 0)
                wt_u = wt[u_c]
                new_sum = weight_sum[cy0:cy1, cx0:cx1][u_c] + wt_u
                share = wt_u / new_sum
                cur = alpha[cy0:cy1, cx0:cx1]
                cur[u_c] += (a[u_c] - cur[u_c]) * share
                weight_sum[cy0:cy1, cx0:cx1][u_c] = new_sum
                if cfg.foreground:  # here, one at a time: pymatting's estimator is itself numba-parallel
                    t1 = time.perf_counter()
                    fg_crop = _estimate_foreground(rgb[cy0:cy1, cx0:cx1], a, scale)
                    cur_fg = fg[cy0:cy1, cx0:cx1]
                    old_fg = cur_fg[u_c].astype(np.float32)
                    mixed = old_fg + (fg_crop[u_c].astype(np.float32) - old_fg) * share[:, None]
                    cur_fg[u_c] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
                    t_fg += time.perf_counter() - t1
                report("soft edges", (i + 1) / len(todo))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    timings["workers"] = float(workers)
    timings["alpha"] = t_alpha
    timings["foreground"] = t_fg
    timings["total"] = time.perf_counter() - t0
    return Matte(alpha, fg, tri_full, soft=True, tiles=len(todo), timings=timings)


def _estimate_foreground(crop: np.ndarray, alpha: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """pymatting's multi-level foreground estimate (on a downscaled copy when the alpha was solved on one)."""
    from pymatting.foreground.estimate_foreground_ml import estimate_foreground_ml

    h, w = alpha.shape
    if scale < 1.0:
        sw, sh = max(4, round(w * scale)), max(4, round(h * scale))
        small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA)
        f = estimate_foreground_ml(small.astype(np.float32) / 255.0, cv2.resize(alpha, (sw, sh),
                                   interpolation=cv2.INTER_AREA).astype(np.float32))
        f = cv2.resize(np.asarray(f, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        f = estimate_foreground_ml(crop.astype(np.float32) / 255.0, alpha.astype(np.float32))
    return np.clip(np.asarray(f) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def matte_result(
    image: object,
    result: Any,
    *,
    mask: np.ndarray | None = None,
    region: Rect | None = None,
    config: MattingConfig | None = None,
    progress: ProgressFn | None = None,
    cancel_check: Callable[[], bool] | None = None,
) -> Matte:
    """`soft_matte` straight from a cascade `Result`: its mask (or an edited `mask`) and H's stage maps.

    `region` is the box or roi the cascade was run with (H's maps cover only that rectangle); None takes the
    result's own `region` (a rough refine's box, which its caller never saw).
    """
    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    if region is None:
        region = getattr(result, "region", None)
    stages = (getattr(result, "stages", None) or {}).get("H")
    unc = stage_uncertainty(stages, (w, h), region)
    final = result.mask if mask is None else mask
    return soft_matte(rgb, final, unc, config=config, progress=progress, cancel_check=cancel_check)
