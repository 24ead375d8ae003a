"""Metrics on hand-made masks with values worked out by hand, and mBA against a loop implementation."""

import math

import cv2
import numpy as np
import pytest

from mos_studio.core import metrics as M


def disk(n=1000, r=300):
    m = np.zeros((n, n), np.uint8)
    cv2.circle(m, (n // 2, n // 2), r, 1, -1)
    return m.astype(bool)


def test_perfect_mask():
    g = disk()
    s = M.score_pair(g.astype(np.float32), g)
    assert s["iou"] == 1.0 and s["mba"] == 1.0 and s["mq"] == 1.0 and s["mae"] == 0.0
    assert s["s_measure"] == pytest.approx(1.0, abs=1e-6)


def test_radii_match_cascadepsp():
    assert M.boundary_radii(336, 336) == [1, 1, 1, 1, 1]
    assert M.boundary_radii(640, 480) == [1, 1, 2, 2, 3]
    assert M.boundary_radii(1920, 1080) == [1, 2, 4, 6, 8]
    assert M.boundary_radii(3840, 2160) == [1, 4, 8, 12, 16]


def test_eroded_disk_hurts_mba_far_more_than_iou():
    """Fig. 7c: a 2-px erosion on a 1000×1000 disk of radius 300."""
    g = disk()
    pred = cv2.erode(g.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))).astype(bool)
    s = M.score_pair(pred, g)
    # By hand: IoU ≈ (298/300)² = 0.9867. Bands have radii 1,2,3,4,5 (R = 6.67): the 2-px ring of misses lies in
    # every band; band widths ≈ 2r+1 → accuracies ≈ 1 − 2/3, 1 − 2/5, 1 − 2/7, 1 − 2/9, 1 − 2/11 → mBA ≈ 0.66.
    assert s["iou"] == pytest.approx((298 / 300) ** 2, abs=0.003)
    assert s["mba"] == pytest.approx(np.mean([1 - 2 / 3, 1 - 2 / 5, 1 - 2 / 7, 1 - 2 / 9, 1 - 2 / 11]), abs=0.06)
    assert (1 - s["mba"]) > 15 * (1 - s["iou"])
    # MQ = ½ body + ½ mBA with a perfect body.
    assert s["mq"] == pytest.approx(0.5 + 0.5 * s["mba"], abs=1e-12)


def test_missing_chunk_near_boundary_keeps_iou_high_but_lowers_mq():
    """Fig. 7d: a 40×40 bite out of the disk's edge."""
    g = disk()
    pred = g.copy()
    pred[480:520, 770:810] = False  # the edge is at x = 800
    s = M.score_pair(pred, g)
    removed = np.count_nonzero(g & ~pred)
    assert s["iou"] == pytest.approx(1 - removed / g.sum(), abs=1e-12)
    assert s["iou"] > 0.99
    assert s["mq"] < 0.995 and s["mq"] < s["iou"]  # MQ penalises the bite more than IoU does


def test_mq_identity_body_accuracy():
    rng = np.random.default_rng(3)
    g = disk(400, 120)
    pred = g ^ (rng.random(g.shape) < 0.02)
    m, q = M.mba(pred, g), M.mq(pred, g)
    bands = M.boundary_bands(g)
    body = float((pred == g)[~bands[-1]].mean())
    assert 2 * q - m == pytest.approx(body, abs=1e-12)


def _mba_loops(pred, gt):
    """Independent straightforward mBA: per radius, per pixel, look for a differing GT pixel inside the disk."""
    p, g = pred.astype(bool), gt.astype(bool)
    h, w = g.shape
    big_r = (w + h) / 300
    accs = []
    for i in range(5):
        r = 1 + int((big_r - 1) / 5 * i)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        offs = [(dy - r, dx - r) for dy in range(2 * r + 1) for dx in range(2 * r + 1) if k[dy, dx]]
        hit = total = 0
        for y in range(h):
            for x in range(w):
                vals = {g[y + dy, x + dx] for dy, dx in offs if 0 <= y + dy < h and 0 <= x + dx < w}
                if len(vals) == 2:  # dilation ≠ erosion: a band pixel
                    total += 1
                    hit += p[y, x] == g[y, x]
        accs.append(hit / total)
    return sum(accs) / len(accs)


