"""`core.colour.colour_band` and the cascade's `l_colour_mix`: L's unsure band re-decided by colour."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mos_studio.core.cascade import Cascade
from mos_studio.core.colour import ASSIST_MIX, assist_mix, colour_band
from mos_studio.core.weights import weights_path

ROOT = Path(__file__).resolve().parents[1]


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A red disc on brown wood (noisy, as a photo is), L sure of most of both, wrong by a little on two strips."""
    rng = np.random.default_rng(3)
    h, w = 240, 320
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = (150, 100, 60)  # wood
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 120) ** 2 + (xx - 160) ** 2 < 90**2
    rgb[disc] = (190, 30, 30)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    prob = np.where(disc, 0.95, 0.05).astype(np.float32)
    missed = disc & (xx > 210)  # part of the disc L puts just below 0.5
    kept = ~disc & (yy < 40) & (xx < 80)  # a patch of wood L puts just above it
    prob[missed] = 0.4
    prob[kept] = 0.6
    return rgb, prob, missed, kept


def test_colour_band_moves_the_unsure_band_towards_the_colours_it_matches() -> None:
    rgb, prob, missed, kept = _scene()
    out = colour_band(rgb, prob, 0.5)
    assert out.dtype == np.float32 and out.shape == prob.shape
    assert np.median(out[missed]) > 0.6 and (out[missed] > 0.5).mean() > 0.95  # the red strip joins the disc
    assert np.median(out[kept]) < 0.4 and (out[kept] < 0.5).mean() > 0.95  # the wood patch leaves it
    sure = (prob <= 0.1) | (prob >= 0.9)
    inner = cv2.erode(sure.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # away from the band's blur
    assert np.array_equal(out[inner], prob[inner])  # what L is sure of is not touched
    # mix = 1 goes all the way to the label; mix = 0 changes nothing.
    assert (colour_band(rgb, prob, 1.0)[missed] > 0.95).mean() > 0.95
    assert np.array_equal(colour_band(rgb, prob, 0.0), prob)


def test_colour_band_leaves_a_map_without_two_sure_sides_alone() -> None:
    rgb, prob, _, _ = _scene()
    nothing_sure = np.clip(prob, 0.3, 0.7)  # no colours to learn either side from
    assert np.array_equal(colour_band(rgb, nothing_sure), nothing_sure)
    no_background = np.maximum(prob, 0.5)
    assert np.array_equal(colour_band(rgb, no_background), no_background)
    with pytest.raises(ValueError, match="differ in size"):
        colour_band(rgb, prob[:100])


def test_l_colour_mix_from_the_card_fixes_the_sample_cups_wrong_side(tmp_path) -> None:
    """The shipped L on `make run`'s cup: a wedge of table just above 0.5, part of the saucer just below. With
    `inference.l_colour_mix` in L's card the cascade reads it, and run_low moves both to the right side."""
    models = tmp_path / "models"
    models.mkdir()
    for stage in ("L", "H", "Hs"):
        src = weights_path(ROOT / "models", "efficientnet_lite0", stage)
        for f in (src, src.with_suffix(".json")):
            (models / f.name).write_bytes(f.read_bytes())
    (models / "default.json").write_bytes((ROOT / "models" / "default.json").read_bytes())
    card_file = weights_path(models, "efficientnet_lite0", "L").with_suffix(".json")
    card = json.loads(card_file.read_text())
    rgb = cv2.cvtColor(cv2.imread(str(ROOT / "resources" / "samples" / "sample.jpg")), cv2.COLOR_BGR2RGB)

    plain = Cascade.from_pretrained(models, device="cpu")
    assert plain.config.l_colour_mix == 0.0  # off in the shipped card
    before, _ = plain.run_low(rgb)
    card["inference"]["l_colour_mix"] = 0.5
    card_file.write_text(json.dumps(card))
    cascade = Cascade.from_pretrained(models, device="cpu")
    assert cascade.config.l_colour_mix == 0.5
    after, _ = cascade.run_low(rgb)
    h, w = before.shape
    yy, xx = np.mgrid[:h, :w]
    wedge = (xx < 0.3 * w) & (yy < 0.4 * h) & (before > 0.5) & (before < 0.9)
    saucer = (xx > 0.6 * w) & (xx < 0.9 * w) & (yy > 0.3 * h) & (yy < 0.95 * h) & (before > 0.1) & (before < 0.5)
    assert wedge.sum() > 2000 and saucer.sum() > 2000  # the shipped L's mistakes are there to fix
    assert np.median(after[wedge]) < 0.45 and np.median(after[saucer]) > 0.55
    # A value out of range in the card is ignored.
    card["inference"]["l_colour_mix"] = 2.0
    card_file.write_text(json.dumps(card))
    assert Cascade.from_pretrained(models, device="cpu").config.l_colour_mix == 0.0


def test_assist_mix_turns_the_card_on_and_off() -> None:
    """Colour assist: None keeps the card's amount, off is 0 whatever the card says, on keeps a card's own amount
    and otherwise takes the default."""
    assert assist_mix(0.0, None) == 0.0 and assist_mix(0.3, None) == 0.3
    assert assist_mix(0.3, False) == 0.0
    assert assist_mix(0.0, True) == ASSIST_MIX == 0.5 and assist_mix(0.3, True) == 0.3


def test_colour_band_is_the_same_whatever_ran_before() -> None:
    """GrabCut's k-means start draws on OpenCV's RNG: a cut must not depend on what used it before. Random colours
    and a random map, where the start decides (unseeded, the two calls differ by 0.5 somewhere)."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    prob = rng.random((120, 160)).astype(np.float32)
    first = colour_band(rgb, prob)
    cv2.kmeans(np.random.default_rng(0).random((50, 3), np.float32), 3, None,
               (cv2.TERM_CRITERIA_MAX_ITER, 5, 1.0), 2, cv2.KMEANS_RANDOM_CENTERS)  # moves the RNG on
    assert np.array_equal(colour_band(rgb, prob), first)
