"""The HierPR maps written as files from the real window: the inspector's Save maps… and File ▸ Export stage maps."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtWidgets import QFileDialog

TIMEOUT = 60_000


def cut(window, qtbot, photo) -> None:
    assert window.open_path(photo)
    assert not window.inspector.save_button.isEnabled() and not window.act_export_stages.isEnabled()
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        assert window.run_cut()


def test_save_maps_writes_the_sheet_and_the_arrays(window, qtbot, photo, tmp_path, monkeypatch, message_log):
    cut(window, qtbot, photo)
    assert window.inspector.save_button.isEnabled() and window.act_export_stages.isEnabled()
    target = tmp_path / "maps.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "PNG sheet (*.png)")))
    window.inspector.save_button.click()  # the button, as the user presses it
    sheet = np.asarray(Image.open(target).convert("RGB"))
    assert sheet.shape[0] > 4 * 100 and sheet.std() > 10  # two networks, two rows each, not blank
    arrays = np.load(tmp_path / "maps.npz")
    for net in ("L", "H"):
        stage_set = window.doc.stages[net]
        for view in stage_set.stages:
            got = arrays[f"{net}/{view.name}/prediction"]
            assert got.shape == view.prediction.shape and np.allclose(got, view.prediction)
            assert np.allclose(arrays[f"{net}/{view.name}/uncertainty"], view.uncertainty)
    assert "maps.npz" in window.statusBar().currentMessage()
    # again: it asks before replacing, and a "no" leaves the files as they were
    before = target.stat().st_mtime_ns
    message_log.overwrite_answer = False
    assert not window.export_stages_to(target)
    assert message_log.overwrite_questions and "maps.png" in message_log.overwrite_questions[-1]
    assert target.stat().st_mtime_ns == before


def test_a_stretched_sheet_and_a_box_prompts_region(window, qtbot, photo, tmp_path):
    cut(window, qtbot, photo)
    plain = tmp_path / "plain.png"
    assert window.export_stages_to(plain)
    window.inspector.stretch.setChecked(True)
    stretched = tmp_path / "stretched.png"
    assert window.export_stages_to(stretched)
    from mos_studio.core.stages import stage_montage

    maps = {net: s.stages for net, s in window.doc.stages.items()}
    a = np.asarray(Image.open(plain).convert("RGB"))
    b = np.asarray(Image.open(stretched).convert("RGB"))
    assert np.array_equal(a, stage_montage(maps)) and np.array_equal(b, stage_montage(maps, stretch=True))
    assert not np.array_equal(a, b)  # the box ticked in the inspector is what the sheet shows
    with qtbot.waitSignal(window.result_applied, timeout=TIMEOUT):
        assert window.run_box((40, 30, 260, 210))
    boxed = tmp_path / "box.png"
    assert window.export_stages_to(boxed)
    arrays = np.load(tmp_path / "box.npz")
    x0, y0, x1, y1 = arrays["H/region"]
    assert x0 <= 40 and y0 <= 30 and x1 >= 260 and y1 >= 210  # H saw the box and what lies around it


def test_an_unwritable_place_is_an_error_message(window, qtbot, photo, tmp_path, message_log):
    cut(window, qtbot, photo)
    assert not window.export_stages_to(tmp_path / "no_such_folder" / "maps.png")
    assert message_log.errors and message_log.errors[-1][0] == "Export failed"
    assert "does not exist" in message_log.errors[-1][1]
    assert not window.export_stages_to(photo.with_suffix(".png"))  # never over the photo itself
    assert "input image" in message_log.errors[-1][1]