@pytest.mark.parametrize(
    "seed, h, w, radii",
    [
        (0, 70, 90, [1, 1, 1, 1, 1]),
        (1, 110, 140, [1, 1, 1, 1, 1]),
        (2, 150, 190, [1, 1, 1, 1, 1]),
        # Long thin images keep the loops cheap while R = (w + h)/300 reaches the larger radii.
        (3, 40, 1400, [1, 1, 2, 3, 4]),
        (4, 1300, 60, [1, 1, 2, 3, 3]),
    ],
)
def test_mba_equals_loop_implementation(seed, h, w, radii):
    assert M.boundary_radii(w, h) == radii
    rng = np.random.default_rng(seed)
    g = np.zeros((h, w), np.uint8)
    n = max(4, max(h, w) // 100)
    for _ in range(n):
        cv2.circle(g, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, 25)), 1, -1)
    pred = g.copy()
    cv2.rectangle(pred, (int(rng.integers(0, w)), int(rng.integers(0, h))), (w // 2, h // 2), 1, -1)
    pred ^= (rng.random((h, w)) < 0.05).astype(np.uint8)
    assert M.mba(pred.astype(bool), g.astype(bool)) == pytest.approx(_mba_loops(pred, g), abs=1e-9)


def test_c_ipq_circle_and_comb():
    circle = disk(600, 250)
    comb = np.zeros((600, 600), bool)
    comb[:80, :] = True
    for x in range(0, 600, 30):
        comb[:, x : x + 10] = True
    c_circle, c_comb = M.c_ipq(circle), M.c_ipq(comb)
    assert c_circle == pytest.approx(1.0, abs=0.12)
    assert c_comb < 0.1 * c_circle
    assert math.isnan(M.c_ipq(np.zeros((10, 10), bool)))


def test_edge_cases_defined():
    empty, full = np.zeros((50, 60), bool), np.ones((50, 60), bool)
    assert M.iou(empty, empty) == 1.0 and M.iou(full, empty) == 0.0
    # No GT boundary: mBA and MQ fall back to the plain pixel accuracy.
    assert M.mba(empty, empty) == 1.0 and M.mq(full, empty) == 0.0
    assert M.s_measure(np.zeros((50, 60)), empty) == 1.0 and M.s_measure(np.ones((50, 60)), full) == 1.0
    with pytest.raises(ValueError, match="60×50"):
        M.score_pair(np.zeros((40, 60)), empty)
    assert M.binarize(np.array([128, 129], np.uint8)).tolist() == [False, True]


def test_s_measure_orders_predictions():
    g = disk(200, 60)
    good = cv2.GaussianBlur(g.astype(np.float32), (7, 7), 2)
    bad = np.roll(good, 40, axis=1)
    assert M.s_measure(good, g) > M.s_measure(bad, g) > 0


def test_aggregate_pools_iou():
    rows = [{"mae": 0, "s_measure": 1, "iou": 1.0, "mba": 1, "mq": 1, "intersection": 10, "union": 10},
            {"mae": 0, "s_measure": 1, "iou": 0.0, "mba": 1, "mq": 1, "intersection": 0, "union": 90}]
    agg = M.aggregate(rows)
    assert agg["iou"] == 0.5 and agg["iou_pooled"] == 0.1 and agg["n"] == 2


def test_error_split_tells_edge_placement_from_missed_parts():
    g = np.zeros((300, 300), bool)
    g[60:240, 60:240] = True
    shifted = np.zeros_like(g)
    shifted[61:241, 60:240] = True  # the whole edge one pixel off: thin errors only
    s = M.error_split(shifted, g)
    assert s["thick_px"] == 0 and s["thin_px"] == 2 * 180
    assert s["mba"] < 0.9 and s["mba_without_thin"] == 1.0 and s["iou_without_thin"] == 1.0
    assert s["mba_without_thick"] == s["mba"] and s["iou_without_thick"] == s["iou"]

    chunk = g.copy()
    chunk[60:100, 60:100] = False  # a 40-px corner missed: thick errors only
    s = M.error_split(chunk, g)
    assert s["thin_px"] == 0 and s["thick_px"] == 40 * 40
    assert s["mba_without_thick"] == 1.0 and s["mba_without_thin"] == s["mba"] < 1.0

    both = shifted.copy()
    both[150:200, 150:240] = False  # both kinds at once: each fix wins back only its own share
    s = M.error_split(both, g)
    assert s["thin_px"] > 0 and s["thick_px"] >= 50 * 79
    assert s["mba"] < s["mba_without_thin"] < 1.0 and s["mba"] < s["mba_without_thick"] < 1.0
    assert s["iou"] < s["iou_without_thick"] < 1.0


def test_stage_split_tells_l_errors_from_h_overrulings():
    g = np.zeros((100, 100), bool)
    g[20:80, 20:80] = True  # the object: 3,600 px
    low = g.copy()
    low[20:30, 20:80] = False  # L misses a strip (600 px) ...
    low[0:10, 0:10] = True  # ... and keeps a corner of background (100 px)
    full = low.copy()
    full[20:25, 20:80] = True  # H finds half the strip (300 px), still missing 300 px with L
    full[0:10, 0:10] = False  # H clears the corner
    full[70:80, 20:80] = False  # but drops a right strip of L's (600 px)
    full[90:95, 0:20] = True  # and adds background L had left out (100 px)
    s = M.stage_split(low.astype(np.float32), full.astype(np.float32), g.astype(np.float32))
    union = np.count_nonzero(full | g)
    assert s["both_missed"] == 300 / union and s["both_kept"] == 0.0
    assert s["h_dropped"] == 600 / union and s["h_added"] == 100 / union
    assert s["h_found"] == 300 / union and s["h_cleared"] == 100 / union
    assert s["both_missed"] + s["both_kept"] + s["h_dropped"] + s["h_added"] == pytest.approx(1 - s["iou"])
    assert s["iou"] == M.iou(full, g) and s["iou_low"] == M.iou(low, g)
    # H's wrong overrulings undone, its right ones kept: only the strip both missed is left.
    assert s["iou_if_h_right"] == pytest.approx(3300 / 3600)
    with pytest.raises(ValueError, match="ground truth"):
        M.stage_split(low[:50], full, g)


def test_error_split_checks_sizes():
    with pytest.raises(ValueError, match="ground truth"):
        M.error_split(np.zeros((4, 5), bool), np.zeros((5, 4), bool))
