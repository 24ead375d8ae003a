"""Closing the window or opening another photo never drops an unexported mask without asking (the real window)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from mos_studio.app.messages import ask_unexported as real_ask_unexported  # before the recorder replaces it

TIMEOUT = 30_000


@pytest.fixture
def answers(monkeypatch, message_log):
    """Record each "export first?" question and answer it from a list (default: discard, as before)."""
    from mos_studio.app import messages

    asked: list[tuple[str, str]] = []
    replies: list[str] = []

    def ask(parent, name, doing):
        asked.append((name, doing))
        return replies.pop(0) if replies else "discard"

    monkeypatch.setattr(messages, "ask_unexported", ask)
    return asked, replies


def paint(window) -> None:
    window.canvas.paint_stroke([(100.0, 100.0), (160.0, 120.0)], radius=12)


def save_to(monkeypatch, path) -> list[str]:
    """Answer the export file dialog with `path` (None: the user cancels it); returns what it was asked."""
    shown: list[str] = []

    def dialog(parent, title, start, filters, options=None):
        shown.append(title)
        return ("", "") if path is None else (str(path), "PNG image (*.png)")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    return shown


def test_an_edit_marks_the_title_and_an_export_clears_it(window, photo, tmp_path, qtbot, answers):
    asked, _ = answers
    assert window.open_path(photo)
    assert not window.isWindowModified() and not window.doc.unexported
    paint(window)
    assert window.doc.unexported and window.isWindowModified()  # the title shows the asterisk
    window.doc.undo_stack.undo()
    assert not window.doc.unexported  # back where it was opened: nothing to lose
    window.doc.undo_stack.redo()
    window.canvas.paint_stroke([(20.0, 20.0), (40.0, 30.0)], radius=6)
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("mask", tmp_path / "m.png")
    assert not window.doc.unexported and not window.isWindowModified()
    window.doc.undo_stack.undo()  # undoing past the export changes what the user sees: unexported again
    assert window.doc.unexported
    window.doc.undo_stack.redo()
    assert not window.doc.unexported
    window.close()
    assert asked == [] and not window.isVisible()  # exported: closes without a question


def test_closing_with_an_unexported_mask_asks_and_cancel_keeps_everything(window, photo, answers):
    asked, replies = answers
    assert window.open_path(photo)
    paint(window)
    mask = window.doc.mask.copy()
    replies.append("cancel")
    assert not window.close()
    assert asked == [(photo.name, "closing")]
    assert window.isVisible() and np.array_equal(window.doc.mask, mask) and window.doc.undo_stack.canUndo()
    replies.append("discard")
    assert window.close()
    assert not window.isVisible()


def test_export_first_writes_the_cutout_then_closes(window, photo, tmp_path, qtbot, monkeypatch, answers):
    asked, replies = answers
    assert window.open_path(photo)
    paint(window)
    out = tmp_path / "kept.png"
    shown = save_to(monkeypatch, out)
    replies.append("export")
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert not window.close()  # not yet: first the export
    assert shown and "Cut-out" in shown[0]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
    alpha = np.asarray(Image.open(out))[..., 3]
    assert np.array_equal(alpha > 127, window.doc.mask > 127)  # what was on screen is on disk
    assert len(asked) == 1  # the second close found nothing to lose


def test_export_first_but_the_file_dialog_cancelled_keeps_the_window(window, photo, monkeypatch, answers):
    _, replies = answers
    assert window.open_path(photo)
    paint(window)
    save_to(monkeypatch, None)
    replies.append("export")
    assert not window.close()
    assert window.isVisible() and window.doc.unexported and window._after_export is None


def test_a_failed_export_first_leaves_the_photo_open(window, photo, tmp_path, qtbot, monkeypatch, answers,
                                                     message_log):
    _, replies = answers
    assert window.open_path(photo)
    paint(window)
    save_to(monkeypatch, tmp_path / "no_such_folder" / "deep" / "x.png")
    (tmp_path / "no_such_folder").write_text("a file where a folder should be")
    replies.append("export")
    with qtbot.waitSignal(window.exporter.failed, timeout=TIMEOUT):
        window.close()
    assert window.isVisible() and window.doc.unexported
    assert message_log.errors and message_log.errors[-1][0] == "Export failed"


def test_opening_another_photo_asks_first(window, photo, tmp_path, qtbot, monkeypatch, answers, make_photo):
    asked, replies = answers
    other = tmp_path / "other.png"
    Image.fromarray(make_photo(200, 150)).save(other)
    assert window.open_path(photo)
    paint(window)
    mask = window.doc.mask.copy()
    replies.append("cancel")
    assert not window.open_path(other)
    assert asked == [(photo.name, "opening another photo")]
    assert window.doc.path == photo and np.array_equal(window.doc.mask, mask)
    # export first, then the other photo opens by itself
    out = tmp_path / "first.png"
    save_to(monkeypatch, out)
    replies.append("export")
    with qtbot.waitSignal(window.image_opened, timeout=TIMEOUT):
        assert not window.open_path(other)
    assert window.doc.path == other and window.doc.width == 200 and out.exists()
    assert np.array_equal(np.asarray(Image.open(out))[..., 3] > 127, mask > 127)
    # an untouched photo is replaced without a question
    assert window.open_path(photo) and len(asked) == 2


def test_a_reopened_cutout_is_not_unexported_until_edited(window, photo, tmp_path, qtbot, answers):
    asked, _ = answers
    assert window.open_path(photo)
    paint(window)
    out = tmp_path / "cut.png"
    with qtbot.waitSignal(window.export_done, timeout=TIMEOUT):
        assert window.export_to("cutout", out)
    assert window.open_path(out) and window.doc.has_mask
    assert not window.doc.unexported and asked == []
    paint(window)
    window.canvas.paint_stroke([(20.0, 20.0), (40.0, 30.0)], radius=6)
    assert window.doc.unexported


def test_the_real_question_box_has_three_answers_and_escape_cancels(qtbot):
    """The message box itself (not the recorder): its buttons, and Escape as Cancel."""
    seen: list[list[str]] = []

    def answer(button_text: str | None) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen.append([b.text() for b in box.buttons()])
        if button_text is None:
            box.reject()  # Escape, or the box's close button
        else:
            next(b for b in box.buttons() if b.text() == button_text).click()

    for text, expected in (("&Export cut-out…", "export"), ("&Discard changes", "discard"), (None, "cancel")):
        QTimer.singleShot(50, lambda t=text: answer(t))
        assert real_ask_unexported(None, "cat.jpg", "closing") == expected
    assert all(set(s) >= {"&Export cut-out…", "&Discard changes"} and len(s) == 3 for s in seen)
