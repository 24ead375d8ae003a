"""Colour strokes (mos_studio.core.strokes) on the bundled cup photo and on drawn shapes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mos_studio.core.metrics import iou
from mos_studio.core.strokes import colour_stroke, stroke_rect

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cup() -> tuple[np.ndarray, np.ndarray]:
    """`make run`'s photo and its checked mask (tests/data/refine_good/README.md)."""
    rgb = np.array(Image.open(ROOT / "resources" / "samples" / "sample.jpg").convert("RGB"))
    good = np.array(Image.open(ROOT / "tests" / "data" / "refine_good" / "sample_mask.png")) > 127
    return rgb, good


def stroke(shape: tuple[int, int], points: list[tuple[int, int]], radius: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for a, b in zip(points, points[1:], strict=False):
        cv2.line(out, a, b, 1, 2 * radius)
    return out > 0


def apply(mask: np.ndarray, grown: tuple) -> np.ndarray:
    (x0, y0, x1, y1), values = grown
    out = mask.copy()
    out[y0:y1, x0:x1] = values
    return out


def beyond(st: np.ndarray, reach: float) -> np.ndarray:
    """Pixels farther than `reach` from every stroke pixel."""
    return cv2.distanceTransform((~st).astype(np.uint8), cv2.DIST_L2, 5) > reach + 1


def test_colour_eraser_takes_a_wedge_of_table_off_the_cup(cup):
    rgb, good = cup
    wedge = np.zeros(good.shape, np.uint8)
    cv2.fillPoly(wedge, [np.array([(0, 0), (260, 0), (150, 90), (0, 150)])], 1)
    wrong = good | (wedge > 0)  # the kind of table wedge the shipped cut keeps top left
    st = stroke(good.shape, [(20, 30), (200, 15), (40, 100)], 12)
    grown = colour_stroke(rgb, wrong, st, add=False, reach=48)
    fixed = apply(wrong, grown)
    assert iou(wrong, good) < 0.84
    assert iou(fixed, good) > 0.99  # measured 0.998
    assert np.count_nonzero(good & ~fixed) < 0.002 * good.sum()  # the saucer's rim is not eaten
    assert not np.any(fixed & ~wrong)  # an eraser never adds


def test_colour_brush_fills_the_saucer_near_its_stroke_and_nowhere_else(cup):
    rgb, good = cup
    hole = np.zeros(good.shape, bool)
    hole[150:350, 420:600] = True
    wrong = good & ~hole  # the saucer's right side dropped, as the shipped cut drops it
    st = stroke(good.shape, [(440, 220), (455, 290)], 8)
    grown = colour_stroke(rgb, wrong, st, add=True, reach=32)
    fixed = apply(wrong, grown)
    assert iou(fixed, good) > iou(wrong, good) + 0.04  # measured 0.923 -> 0.981
    assert np.count_nonzero(fixed & ~good) < 50  # no spill onto the table
    assert not np.any(wrong & ~fixed)  # a brush never removes
    far = beyond(st, 32)
    assert np.array_equal(fixed[far], wrong[far])  # nothing beyond the reach changes
    x0, y0, x1, y1 = grown[0]
    assert (x0, y0, x1, y1) == stroke_rect(st, 32)


def test_a_stroke_moves_the_mask_one_way_only_and_the_same_way_each_time():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)  # no colour story at all
    mask = rng.random((120, 160)) > 0.5
    st = stroke(mask.shape, [(40, 60), (110, 70)], 5)
    added = apply(mask, colour_stroke(rgb, mask, st, add=True, reach=20))
    removed = apply(mask, colour_stroke(rgb, mask, st, add=False, reach=20))
    assert not np.any(mask & ~added) and added[st].all()
    assert not np.any(removed & ~mask) and not removed[st].any()
    again = apply(mask, colour_stroke(rgb, mask, st, add=True, reach=20))
    assert np.array_equal(added, again)


def test_drawn_shapes_the_eraser_stops_at_the_object_edge():
    h, w = 200, 300
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (xx - 110) ** 2 + (yy - 100) ** 2 <= 60 ** 2
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (30, 60, 200)
    rgb[disc] = (210, 40, 30)
    rgb = np.clip(rgb.astype(np.int16) + np.random.default_rng(0).integers(-12, 13, rgb.shape), 0, 255).astype(
        np.uint8)  # a little grain, as in a photo
    wrong = disc | ((xx > 150) & (xx < 260) & (yy > 40) & (yy < 160))  # a block of background stuck to the disc
    st = stroke(disc.shape, [(200, 70), (230, 130)], 6)
    fixed = apply(wrong, colour_stroke(rgb, wrong, st, add=False, reach=60))
    assert np.count_nonzero(disc & ~fixed) <= 20  # the disc's edge kept to within a pixel here and there
    near = ~beyond(st, 60)
    assert np.count_nonzero(fixed & ~disc & near) < 0.02 * np.count_nonzero(wrong & ~disc & near)
    assert np.array_equal(fixed[~near], wrong[~near])  # the block's far corners are out of reach: left as they were


def test_bad_input_is_refused_and_an_empty_stroke_changes_nothing(cup):
    rgb, good = cup
    with pytest.raises(ValueError, match="differ in size"):
        colour_stroke(rgb, good[:100], np.zeros_like(good), add=True, reach=10)
    with pytest.raises(ValueError, match="reach"):
        colour_stroke(rgb, good, good, add=True, reach=0)
    with pytest.raises(ValueError, match="H×W×3"):
        colour_stroke(rgb[..., 0], good, good, add=True, reach=10)
    assert colour_stroke(rgb, good, np.zeros_like(good), add=True, reach=10) is None


def test_a_cropped_stroke_gives_the_same_answer_as_a_full_size_map(cup):
    """The app hands over only the stroke's bounding box (`origin=`); the answer must not depend on that."""
    rgb, good = cup
    wedge = np.zeros(good.shape, np.uint8)
    cv2.fillPoly(wedge, [np.array([(0, 0), (260, 0), (150, 90), (0, 150)])], 1)
    wrong = good | (wedge > 0)
    st = stroke(good.shape, [(20, 30), (200, 15), (40, 100)], 12)
    ys, xs = np.nonzero(st)
    for pad in (0, 7):  # a crop exactly round the stroke, and one with empty margins (the photo's edge clips it)
        x0, y0 = max(0, xs.min() - pad), max(0, ys.min() - pad)
        crop = st[y0:ys.max() + 1 + pad, x0:xs.max() + 1 + pad]
        assert crop.size < st.size / 4
        assert stroke_rect(crop, 48, (int(x0), int(y0)), st.shape) == stroke_rect(st, 48)
        whole = colour_stroke(rgb, wrong, st, add=False, reach=48)
        cropped = colour_stroke(rgb, wrong, crop, add=False, reach=48, origin=(int(x0), int(y0)))
        assert whole[0] == cropped[0]
        assert np.array_equal(whole[1], cropped[1])
    with pytest.raises(ValueError, match="does not fit"):
        colour_stroke(rgb, wrong, crop, add=False, reach=48, origin=(rgb.shape[1] - 10, 0))
    with pytest.raises(ValueError, match="does not fit"):
        colour_stroke(rgb, wrong, crop, add=False, reach=48, origin=(-1, 0))
