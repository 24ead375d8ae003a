"""Edge snap (the colour guided filter of H's answer): it moves an edge onto the photo's, leaves flat regions alone,
and its banded large-photo path equals the whole-image computation; the cascade runs it on cuts only."""

import cv2
import numpy as np
import pytest

from mos_studio.core.cascade import Cascade, CascadeConfig
from mos_studio.core.edges import _coefficients, snap_to_edges
from mos_studio.core.testing import tiny_models


def _two_tone(h: int, w: int, edge_x: int, seed: int = 0) -> np.ndarray:
    """A dark-left / light-right photo with a little noise, its colour edge at column edge_x."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:, :edge_x] = (40, 60, 90)
    img[:, edge_x:] = (210, 190, 120)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_an_edge_two_pixels_off_moves_towards_the_photo_edge():
    img = _two_tone(64, 96, 48)
    prob = np.zeros((64, 96), np.float32)
    prob[:, 50:] = 1.0  # H put the object's edge two pixels right of the photo's
    out = snap_to_edges(img, prob, radius=4, eps=1e-3, work_side=96)
    assert out.dtype == np.float32 and out.shape == prob.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    truth = np.zeros((64, 96), bool)
    truth[:, 48:] = True
    wrong_before, wrong_after = (prob > 0.5) != truth, (out > 0.5) != truth
    assert wrong_after.sum() <= wrong_before.sum() // 2  # column 49 joins the object (128 wrong pixels before)
    assert not (wrong_after & ~wrong_before).any()  # and nothing that was right turns wrong
    assert out[:, :47].max() < 0.02 and out[:, 60:].min() > 0.9  # the background stays clean, the body solid


def test_flat_photo_and_flat_probability_stay_as_they_were():
    img = np.full((40, 50, 3), 128, np.uint8)
    prob = np.full((40, 50), 0.3, np.float32)
    assert np.allclose(snap_to_edges(img, prob), 0.3, atol=1e-4)
    # A soft probability edge on a flat photo has no colour edge to follow: it stays (a·I is constant, b smooths).
    ramp = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (40, 1))
    assert np.abs(snap_to_edges(img, ramp) - ramp)[:, 8:-8].max() < 0.02


def test_large_photo_path_equals_the_whole_image_computation():
    """Above work_side the coefficients are fitted on a shrunk copy and upsampled band by band (no full-size colour
    temporary); the result equals upsampling them in one piece with cv2.resize."""
    h, w, side, r, eps = 700, 1100, 400, 3, 1e-3
    rng = np.random.default_rng(3)
    img = cv2.resize((rng.random((70, 110, 3)) * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    prob = (cv2.GaussianBlur(img[..., 0].astype(np.float32), (0, 0), 9) > 128).astype(np.float32)
    out = snap_to_edges(img, prob, radius=r, eps=eps, work_side=side)
    sw, sh = round(w * side / w), round(h * side / w)
    guide = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    small = cv2.resize(prob, (sw, sh), interpolation=cv2.INTER_AREA)
    coef = cv2.resize(_coefficients(guide, small, r, eps), (w, h), interpolation=cv2.INTER_LINEAR)
    ref = np.clip((coef[..., :3] * (img.astype(np.float32) / 255.0)).sum(-1) + coef[..., 3], 0.0, 1.0)
    assert np.abs(out - ref).max() < 1e-4
    # Filtering in place (the cascade passes H's own array as `out`) gives the same answer, at both sizes.
    for work in (side, 2048):
        inplace = prob.copy()
        assert snap_to_edges(img, inplace, r, eps, work, out=inplace) is inplace
        assert np.array_equal(inplace, snap_to_edges(img, prob, r, eps, work))


def test_radius_is_a_share_of_the_photo_and_cut_only_moves_only_the_cut():
    """The radius counts pixels of a work_side-long view: a 512 px photo at radius 8 of 1024 is filtered with
    radius 4. cut_only keeps the map's own values except where the filter moves the 0.5 cut."""
    rng = np.random.default_rng(4)
    img = cv2.resize((rng.random((32, 48, 3)) * 255).astype(np.uint8), (512, 341), interpolation=cv2.INTER_CUBIC)
    prob = cv2.GaussianBlur((img[..., 1] > 120).astype(np.float32), (0, 0), 2)
    prob = np.roll(prob, 2, axis=1)  # the map's edge two pixels off the photo's
    plain = snap_to_edges(img, prob, 8, 1e-3, 1024)
    assert np.array_equal(plain, snap_to_edges(img, prob, 4, 1e-3, 512))
    assert not np.array_equal(plain, snap_to_edges(img, prob, 8, 1e-3, 512))
    cut = snap_to_edges(img, prob, 8, 1e-3, 1024, cut_only=True)
    moved = (plain > 0.5) != (prob > 0.5)
    assert moved.sum() > 100  # the filter does move the edge here
    assert np.array_equal(cut > 0.5, plain > 0.5)
    assert np.array_equal(cut[~moved], prob[~moved]) and np.array_equal(cut[moved], plain[moved])


