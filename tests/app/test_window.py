"""Opening files (dialog path, drag-and-drop, command line, recent), export, settings and shortcuts."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

pytestmark = pytest.mark.gui
TIMEOUT = 120_000


def test_open_image_sets_document_title_and_recent(window, photo, qtbot):
    with qtbot.waitSignal(window.image_opened):
        assert window.open_path(photo)
    assert window.doc.rgb.shape == (240, 320, 3)
    assert np.array_equal(window.doc.rgb, np.asarray(Image.open(photo).convert("RGB")))
    assert photo.name in window.windowTitle() and "320×240" in window.windowTitle()
    assert window.settings.recent_files()[0] == str(photo.resolve())
    assert window.settings.last_open_dir() == str(photo.parent)
    window._fill_recent()
    assert any(photo.name in a.text() for a in window.recent_menu.actions())


def test_corrupt_file_shows_error_and_keeps_previous_document(window, photo, tmp_path, message_log):
    assert window.open_path(photo)
    window.canvas.paint_stroke([(40, 40), (80, 60)], radius=5)
    rgb, mask = window.doc.rgb, window.doc.mask.copy()
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    assert not window.open_path(bad)
    title, message, hint = message_log.errors[-1]
    assert title == "Cannot open image" and "broken.jpg" in message and hint
    assert window.doc.rgb is rgb and np.array_equal(window.doc.mask, mask)
    assert window.doc.path == photo and window.doc.undo_stack.count() == 1
    assert str(bad.resolve()) not in window.settings.recent_files()
    # a missing file and a text file are refused the same way
    assert not window.open_path(tmp_path / "nope.png")
    (tmp_path / "notes.png").write_text("not an image")
    assert not window.open_path(tmp_path / "notes.png")
    assert len(message_log.errors) == 3 and window.doc.rgb is rgb


def test_drag_and_drop_opens_the_file(window, photo, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.image_opened):
        window.dropEvent(event)
    assert window.doc.path == photo


def test_command_line_opens_the_photo(qtbot, photo, app_settings, tiny_models_dir):
    from mos_studio.app.main import build_window

    win = build_window([str(photo), "--models-dir", str(tiny_models_dir)], settings=app_settings, preload=False)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.image_opened, timeout=10_000):
        pass
    assert win.doc.path == photo and win.isVisible()


def test_command_line_cut_runs_once_the_photo_has_opened(qtbot, photo, app_settings, tiny_models_dir):
    from mos_studio.app.main import build_window

    win = build_window([str(photo), "--cut", "--models-dir", str(tiny_models_dir)], settings=app_settings,
                       preload=False)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.result_applied, timeout=60_000) as applied:
        pass
    assert applied.args[0].kind == "cut" and win.doc.path == photo
    assert win.doc.undo_stack.count() == 1 and win.doc.undo_stack.text(0) == "Cut out"
    assert len(win.doc.stages["L"].stages) == 7  # the cascade really ran on the opened photo


def test_export_cutout_png_alpha_equals_mask(window, photo, tmp_path, qtbot, message_log):
    assert window.open_path(photo)
    window.canvas.paint_stroke([(60, 60), (200, 150)], radius=25)
    mask = window.doc.mask.copy()
    out = tmp_path / "out" / "cut.png"
    out.parent.mkdir()
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", out)
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        arr = np.asarray(im)
    assert np.array_equal(arr[..., 3], mask)
    assert np.array_equal(arr[..., :3][mask > 0], window.doc.rgb[mask > 0])
    assert window.settings.last_export_dir() == str(out.parent)

    # mask PNG and composite on the chosen colour
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        window.export_to("mask", tmp_path / "mask.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "mask.png").convert("L")), mask)
    from PySide6.QtGui import QColor

    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        window.export_to("composite", tmp_path / "comp.png", color=QColor(0, 0, 255))
    comp = np.asarray(Image.open(tmp_path / "comp.png").convert("RGB"))
    assert (comp[mask == 0] == (0, 0, 255)).all()
    assert not message_log.errors


def test_a_16_bit_photos_cutout_is_exported_at_16_bits(window, tmp_path, qtbot, message_log):
    import cv2

    rng = np.random.default_rng(7)
    deep = (rng.random((120, 160, 3)) * 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", deep[..., ::-1])
    src = tmp_path / "deep.png"
    src.write_bytes(buf.tobytes())
    assert window.open_path(src) and window.doc.depth == 16
    window.canvas.paint_stroke([(40, 40), (120, 80)], radius=20)
    window.set_soft_edges(False)
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", tmp_path / "cut.png")
    cut = cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED)
    assert cut.dtype == np.uint16 and np.array_equal(cut[..., 3] == 65535, window.doc.mask == 255)
    whole = window.doc.mask == 255
    assert np.array_equal(cut[..., 2::-1][whole], deep[whole])
    assert "16 bits per channel" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):  # a JPEG composite stays 8-bit, as JPEG is
        assert window.export_to("composite", tmp_path / "comp.jpg")
    assert not message_log.errors


def test_export_asks_before_overwriting_and_never_touches_the_input(window, photo, tmp_path, qtbot, message_log):
    assert window.open_path(photo)
    window.canvas.paint_stroke([(60, 60)], radius=20)
    target = tmp_path / "exists.png"
    target.write_bytes(b"keep me")
    message_log.overwrite_answer = False
    assert not window.export_to("cutout", target)
    assert message_log.overwrite_questions == [str(target)] and target.read_bytes() == b"keep me"
    message_log.overwrite_answer = True
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", target)
    assert Image.open(target).mode == "RGBA"
    # the photo itself is protected even when the user says yes
    original = photo.read_bytes()
    with qtbot.waitSignal(window.exporter.failed, timeout=TIMEOUT):
        window.export_to("cutout", photo)
    assert photo.read_bytes() == original and message_log.errors[-1][0] == "Export failed"


def test_export_of_an_empty_mask_explains_what_to_do(window, photo, tmp_path, message_log):
    assert window.open_path(photo)
    assert not window.export_to("cutout", tmp_path / "x.png")
    assert message_log.errors[-1][0] == "Nothing to export" and not (tmp_path / "x.png").exists()


def test_settings_persist_between_sessions(make_window, tiny_loader, app_settings):
    win = make_window(tiny_loader)
    win.canvas.set_brush_radius(37)
    win.canvas.set_overlay("checker")
    win.opacity_slider.setValue(70)
    win.canvas.set_tool("erase")
    win.close()
    again = make_window(tiny_loader, settings=type(app_settings).from_file(app_settings.q.fileName()))
    assert again.canvas.brush_radius == 37 and again.brush_spin.value() == 37
    assert again.canvas.overlay == "checker" and again.overlay_combo.currentData() == "checker"
    assert again.canvas.opacity == pytest.approx(0.7)
    assert again.canvas.tool == "erase" and again.tool_actions["erase"].isChecked()


def test_every_tool_has_a_unique_shortcut_listed_in_help(window):
    rows = window.shortcut_rows()
    names = {r[1] for r in rows}
    for act in window.tool_group.actions():
        assert act.text().replace("&", "") in names
    for act in (window.act_open, window.act_cut, window.act_cancel, window.act_undo, window.act_redo,
                window.act_export_cutout, window.act_overlay, window.act_fit, window.act_inspector):
        assert act.shortcuts(), act.text()
    keys = [k for r in rows for k in r[2].split(", ") if "mouse" not in k.lower() and "wheel" not in k.lower()]
    assert len(keys) == len(set(keys)), "two actions share a shortcut"
    dlg = window.show_shortcuts()
    from PySide6.QtWidgets import QTableWidget

    table = dlg.findChild(QTableWidget)
    assert table.rowCount() == len(rows)
    dlg.close()


def test_tool_shortcuts_switch_tools(window, qtbot, make_photo):
    window.doc.set_image(make_photo(), path="photo.png")
    window.canvas.setFocus()
    for key, tool in ((Qt.Key.Key_X, "box"), (Qt.Key.Key_R, "refine_rect"), (Qt.Key.Key_L, "refine_lasso"),
                      (Qt.Key.Key_H, "pan"), (Qt.Key.Key_E, "erase"), (Qt.Key.Key_W, "colour_brush"),
                      (Qt.Key.Key_S, "soft_brush"),
                      (Qt.Key.Key_B, "brush")):
        qtbot.keyClick(window.canvas, key)
        assert window.canvas.tool == tool
        if tool in ("colour_brush", "soft_brush"):  # the newer tools say what they do
            assert window.statusBar().currentMessage().startswith(("Colour brush:", "Soft-edge brush:"))


def test_open_in_background_keeps_only_the_latest_request(window, photo, tmp_path, qtbot, message_log, make_photo):
    second = tmp_path / "second.png"
    Image.fromarray(make_photo(200, 150)).save(second)
    opened = []
    window.image_opened.connect(opened.append)
    window.open_async(photo)
    window.open_async(second)  # asked for before the first one finished decoding
    qtbot.waitUntil(lambda: not window.opener.busy, timeout=TIMEOUT)
    qtbot.wait(20)
    assert opened == [str(second)] and window.doc.rgb.shape == (150, 200, 3)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 50)
    window.open_async(bad)
    qtbot.waitUntil(lambda: bool(message_log.errors), timeout=TIMEOUT)
    assert "bad.tif" in message_log.errors[-1][1] and window.doc.path == second


def test_reopening_an_exported_cutout_restores_its_alpha_as_the_mask(window, photo, tmp_path, qtbot):
    assert window.open_path(photo)
    window.canvas.paint_stroke([(80, 80), (220, 160)], radius=30)
    mask = window.doc.mask.copy()
    out = tmp_path / "cut.png"
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        window.export_to("cutout", out)
    assert window.open_path(out)
    assert np.array_equal(window.doc.mask, mask)
    assert window.doc.undo_stack.undoText() == "Mask from the file's alpha"
    window.doc.undo_stack.undo()
    assert not window.doc.mask.any()
    assert window.open_path(photo) and not window.doc.mask.any()  # an opaque photo starts with an empty mask
