"""Recovery copies: an unexported mask survives a session that ends without the question (real windows, real files)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from mos_studio.app.messages import ask_recover as real_ask_recover  # before the recorder replaces it
from mos_studio.app.recovery import RecoveryStore, photo_key

TIMEOUT = 30_000


def paint(window, at=(100.0, 100.0)) -> None:
    x, y = at
    window.canvas.paint_stroke([(x, y), (x + 60, y + 20)], radius=12)


def kept(window) -> list[str]:
    """The recovery folder's files once every queued write is done."""
    window.recovery.flush()
    folder = window.recovery.folder
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def crash(window) -> None:
    """Leave the window as a killed process would: no question, no shutdown (its copy stays on disk)."""
    window.recovery.flush()
    window.hide()


def test_an_edit_is_kept_a_moment_later_and_a_new_session_gets_it_back(window, make_window, tiny_loader, photo,
                                                                        qtbot, message_log, app_settings):
    assert window.open_path(photo)
    assert kept(window) == []  # nothing to keep for an untouched photo
    paint(window)
    window.canvas.paint_stroke([(60.0, 60.0), (90.0, 70.0)], radius=8, soft=True)  # a soft-edge stroke too
    qtbot.waitUntil(lambda: any(n.endswith(".json") for n in kept(window)), timeout=TIMEOUT)
    names = kept(window)
    assert len([n for n in names if n.endswith(".mask.png")]) == 1 and any(n.endswith(".soft.png") for n in names)
    mask, band = window.doc.mask.copy(), window.doc.soft_band.copy()
    crash(window)

    message_log.recover_answer = "restore"
    second = make_window(tiny_loader, settings=app_settings)
    assert second.open_path(photo)
    assert message_log.recover_questions == [photo.name]
    assert np.array_equal(second.doc.mask, mask) and np.array_equal(second.doc.soft_band, band)
    assert second.doc.unexported and second.isWindowModified()  # restored, still not exported
    second.doc.undo_stack.undo()  # one step takes the restored mask and strokes back
    assert not second.doc.mask.any() and not second.doc.soft_band.any()


def test_export_or_discard_removes_the_copy_and_later_keeps_it(window, make_window, tiny_loader, photo, tmp_path,
                                                               qtbot, message_log, app_settings):
    assert window.open_path(photo)
    paint(window)
    window.keep_recovery_copy()  # without waiting for the timer
    assert kept(window)
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", tmp_path / "out.png")
    assert kept(window) == []  # exported: nothing to recover
    paint(window, (40.0, 150.0))
    window.keep_recovery_copy()
    assert kept(window)
    window.doc.undo_stack.undo()  # back to what was exported
    assert kept(window) == []

    paint(window, (40.0, 150.0))
    window.keep_recovery_copy()
    crash(window)
    message_log.recover_answer = "later"  # Escape: the copy stays for next time
    second = make_window(tiny_loader, settings=app_settings)
    assert second.open_path(photo) and not second.doc.has_mask
    assert kept(second)
    message_log.recover_answer = "discard"
    third = make_window(tiny_loader, settings=app_settings)
    assert third.open_path(photo) and not third.doc.has_mask
    assert kept(third) == []
    assert message_log.recover_questions == [photo.name, photo.name]


def test_discarding_at_close_leaves_no_copy(window, photo, message_log):
    assert window.open_path(photo)
    paint(window)
    window.keep_recovery_copy()
    assert kept(window)
    message_log.unexported_answer = "discard"
    folder = window.recovery.folder
    assert window.close()
    assert sorted(folder.iterdir()) == []


def test_a_photo_changed_on_disk_is_not_offered_an_old_mask(window, make_window, tiny_loader, photo, message_log,
                                                            app_settings, make_photo):
    assert window.open_path(photo)
    paint(window)
    window.keep_recovery_copy()
    crash(window)
    Image.fromarray(make_photo()[:, ::-1].copy()).save(photo)  # edited elsewhere: same size, new contents
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    second = make_window(tiny_loader, settings=app_settings)
    assert second.open_path(photo)
    assert message_log.recover_questions == [] and not second.doc.has_mask


def test_an_unwritable_recovery_folder_never_stops_editing(make_window, tiny_loader, tmp_path, photo, monkeypatch):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the recovery folder should be")
    monkeypatch.setenv("MOS_RECOVERY_DIR", str(blocker / "recovery"))
    win = make_window(tiny_loader)
    assert win.open_path(photo)
    paint(win)
    win.keep_recovery_copy()
    win.recovery.flush()
    assert win.recovery.last_error and str(blocker) in win.recovery.last_error
    paint(win, (40.0, 150.0))
    win.keep_recovery_copy()  # the next copy says so in the status bar, once
    assert "recovery copy" in win.statusBar().currentMessage()
    assert win.doc.unexported  # the edits themselves are untouched