def test_cut_only_never_makes_an_edge_where_the_map_has_none():
    """A faint answer (all below 0.5) stays exactly as it was with cut_only, however crisp the photo's edges; far
    from an object's cut nothing changes either."""
    img = _two_tone(80, 120, 60, seed=2)
    faint = np.where(np.arange(120) >= 60, 0.45, 0.05).astype(np.float32)[None, :].repeat(80, 0)
    assert np.array_equal(snap_to_edges(img, faint, 8, 1e-3, 120, cut_only=True), faint)
    prob = faint.copy()
    prob[30:50, 90:110] = 0.9  # one object, far from the faint region's colour edge at column 60
    out = snap_to_edges(img, prob, 4, 1e-3, 120, cut_only=True)
    assert np.array_equal(out[:, :80], prob[:, :80])


@pytest.mark.parametrize("work_side", [2000, 500])
def test_cut_only_gives_the_same_answer_band_by_band_or_point_by_point(monkeypatch, work_side):
    """Bands mostly in reach are filtered whole, others only at their pixels in reach (at 1:1 and shrunk)."""
    import mos_studio.core.edges as edges

    rng = np.random.default_rng(6)
    img = cv2.resize((rng.random((60, 90, 3)) * 255).astype(np.uint8), (900, 600), interpolation=cv2.INTER_CUBIC)
    prob = cv2.GaussianBlur((img[..., 0] > 128).astype(np.float32), (0, 0), 3)
    prob = np.roll(prob, 3, axis=0)
    answers = []
    for share in (0.0, 1.0):  # every band whole / every band point by point
        monkeypatch.setattr(edges, "DENSE_SHARE", share)
        answers.append(snap_to_edges(img, prob, 8, 1e-3, work_side, cut_only=True))
    moved = (answers[0] > 0.5) != (prob > 0.5)
    assert moved.sum() > 100
    # The shrunk path samples the coefficients with cv2.remap (fixed-point) or exactly: the same to 1e-3.
    assert np.abs(answers[0] - answers[1]).max() < 1e-3
    assert ((answers[0] > 0.5) != (answers[1] > 0.5)).sum() <= moved.sum() // 100


def test_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in size"):
        snap_to_edges(np.zeros((10, 12, 3), np.uint8), np.zeros((10, 11), np.float32))


def test_cascade_snaps_cuts_and_region_re_refines_but_never_a_given_mask():
    low, high = tiny_models(0)
    cfg = CascadeConfig(global_size=256, local_passes=False, refine_confidence=None, refine_band=None)
    plain = Cascade(low, high, device="cpu", config=cfg)
    snapped = Cascade(low, high, device="cpu",
                      config=CascadeConfig(global_size=256, local_passes=False, refine_confidence=None,
                                           refine_band=None, edge_radius=4))
    img = _two_tone(120, 160, 70, seed=5)
    a, b = plain(img), snapped(img)
    assert "edges" in b.timings and "edges" not in a.timings
    assert np.allclose(b.probability, snap_to_edges(img, a.probability, 4, 1e-3, 256, cut_only=True),
                       atol=1e-5)
    given = np.zeros((120, 160), bool)
    given[:, 75:] = True
    r1, r2 = plain(img, mask=given), snapped(img, mask=given)
    assert "edges" not in r2.timings and np.array_equal(r1.probability, r2.probability)
    roi = (40, 20, 120, 100)
    q1, q2 = plain(img, mask=given, roi=roi), snapped(img, mask=given, roi=roi)
    x0, y0, x1, y1 = roi
    assert "edges" in q2.timings
    assert np.allclose(q2.probability[y0:y1, x0:x1], snap_to_edges(img[y0:y1, x0:x1], q1.probability[y0:y1, x0:x1],
                                                                   4, 1e-3, 256, cut_only=True), atol=1e-5)
    outside = np.ones((120, 160), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(q2.probability[outside], given[outside].astype(np.float32))
