"""The app's Soft edges toggle: the band is drawn over the photo, and exports carry the matte (offscreen, real cut)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TIMEOUT = 120_000


@pytest.fixture(scope="module")
def shipped_cascade():
    """The shipped weights: tiny random ones doubt everywhere, which (rightly) leaves no band to solve."""
    from mos_studio.core.cascade import Cascade

    return Cascade.from_pretrained(Path(__file__).resolve().parents[2] / "models", device="cpu")


@pytest.fixture
def window(make_window, shipped_cascade):
    return make_window(lambda: shipped_cascade)


def _cut(window, photo, qtbot) -> None:
    assert window.open_path(photo)
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        assert window.run_cut()
    assert window.doc.has_mask and "H" in window.doc.stages


def test_soft_edges_toggle_shows_the_band_and_softens_exports(window, photo, tmp_path, qtbot, message_log):
    _cut(window, photo, qtbot)
    window.set_soft_edges(False)
    assert not window.canvas.band_shown and window.soft_band_px == 0
    before = window.canvas.grab().toImage()

    window.act_soft_edges.trigger()  # on, as the menu item or the toolbar button would
    assert window.act_soft_edges.isChecked() and window.settings.soft_edges()
    assert window.canvas.band_shown and window.soft_band_px > 0
    after = window.canvas.grab().toImage()
    diff = [(x, y) for x in range(0, after.width(), 7) for y in range(0, after.height(), 7)
            if after.pixel(x, y) != before.pixel(x, y)]
    assert diff, "the band overlay changed no pixel of the canvas"

    mask = window.doc.mask.copy()
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", tmp_path / "soft.png")
    assert "soft edges" in window.statusBar().currentMessage()
    soft = np.asarray(Image.open(tmp_path / "soft.png"))
    partial = (soft[..., 3] > 0) & (soft[..., 3] < 255)
    assert partial.any()  # partial transparency where H was unsure
    assert not np.array_equal(soft[..., 3], mask)
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("mask", tmp_path / "soft_mask.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "soft_mask.png")), soft[..., 3])

    window.act_soft_edges.trigger()  # off: the 0/255 mask, photo colours untouched, no band drawn
    assert not window.canvas.band_shown and not window.settings.soft_edges()
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", tmp_path / "hard.png")
    hard = np.asarray(Image.open(tmp_path / "hard.png"))
    assert np.array_equal(hard[..., 3], mask)
    assert np.array_equal(hard[..., :3][mask > 0], window.doc.rgb[mask > 0])
    assert not message_log.errors


def test_soft_edges_band_follows_mask_edits_and_needs_h(window, photo, qtbot):
    assert window.open_path(photo)
    window.set_soft_edges(True)
    window.canvas.paint_stroke([(60, 60), (200, 150)], radius=25)  # a painted mask: H never ran
    assert window.update_band() == 0 and not window.canvas.band_shown
    assert "no band" in window.statusBar().currentMessage()
    _cut(window, photo, qtbot)
    qtbot.waitUntil(lambda: window.canvas.band_shown, timeout=5000)  # recomputed after the result (debounced)
    first = window.soft_band_px
    window.canvas.paint_stroke([(20, 20), (300, 220)], radius=12)
    qtbot.waitUntil(lambda: window.soft_band_px != first, timeout=5000)