def test_store_reads_back_only_whole_copies_of_the_right_size_and_prunes_old_ones(tmp_path, photo):
    store = RecoveryStore(tmp_path / "rec")
    try:
        key = photo_key(photo, 320, 240)
        assert key and key != photo_key(photo, 321, 240) and photo_key(tmp_path / "gone.png", 1, 1) is None
        mask = np.zeros((240, 320), np.uint8)
        mask[50:100, 60:200] = 255
        mask[100:110, 60:200] = 128  # a soft alpha from a reopened cut-out is kept as it was
        store.save(key, photo, mask, None).result()
        got = store.find(key, 320, 240)
        assert got is not None and np.array_equal(got.mask, mask) and got.soft_band is None
        assert store.find(key, 100, 100) is None  # another size: not this photo's
        (tmp_path / "rec" / f"{key}.mask.png").write_bytes(b"not a png")
        assert store.find(key, 320, 240) is None  # damaged: ignored, never a crash
        store.save(key, photo, mask, None).result()
        meta = tmp_path / "rec" / f"{key}.json"
        old = time.time() - 40 * 86400
        os.utime(meta, (old, old))
        assert json.loads(meta.read_text())["width"] == 320
        assert store.prune() == 1 and store.find(key, 320, 240) is None
    finally:
        store.close()
    # closed with the window: a late edit's copy or removal is ignored, never an error
    assert store.save(key, photo, mask, None) is None and store.remove(key) is None
    store.flush()


def test_the_real_recovery_question_and_escape_means_not_now(qtbot):
    def answer(button_text: str | None) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox) and "cat.jpg" in box.text()
        if button_text is None:
            box.reject()
        else:
            next(b for b in box.buttons() if b.text() == button_text).click()

    for text, expected in (("&Restore", "restore"), ("&Discard copy", "discard"), (None, "later")):
        QTimer.singleShot(50, lambda t=text: answer(t))
        assert real_ask_recover(None, "cat.jpg", time.time()) == expected


def test_the_recovery_folder_is_app_data_beside_an_ini_or_the_environments(tmp_path, monkeypatch, qapp):
    from mos_studio.app.settings import AppSettings

    assert AppSettings.from_file(tmp_path / "s.ini").recovery_dir() == tmp_path / "recovery"
    native = AppSettings().recovery_dir()  # the user's settings are only read here, never written
    assert native.name == "recovery" and native.is_absolute()
    assert native.parent != Path(AppSettings().q.fileName()).parent  # not beside a registry key or a plist
    monkeypatch.setenv("MOS_RECOVERY_DIR", str(tmp_path / "elsewhere"))
    assert AppSettings().recovery_dir() == tmp_path / "elsewhere"


@pytest.fixture(autouse=True)
def _no_real_home(monkeypatch):
    monkeypatch.delenv("MOS_RECOVERY_DIR", raising=False)


KILLED_SESSION = r"""
import os, signal, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
from mos_studio.app.settings import AppSettings
from mos_studio.app.window import MainWindow
app = QApplication([])
win = MainWindow(AppSettings.from_file(sys.argv[1]), preload=False)
win.show()
assert win.open_path(sys.argv[2])
win.canvas.paint_stroke([(100.0, 100.0), (160.0, 120.0)], radius=12)
deadline = time.monotonic() + 20
while not list(win.recovery.folder.glob("*.json")) and time.monotonic() < deadline:
    app.processEvents()  # the window's own timer writes the copy
    time.sleep(0.05)
win.recovery.flush()
print(int((win.doc.mask > 0).sum()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close event, no question, no shutdown
"""


def test_a_killed_app_loses_no_more_than_the_last_moment(tmp_path, photo, make_window, tiny_loader, message_log):
    import subprocess
    import sys

    settings_file = tmp_path / "killed" / "settings.ini"
    settings_file.parent.mkdir()
    out = subprocess.run([sys.executable, "-c", KILLED_SESSION, str(settings_file), str(photo)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == -9, out.stderr  # it really was killed
    painted = int(out.stdout.split()[0])
    assert painted > 1000

    from mos_studio.app.settings import AppSettings

    message_log.recover_answer = "restore"
    win = make_window(tiny_loader, settings=AppSettings.from_file(settings_file))
    assert win.open_path(photo)
    assert message_log.recover_questions == [photo.name]
    assert int((win.doc.mask > 0).sum()) == painted
