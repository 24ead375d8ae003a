"""Cut-outs through the worker thread with real tiny models: finish, cancel, stale results, region merges, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mos_studio.app.inference import default_loader
from mos_studio.app.window import region_mask

pytestmark = pytest.mark.gui
TIMEOUT = 120_000


def test_open_then_cut_out_runs_in_background_and_fills_mask_and_stages(window, qtbot, photo):
    doc = window.doc
    assert window.open_path(photo)
    progress = []
    window.controller.progress.connect(lambda stage, f: progress.append(stage))
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        assert window.run_cut()
        assert window.progress.isVisible() and window.cancel_button.isVisible()
        assert not window.act_cut.isEnabled()
    assert "L" in progress and any(s.startswith("H") for s in progress)
    assert doc.mask.shape == (240, 320) and set(np.unique(doc.mask)) <= {0, 255}
    assert doc.probability.shape == (240, 320)
    for net in ("L", "H"):
        names = [s.name for s in doc.stages[net].stages]
        assert names == ["S8_0", "S8_1", "S8_2", "S4_2", "S8_3", "S4_3", "S2_3"]
    assert doc.undo_stack.count() == 1 and doc.undo_stack.undoText() == "Cut out"
    assert "CPU" in window.device_label.text()
    assert not window.progress.isVisible() and window.act_cut.isEnabled()
    status = window.statusBar().currentMessage()  # the time, and which tools fix a wrong patch or subject
    assert status.startswith("Done in") and "Shift+W" in status and "(X)" in status
    # the inspector shows every map; a click shows it over the image, a second click hides it
    thumb = window.inspector.thumbs[("H", 3, "uncertainty")]
    assert thumb._image is not None
    thumb.clicked.emit()
    assert window.canvas._stage is not None and "S4_2" in window.canvas.stage_label
    thumb.clicked.emit()
    assert window.canvas._stage is None


def test_ui_stays_responsive_while_cutting(make_window, slow_cascade, qtbot, make_photo):
    win = make_window(lambda: slow_cascade)
    win.doc.set_image(make_photo(), path="photo.png")
    with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
        win.run_cut()
        qtbot.waitUntil(slow_cascade.running.is_set, timeout=TIMEOUT)
        scale = win.canvas.scale
        win.act_zoom_in.trigger()  # handled by the GUI thread while the worker runs
        win.canvas.pan_by(10, 5)
        win.canvas.repaint()
        assert win.canvas.scale == pytest.approx(scale * 1.25)
        assert win.controller.busy
    assert win.doc.mask.shape == (240, 320)


def test_cancel_mid_run_changes_nothing(make_window, slow_cascade, qtbot, make_photo):
    win = make_window(lambda: slow_cascade)
    win.doc.set_image(make_photo(), path="photo.png")
    win.canvas.paint_stroke([(50, 50), (90, 60)], radius=6)
    before = win.doc.mask.copy()
    with qtbot.waitSignal(win.controller.cancelled, timeout=TIMEOUT):
        win.run_cut()
        qtbot.waitUntil(slow_cascade.running.is_set, timeout=TIMEOUT)
        assert win.act_cancel.isEnabled()
        win.act_cancel.trigger()
    assert slow_cascade.reports and "done" not in slow_cascade.reports  # stopped before the end
    assert np.array_equal(win.doc.mask, before) and win.doc.undo_stack.count() == 1
    assert not win.controller.busy and win.act_cut.isEnabled() and not win.cancel_button.isVisible()


def test_stale_result_after_undo_is_dropped(window, qtbot, make_photo):
    doc = window.doc
    doc.set_image(make_photo(), path="photo.png")
    window.canvas.paint_stroke([(100, 100), (150, 130)], radius=10)
    with qtbot.waitSignal(window.result_dropped, timeout=TIMEOUT):
        assert window.run_cut()
        doc.undo_stack.undo()  # an edit while the job runs: its result is now stale
    assert not doc.mask.any()  # the undo stands; the late cut did not overwrite it
    assert doc.undo_stack.index() == 0 and doc.undo_stack.count() == 1
    assert window.dropped_results == 1 and not doc.stages
    # a fresh run after the edit applies normally
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        window.run_cut()
    assert doc.undo_stack.undoText() == "Cut out"


def test_region_refine_touches_only_pixels_inside_rectangle(window, qtbot, make_photo):
    doc = window.doc
    doc.set_image(make_photo(), path="photo.png")
    doc.replace_region((60, 40, 260, 200), np.full((160, 200), 255, np.uint8), "start")
    before = doc.mask.copy()
    rect = (100, 60, 220, 180)
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        assert window.run_refine(rect)
    changed = doc.mask != before
    outside = np.ones_like(changed)
    outside[60:180, 100:220] = False
    assert not changed[outside].any()
    assert changed.any()  # H really rewrote part of the region
    assert doc.stages["H"].extent == rect
    assert doc.undo_stack.undoText() == "Re-refine region"
    doc.undo_stack.undo()
    assert np.array_equal(doc.mask, before)


def test_lasso_refine_touches_only_pixels_inside_the_lasso(window, qtbot, make_photo):
    doc = window.doc
    doc.set_image(make_photo(), path="photo.png")
    doc.replace_region((0, 0, 320, 240), np.full((240, 320), 255, np.uint8), "all")
    before = doc.mask.copy()
    tri = np.array([(60, 200), (160, 30), (270, 210)], np.float32)
    rect = (60, 30, 271, 211)
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        assert window.run_refine(rect, tri)
    changed = doc.mask != before
    assert changed.any()
    # independent inside test (barycentric sign tests) with half a pixel of tolerance for the rasteriser
    ys, xs = np.nonzero(changed)
    p = np.stack([xs, ys], 1).astype(np.float64)

    def side(a, b):
        d = b - a
        return ((p[:, 0] - a[0]) * d[1] - (p[:, 1] - a[1]) * d[0]) / np.hypot(*d)

    sides = np.stack([side(tri[0], tri[1]), side(tri[1], tri[2]), side(tri[2], tri[0])], 1)
    inside = (sides <= 1.0).all(1) | (sides >= -1.0).all(1)
    assert inside.all()
    assert np.array_equal(changed & ~region_mask((0, 0, 320, 240), tri), np.zeros_like(changed))


def test_box_prompt_segments_only_inside_the_box(window, qtbot, make_photo):
    doc = window.doc
    doc.set_image(make_photo(), path="photo.png")
    box = (70, 40, 220, 200)
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        window.canvas.box_drawn.emit(box)
    outside = np.ones(doc.mask.shape, bool)
    outside[40:200, 70:220] = False
    assert not doc.mask[outside].any()
    assert doc.stages["L"].extent == box
    assert doc.stages["H"].extent == box  # H refined only the box: its maps are drawn over the box, not the photo
    h_maps = doc.stages["H"].stages
    assert h_maps[-1].prediction.shape[1] / h_maps[-1].prediction.shape[0] == pytest.approx(150 / 160, rel=0.1)
    assert doc.undo_stack.undoText() == "Box prompt"


def test_missing_weights_shows_what_to_do(make_window, qtbot, tmp_path, message_log, make_photo):
    empty = tmp_path / "no_models"
    empty.mkdir()
    win = make_window(default_loader(empty))
    win.doc.set_image(make_photo(), path="photo.png")
    with qtbot.waitSignal(win.controller.failed, timeout=TIMEOUT):
        win.run_cut()
    title, message, hint = message_log.errors[-1]
    assert title == "No trained weights"
    assert f"No trained weights found in {empty}" in message and "README" in message
    assert "meticulousnet_mobile_L.safetensors" in hint
    assert not win.doc.mask.any() and win.act_cut.isEnabled()


def test_out_of_memory_is_a_message_not_a_crash(make_window, qtbot, message_log, tiny_cascade, make_photo):
    class Exhausted:
        device_name = tiny_cascade.device_name

        def __call__(self, image, **kwargs):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    win = make_window(lambda: Exhausted())
    win.doc.set_image(make_photo(), path="photo.png")
    with qtbot.waitSignal(win.controller.failed, timeout=TIMEOUT):
        win.run_cut()
    title, message, hint = message_log.errors[-1]
    assert title == "Out of memory" and "box" in hint.lower()
    assert win.act_cut.isEnabled()


def test_preload_shows_the_device(make_window, tiny_loader, qtbot):
    win = make_window(tiny_loader)
    with qtbot.waitSignal(win.controller.device_ready, timeout=TIMEOUT):
        win.controller.preload()
    assert win.device_label.text().startswith("Device: CPU")


def test_cpu_only_switch_reloads_on_the_chosen_device(qtbot, app_settings, tiny_models_dir, make_photo):
    from mos_studio.app.window import MainWindow
    from mos_studio.core.cascade import Cascade, CascadeConfig

    asked = []

    def loader_for_device(device):
        def load():
            asked.append(device)
            return Cascade.from_pretrained(models_dir=tiny_models_dir, device=device,
                                           config=CascadeConfig(l_size=128, global_size=320))
        return load

    win = MainWindow(app_settings, preload=False, loader_for_device=loader_for_device)
    qtbot.addWidget(win)
    win.show()
    assert win.act_cpu_only.isEnabled() and not win.act_cpu_only.isChecked()
    with qtbot.waitSignal(win.controller.device_ready, timeout=TIMEOUT) as ready:
        win.act_cpu_only.trigger()
    assert asked == ["cpu"] and ready.args[0].startswith("CPU")
    assert app_settings.cpu_only() and win.device_label.text().startswith("Device: CPU")
    win.doc.set_image(make_photo(), path="photo.png")
    with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
        win.run_cut()
    assert asked == ["cpu"]  # the loaded cascade is reused
    with qtbot.waitSignal(win.controller.device_ready, timeout=TIMEOUT):
        win.act_cpu_only.trigger()
    assert asked == ["cpu", None] and not app_settings.cpu_only()


def test_inspector_names_the_small_photo_h_when_it_refined_the_cut(make_window, tiny_models_dir, qtbot, make_photo):
    """A researcher reading H's maps must know which weights made them: a cut of a small photo runs H's
    small-photo weights (when shipped); a region re-refine runs the large-photo H, and the tab says so."""
    from mos_studio.core.cascade import Cascade, CascadeConfig
    from mos_studio.core.testing import tiny_models

    base = Cascade.from_pretrained(models_dir=tiny_models_dir, device="cpu")
    cascade = Cascade(base.l_model, base.h_model, device="cpu", config=CascadeConfig(l_size=128, global_size=320),
                      h_small_model=tiny_models(2)[1])
    win = make_window(lambda: cascade)
    win.doc.set_image(make_photo(), path="photo.png")
    with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
        assert win.run_cut()
    assert win.doc.stages["H"].weights == "Hs"
    assert win.inspector.tabs.tabText(1) == "H — refiner (small-photo weights)"
    assert "small photos" in win.inspector.tabs.tabToolTip(1)
    assert win.inspector.tabs.tabText(0) == "L — segmenter"
    with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
        assert win.run_refine((40, 40, 200, 160))
    assert win.doc.stages["H"].weights == "H" and win.inspector.tabs.tabText(1) == "H — refiner"


def test_edge_snap_switch_follows_the_card_and_turns_it_off(make_window, tiny_models_dir, qtbot, make_photo,
                                                           app_settings):
    """Segment ▸ Snap edges to the photo: on, a cut and a region re-refine run the card's edge snap (here a card
    radius of 8 set on a fresh tiny cascade); off, neither does; the choice is remembered."""
    from mos_studio.core.cascade import Cascade, CascadeConfig

    cascade = Cascade.from_pretrained(models_dir=tiny_models_dir, device="cpu",
                                      config=CascadeConfig(l_size=128, global_size=320, edge_radius=8))
    win = make_window(lambda: cascade)
    win.doc.set_image(make_photo(), path="photo.png")
    assert win.act_edge_snap.isChecked()  # default on: as the card says
    seen = []
    win.controller.finished.connect(lambda res: seen.append("edges" in res.timings))
    for on in (True, False, True):
        win.set_edge_snap(on)
        with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
            assert win.run_cut()
        with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
            assert win.run_refine((60, 40, 220, 180))
    assert seen == [True, True, False, False, True, True]
    win.act_edge_snap.trigger()  # off, as the menu item would
    assert not win.act_edge_snap.isChecked() and not app_settings.edge_snap()
    assert cascade.config.edge_radius == 8  # the last job ran with the card's value
