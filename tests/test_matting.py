"""Soft edges (mos_studio.core.matting): real pymatting solves on small composites whose alpha is known."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mos_studio.core.errors import MosError
from mos_studio.core.matting import (
    UNKNOWN,
    MattingConfig,
    build_trimap,
    erosion_trimap,
    matte_result,
    soft_matte,
    stage_uncertainty,
)


def strand_alpha(h: int = 160, w: int = 200, seed: int = 0) -> np.ndarray:
    """A disc with thin hairs leaving it, drawn at 4× and averaged down (fractional coverage, like real hair)."""
    rng = np.random.default_rng(seed)
    ss = 4
    big = np.zeros((h * ss, w * ss), np.uint8)
    cx, cy, r = w // 2, int(h * 0.6), int(h * 0.3)
    cv2.circle(big, (cx * ss, cy * ss), r * ss, 255, -1, cv2.LINE_AA)
    for _ in range(60):
        t = rng.uniform(np.pi * 1.1, np.pi * 1.9)
        x0, y0 = cx + r * np.cos(t), cy + r * np.sin(t)
        length = rng.uniform(10, 35)
        a = t + rng.normal(0, 0.2)
        pts = np.array([[x0, y0], [x0 + length * np.cos(a), y0 + length * np.sin(a)]]) * ss
        cv2.polylines(big, [pts.astype(np.int32)], False, 255, ss // 2, cv2.LINE_AA)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def compose(alpha: np.ndarray, fg=(220, 40, 30), bg=(30, 60, 230), seed: int = 1) -> np.ndarray:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    h, w = alpha.shape
    f = np.clip(np.array(fg, np.float32) + rng.normal(0, 6, (h, w, 3)), 0, 255)
    b = np.clip(np.array(bg, np.float32) + rng.normal(0, 6, (h, w, 3)), 0, 255)
    return np.clip(alpha[..., None] * f + (1 - alpha[..., None]) * b + 0.5, 0, 255).astype(np.uint8)


def h_like(alpha: np.ndarray, scale: float = 0.5, sigma: float = 1.0):  # noqa: ANN201
    """(hard mask, full-size uint8 doubt) as a soft-but-right refiner at half resolution would give them."""
    h, w = alpha.shape
    small = cv2.GaussianBlur(cv2.resize(alpha, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA),
                             (0, 0), sigma)
    mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    stage = SimpleNamespace(name="S2_3", uncertainty=1.0 - np.abs(2.0 * small - 1.0))
    return mask, stage_uncertainty([stage], (w, h))


WIDE = MattingConfig(max_band_px=40)  # these hairs reach 35 px out; the default reach is for photos of 1K and more


def sad(a: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - gt).sum())


def test_degenerate_band_returns_the_hard_mask_unchanged():
    alpha = strand_alpha()
    img = compose(alpha)
    mask = alpha > 0.5
    for unc in (None, np.zeros(mask.shape, np.uint8), np.full(mask.shape, 0.1, np.float32)):
        m = soft_matte(img, mask, unc)
        assert m.soft is False and m.tiles == 0
        assert np.array_equal(m.alpha, mask.astype(np.float32))
        assert np.array_equal(m.foreground, img)
    # doubt only far from the edge (a corner of the background) is not a band either
    far = np.zeros(mask.shape, np.uint8)
    far[:6, :6] = 255
    assert build_trimap(mask, far) is None
    # an empty or full mask has no edge to soften
    assert soft_matte(img, np.zeros(mask.shape, bool), np.full(mask.shape, 255, np.uint8)).soft is False
    assert not soft_matte(img, np.ones(mask.shape, bool), np.full(mask.shape, 255, np.uint8)).alpha.min() < 1


def test_trimap_band_follows_h_doubt_and_the_edge():
    alpha = strand_alpha()
    mask, unc = h_like(alpha)
    tri = build_trimap(mask, unc, MattingConfig(edge_px=2, max_band_px=40))
    assert tri is not None and set(np.unique(tri)) <= {0, UNKNOWN, 255}
    band = tri == UNKNOWN
    hairs = (alpha > 0.05) & (alpha < 0.95) & ~mask
    assert band[hairs].mean() > 0.5  # most hair outside the hard mask is left for the solver
    assert (tri[~band] == np.where(mask, 255, 0)[~band]).all()  # known pixels keep the mask's answer
    ero = erosion_trimap(mask, 10)
    assert ero is not None and (ero == UNKNOWN).any()
    with pytest.raises(MosError, match="uncertainty map is"):
        build_trimap(mask, np.zeros((10, 10), np.uint8))


def test_soft_beats_hard_on_a_strand_composite():
    alpha = strand_alpha()
    img = compose(alpha)
    mask, unc = h_like(alpha)
    m = soft_matte(img, mask, unc, config=WIDE)
    assert m.soft and m.tiles >= 1 and m.alpha.dtype == np.float32
    assert 0.0 <= m.alpha.min() and m.alpha.max() <= 1.0
    hard, soft = sad(mask.astype(np.float32), alpha), sad(m.alpha, alpha)
    assert soft < 0.8 * hard, (soft, hard)
    ero = soft_matte(img, mask, trimap=erosion_trimap(mask, 10), config=WIDE)
    assert soft < sad(ero.alpha, alpha)


def test_tiled_solve_matches_untiled():
    alpha = strand_alpha(192, 224, seed=3)
    img = compose(alpha)
    mask, unc = h_like(alpha)
    whole = soft_matte(img, mask, unc, config=MattingConfig(tile=1024, margin=16, max_band_px=40))
    tiled = soft_matte(img, mask, unc, config=MattingConfig(tile=64, margin=16, max_band_px=40, whole_side=96,
                                                            coarse_side=96))  # tiles held to a coarse solve
    assert whole.tiles == 1 and tiled.tiles > 4
    diff = np.abs(whole.alpha - tiled.alpha)[whole.band]
    assert diff.mean() < 0.01 and np.quantile(diff, 0.99) < 0.1, (diff.mean(), diff.max())


def test_foreground_has_no_background_fringe():
    alpha = strand_alpha()
    img = compose(alpha, fg=(220, 40, 30), bg=(30, 60, 230))  # red object on blue
    mask, unc = h_like(alpha)
    m = soft_matte(img, mask, unc, config=WIDE)
    seen = m.band & (m.alpha > 0.15)
    assert seen.sum() > 50
    raw_blue = img[..., 2][seen].astype(float).mean()
    est_blue = m.foreground[..., 2][seen].astype(float).mean()
    assert raw_blue > 70 and est_blue < 30, (raw_blue, est_blue)  # the blue of the old background is gone
    assert np.array_equal(m.foreground[~m.band], img[~m.band])  # outside the band the photo is untouched


def test_matte_result_reads_h_maps_inside_the_cascade_region(tmp_path):
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.testing import write_tiny_models

    write_tiny_models(tmp_path)
    cascade = Cascade.from_pretrained(tmp_path, device="cpu")
    alpha = strand_alpha(96, 128)
    img = compose(alpha)
    box = (20, 10, 110, 90)
    res = cascade(img, box=box)
    unc = stage_uncertainty(res.stages["H"], (128, 96), region=box)
    assert unc is not None and unc.shape == (96, 128)
    assert unc[:10].max() == 0 and unc[:, 110:].max() == 0  # no doubt outside the box H looked at
    m = matte_result(img, res, region=box)
    assert m.alpha.shape == (96, 128) and m.foreground.shape == (96, 128, 3)
    if not m.soft:
        assert np.array_equal(m.alpha, res.mask.astype(np.float32))
    # The result knows its box: without region= the matte is the same (a rough refine's caller never saw the box).
    assert res.region == box
    np.testing.assert_array_equal(matte_result(img, res).alpha, m.alpha)
    with pytest.raises(MosError, match="mask is"):
        soft_matte(img, np.zeros((5, 5), bool))


def test_parallel_tiles_match_serial_and_leave_stdout_alone():
    import sys

    alpha = strand_alpha(192, 224, seed=4)
    img = compose(alpha)
    mask, unc = h_like(alpha)
    out = sys.stdout
    cfg = {"tile": 64, "max_band_px": 40, "whole_side": 96, "coarse_side": 96}
    one = soft_matte(img, mask, unc, config=MattingConfig(**cfg, workers=1))
    two = soft_matte(img, mask, unc, config=MattingConfig(**cfg, workers=3))
    assert one.tiles > 4
    assert sys.stdout is out  # pymatting's prints were dropped only while solving
    assert np.array_equal(one.alpha, two.alpha) and np.array_equal(one.foreground, two.foreground)
    stop = soft_matte.__globals__["Cancelled"]
    with pytest.raises(stop):
        soft_matte(img, mask, unc, config=MattingConfig(**cfg), cancel_check=lambda: True)
    assert sys.stdout is out


def test_neighbouring_tiles_cross_fade_instead_of_meeting_in_a_step(monkeypatch):
    """Tiles that disagree (each is held to a coarse solve at its rim, which can be far off on a big photo) must
    meet in a gradual cross-fade; keeping only each tile's inside left a square step in alpha on a 6048 px photo."""
    import mos_studio.core.matting as matting

    h, w = 200, 260
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.float32)[None, :].astype(np.uint8)  # each crop has its own mean

    def per_crop_constant(rgb, tri, cfg, scale=1.0, fixed=None, fixed_values=None):  # noqa: ANN001, ANN202
        return np.full(tri.shape, rgb[..., 0].mean() / 255.0, np.float32)  # a tile's own, flat answer

    monkeypatch.setattr(matting, "_solve_region", per_crop_constant)
    trimap = np.full((h, w), UNKNOWN, np.uint8)
    trimap[:, :8], trimap[:, -8:] = 0, 255
    cfg = MattingConfig(tile=64, margin=16, whole_side=96, coarse_side=64, foreground=False)
    m = soft_matte(img, trimap > 127, trimap=trimap, config=cfg)
    assert m.tiles >= 12
    band = m.band
    step = np.abs(np.diff(m.alpha, axis=1))[band[:, 1:] & band[:, :-1]]
    # Neighbouring crops' answers differ by ~0.22 here, and keeping each tile's inside met in a 0.25 step. Spread
    # over the 2 × 16 px overlap, no step is above 0.04.
    assert step.max() < 0.04, step.max()
    inside = m.alpha[100, 96]  # the middle of a tile, beyond every neighbour's margin: that tile's own answer
    crop_mean = img[:, 64 - 16:128 + 16, 0].mean() / 255.0
    assert abs(inside - crop_mean) < 0.01


