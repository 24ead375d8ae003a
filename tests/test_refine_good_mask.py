"""`mos refine` must not make a good mask worse (issue 13): a committed photo/mask pair through the real CLI and
the shipped H.

Unguarded, round 1's H failed this: it moved a right edge. The refine guards (CascadeConfig) keep a right mask
right; with round 2's Lite0 H a nearly right one also gets better (the issue's bar for H alone, checked below on
four perturbations of the pair).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mos_studio.cli.main import main
from mos_studio.core.metrics import iou, mba
from training.data.perturb import perturb_mask

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "resources" / "samples" / "sample.jpg"
GOOD = REPO / "tests" / "data" / "refine_good" / "sample_mask.png"



def _good() -> np.ndarray:
    return np.array(Image.open(GOOD)) > 127


def _refine(tmp_path: Path, given: np.ndarray, name: str = "0") -> np.ndarray:
    src = tmp_path / f"given_{name}.png"
    Image.fromarray(given.astype(np.uint8) * 255).save(src)
    out = tmp_path / f"refined_{name}.png"  # one file per call: `mos refine` rightly refuses to overwrite
    assert main(["refine", str(PHOTO), str(src), "-o", str(out), "--alpha", "hard", "--threads", "1"]) == 0
    return np.array(Image.open(out)) > 127


def test_pair_is_a_good_mask() -> None:
    good = _good()
    assert good.shape == (400, 600) and 0.3 < good.mean() < 0.7  # the cup, saucer and spoon


def test_refine_leaves_a_right_mask_alone(tmp_path: Path) -> None:
    """Measured with stop 18's H: IoU 0.9999, mBA 0.996 with the guards (global pass only, sure answers, near the
    edge). Round 1's H unguarded gave 0.973 and 0.62."""
    good = _good()
    refined = _refine(tmp_path, good)
    assert iou(refined, good) >= 0.995
    assert mba(refined, good) >= 0.95


def test_refine_improves_nearly_right_masks_on_average(tmp_path: Path) -> None:
    """The issue's bar for H alone: mean mBA after >= before, and no IoU lower by more than 0.005.

    Measured with stop 18's Lite0 H (guards on): mBA 0.615 -> 0.619 over the 4 perturbations, IoU never lower (it rose
    by 0.004 to 0.010). Until stop 17 this carried a strict xfail for round 1's H, which also hid that the loop's second
    `mos refine` refused to overwrite the first one's output (fixed: one output file per call)."""
    good = _good()
    before, after = [], []
    for seed in range(4):
        given = perturb_mask(good.astype(np.float32), np.random.default_rng(seed), (0.95, 0.99)) > 0.5
        refined = _refine(tmp_path, given, str(seed))
        assert iou(refined, good) >= iou(given, good) - 0.005
        before.append(mba(given, good))
        after.append(mba(refined, good))
    assert np.mean(after) >= np.mean(before)


def test_refine_takes_only_what_h_is_sure_of() -> None:
    from mos_studio.core.cascade import keep_unless_sure

    given = np.array([[1.0, 1.0, 0.0, 0.0]], np.float32)
    refined = np.array([[0.05, 0.4, 0.6, 0.97]], np.float32)
    assert np.allclose(keep_unless_sure(given, refined, 0.9), [[0.05, 1.0, 0.0, 0.97]])
    # A feathered given mask: its soft pixels need soft_confidence, its sure ones the plain confidence.
    given = np.array([[1.0, 0.6, 0.3, 0.0]], np.float32)
    refined = np.array([[0.1, 0.1, 0.95, 0.85]], np.float32)
    assert np.allclose(keep_unless_sure(given, refined, 0.8, 0.97), [[0.1, 0.6, 0.3, 0.85]])
    assert np.allclose(keep_unless_sure(given, refined, 0.8), [[0.1, 0.1, 0.95, 0.85]])


def test_refine_band_keeps_far_pixels_and_lets_the_edge_move() -> None:
    from mos_studio.core.cascade import keep_near_edge

    given = np.zeros((200, 200), np.float32)
    given[50:150, 50:150] = 1.0
    refined = given.copy()
    refined[95:105, 95:105] = 0.0  # a hole deep inside: H must not eat the user's object
    refined[5:15, 180:190] = 1.0  # a blob far outside
    refined[50:150, 150:154] = 1.0  # the right edge grown by 4 px: within the band, taken
    out = keep_near_edge(given, refined, band_px=10.0)
    assert out[100, 100] == 1.0 and out[10, 185] == 0.0
    assert np.all(out[50:150, 150:154] == 1.0)
    corner = refined[:8, :8]
    assert keep_near_edge(np.zeros((8, 8), np.float32), corner, 4.0) is corner  # no edge: nothing to keep
