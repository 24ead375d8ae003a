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
    # H's enlarged doubt is made once a cut, not after every stroke; a new cut makes it anew
    doubt = window.h_doubt()
    assert doubt is window.h_doubt() and doubt.shape == window.doc.mask.shape
    _cut(window, photo, qtbot)
    assert window.h_doubt() is not doubt


def test_soft_edge_brush_paints_a_band_that_exports_soft_without_any_cut(window, tmp_path, qtbot, message_log):
    """A hand-painted mask (H never ran, so no band of its own), Soft edges off: an S drag along the disc's blurred
    edge turns Soft edges on, shows the painted band, is one undo step, and the exported cut-out is soft there
    and nowhere far from it."""
    import cv2
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    from tests.app.conftest import make_photo

    rgb = cv2.GaussianBlur(make_photo(), (0, 0), 2.0)  # an edge a few pixels wide, as out-of-focus fur is
    path = tmp_path / "soft.png"
    Image.fromarray(rgb).save(path)
    assert window.open_path(path)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (xx - w * 0.45) ** 2 + (yy - h * 0.5) ** 2 <= (min(w, h) * 0.3) ** 2
    window.doc.replace_region((0, 0, w, h), disc.astype(np.uint8) * 255, "paint")
    window.set_soft_edges(False)
    canvas = window.canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_S)
    assert canvas.tool == "soft_brush"
    canvas.set_brush_radius(6)
    cx, cy, r = w * 0.45, h * 0.5, min(w, h) * 0.3
    arc = [(cx + r * np.cos(t), cy + r * np.sin(t)) for t in np.linspace(-2.4, -0.7, 12)]  # the disc's upper rim
    pts = [canvas.to_widget(QPointF(x, y)).toPoint() for x, y in arc]
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[0])
    for p in pts[1:]:
        QTest.mouseMove(canvas, p)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[-1])

    assert window.act_soft_edges.isChecked()  # the stroke is for the export: Soft edges came on
    painted = window.doc.soft_band > 0
    assert painted.sum() > 300 and np.array_equal(window.doc.mask > 0, disc)  # the mask itself is untouched
    assert window.doc.undo_stack.command(window.doc.undo_stack.count() - 1).text() == "Soft-edge brush"
    assert window.update_band() >= painted.sum() and window.canvas.band_shown
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", tmp_path / "out.png")
    a = np.asarray(Image.open(tmp_path / "out.png"))[..., 3]
    partial = (a > 10) & (a < 245)
    assert np.count_nonzero(partial & painted) > 100  # soft where painted...
    near = cv2.dilate(painted.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    rim = cv2.morphologyEx(disc.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((7, 7), np.uint8)) > 0
    assert not np.any(partial & ~near & ~rim)  # ...and elsewhere only in the thin band every edge gets
    true = cv2.GaussianBlur(disc.astype(np.float32), (0, 0), 2.0)  # the blurred edge's own coverage
    got = a.astype(np.float32) / 255.0
    assert np.abs(got - true)[painted].sum() < 0.6 * np.abs(disc - true)[painted].sum()  # closer to it than hard
    window.doc.undo_stack.undo()
    assert not window.doc.soft_band.any()
    assert window.update_band() == 0 and not message_log.errors
    window.doc.undo_stack.redo()
    assert window.doc.soft_band.any()
    window.act_clear_soft.trigger()  # Edit ▸ Clear soft-edge strokes, itself one undo step
    assert not window.doc.soft_band.any() and np.array_equal(window.doc.mask > 0, disc)
    assert window.doc.undo_stack.command(window.doc.undo_stack.count() - 1).text() == "Clear soft-edge strokes"
    window.doc.undo_stack.undo()
    assert np.array_equal(window.doc.soft_band > 0, painted)