def test_a_painted_band_is_matted_without_any_doubt_from_h():
    """The app's soft-edge brush: the user paints over the hairs of a hard mask that H was sure of (no doubt at
    all); the painted pixels are solved, the rest keeps the mask, and the cut-out's hairs come back soft."""
    alpha = strand_alpha()
    img = compose(alpha)
    mask = alpha > 0.5
    assert build_trimap(mask, None) is None  # nothing to solve without doubt or paint
    painted = np.zeros(mask.shape, np.uint8)
    cv2.ellipse(painted, (100, 96), (62, 50), 0, 180, 360, 255, 36)  # a thick arc over the hairs above the disc
    tri = build_trimap(mask, None, painted=painted)
    assert tri is not None and (tri[painted > 0] == UNKNOWN).all()
    edge = cv2.morphologyEx(mask.astype(np.uint8) * 255, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    assert (tri[(painted == 0) & ~edge] == np.where(mask, 255, 0)[(painted == 0) & ~edge]).all()
    m = soft_matte(img, mask, None, painted=painted)
    assert m.soft
    inside = painted > 0
    assert sad(m.alpha[inside], alpha[inside]) < 0.6 * sad(mask[inside].astype(np.float32), alpha[inside])
    with pytest.raises(MosError, match="painted soft-edge band"):
        build_trimap(mask, None, painted=np.zeros((5, 5), bool))
