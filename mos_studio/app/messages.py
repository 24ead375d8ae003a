"""Every message box the app shows goes through here, so tests can record them instead of blocking on a modal."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget | None, title: str, message: str, hint: str = "") -> None:
    """A modal error: what happened, and (in the informative text) what to do about it."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, parent)
    if hint:
        box.setInformativeText(hint)
    box.exec()


def ask_overwrite(parent: QWidget | None, path: str) -> bool:
    """True when the user agrees to replace an existing file."""
    answer = QMessageBox.question(
        parent, "Replace file?", f"{path} already exists.\nDo you want to replace it?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def ask_unexported(parent: QWidget | None, name: str, doing: str) -> str:
    """Before closing a photo whose mask was changed since its last export: "export", "discard" or "cancel".

    `doing` finishes the question's sentence ("closing", "opening another photo"); Escape and the window's close
    button mean cancel, so nothing is lost by a stray key."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Export the cut-out first?",
                      f"The mask of {name} has changes that have not been exported.",
                      QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText(f"Export the cut-out before {doing}? If you discard them, the mask and its undo history "
                           "are gone.")
    export = box.addButton("&Export cut-out…", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("&Discard changes", QMessageBox.ButtonRole.DestructiveRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(export)
    box.setEscapeButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    return "export" if clicked is export else "discard" if clicked is discard else "cancel"


def ask_recover(parent: QWidget | None, name: str, saved_at: float) -> str:
    """A recovery copy of this photo's mask was left behind: "restore", "discard" or "later" (Escape: asked again
    next time the photo opens)."""
    import time

    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved_at))
    box = QMessageBox(QMessageBox.Icon.Question, "Restore the unexported mask?",
                      f"MOS Studio kept a copy of the mask of {name} from {when} that was never exported (the app "
                      "was closed before it could ask).", QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText("Restore it as one undo step, or discard the copy?")
    restore = box.addButton("&Restore", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("&Discard copy", QMessageBox.ButtonRole.DestructiveRole)
    later = box.addButton("&Not now", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(restore)
    box.setEscapeButton(later)
    box.exec()
    clicked = box.clickedButton()
    return "restore" if clicked is restore else "discard" if clicked is discard else "later"
