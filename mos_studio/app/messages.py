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
