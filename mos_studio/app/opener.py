"""Decode photos on a worker thread: an 8K PNG takes about a second, and the window must keep painting meanwhile.

Only the latest request counts: opening another file while one is decoding makes the earlier one's result ignored.
Errors are phrased for a message box by `describe_open_error`, shared with the window's synchronous `open_path`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

OPEN_HINT = "Choose a JPEG, PNG, TIFF or WebP photo that opens in other programs."


def describe_open_error(path: Path, err: BaseException) -> tuple[str, str, str]:
    """(title, message, hint) for a photo that could not be opened."""
    from mos_studio.core.errors import MosError

    if isinstance(err, MosError):
        return "Cannot open image", str(err), OPEN_HINT
    if isinstance(err, MemoryError):
        return ("Out of memory", f"{path}: not enough memory to open this image.",
                "Close other programs, or downscale the photo before opening it.")
    return ("Cannot open image", f"{path}: {type(err).__name__}: {err}",
            "The file may be damaged; try re-saving it in another program.")


class _OpenWorker(QObject):
    loaded = Signal(int, object, object)  # request id, path, LoadedImage
    failed = Signal(int, object, object)  # request id, path, (title, message, hint)

    @Slot(int, object)
    def load(self, request: int, path: Path) -> None:
        from mos_studio.core.io import load_image

        try:
            result: Any = load_image(path)
        except BaseException as err:  # noqa: BLE001 - reported in a message box, never a crash
            self.failed.emit(request, path, describe_open_error(path, err))
            return
        self.loaded.emit(request, path, result)


class ImageOpener(QObject):
    _load = Signal(int, object)
    loaded = Signal(object, object)  # path, LoadedImage
    failed = Signal(object, str, str, str)  # path, title, message, hint
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._latest = 0
        self._pending = 0
        self._thread = QThread()
        self._thread.setObjectName("mos-open")
        self._worker = _OpenWorker()
        self._worker.moveToThread(self._thread)
        self._load.connect(self._worker.load)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def request(self, path: str | Path) -> int:
        self._latest = next(self._ids)
        self._pending += 1
        if self._pending == 1:
            self.busy_changed.emit(True)
        self._load.emit(self._latest, Path(path))
        return self._latest

    def shutdown(self, timeout_ms: int = 30000) -> None:
        self._thread.quit()
        self._thread.wait(timeout_ms)

    def _settle(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.busy_changed.emit(False)

    def _on_loaded(self, request: int, path: Path, loaded: Any) -> None:
        self._settle()
        if request == self._latest:
            self.loaded.emit(path, loaded)

    def _on_failed(self, request: int, path: Path, info: tuple[str, str, str]) -> None:
        self._settle()
        if request == self._latest:
            self.failed.emit(path, *info)
