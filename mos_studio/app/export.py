"""Export on a worker thread: a 12 MP PNG takes seconds to encode, and the window must not freeze meanwhile.

Writing goes through `mos_studio.core.io` (atomic, never over the input image). The window has already asked the
user before overwriting; the job carries that answer as `overwrite`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

# kind → (menu text, file filter, default suffix)
EXPORT_KINDS = {
    "cutout": ("Cut-out (PNG with alpha)", "PNG with alpha (*.png)", ".png"),
    "mask": ("Mask (PNG)", "Mask PNG (*.png)", ".png"),
    "composite": ("Composite on colour (JPEG/PNG)", "JPEG (*.jpg *.jpeg);;PNG (*.png)", ".jpg"),
}


@dataclass
class ExportJob:
    kind: str
    path: Path
    rgb: np.ndarray
    alpha: np.ndarray  # uint8 copy of the mask taken when the export started
    icc_profile: bytes | None = None
    color: tuple[int, int, int] = (0, 255, 0)
    protect: tuple[Path, ...] = ()
    overwrite: bool = False
    soft: bool = False  # Soft edges: solve alpha where H was unsure (and fix the colours there) before writing
    doubt: np.ndarray | None = None  # H's uncertainty at the image's size (uint8), when the last cut left one
    painted: np.ndarray | None = None  # the user's soft-edge strokes (uint8, 255 = solve alpha here), if any
    soft_applied: bool = False  # set by the worker: a band was found and the matte was written
    edits: int = -1  # the document's edit count when the export started (Document.mark_exported)
    colours16_from: Path | None = None  # a 16-bit photo: a PNG cut-out re-reads its 16-bit colours from here
    depth_written: int = 8  # set by the worker: 16 when the cut-out kept the photo's 16 bits


class _ExportWorker(QObject):
    finished = Signal(object, float)  # ExportJob, seconds
    failed = Signal(object, str, str)  # ExportJob, message, hint

    @Slot(object)
    def run(self, job: ExportJob) -> None:
        from mos_studio.core import io
        from mos_studio.core.errors import MosError

        start = time.perf_counter()
        try:
            rgb, alpha = job.rgb, job.alpha
            if job.soft and (job.doubt is not None or job.painted is not None):
                from mos_studio.core.matting import soft_matte

                matte = soft_matte(job.rgb, job.alpha > 127, job.doubt, painted=job.painted)
                if matte.soft:  # without a band the mask (possibly already soft, from a file) is written as is
                    rgb, alpha, job.soft_applied = matte.foreground, matte.alpha_u8, True
            if job.kind == "cutout":
                deep = None
                if job.colours16_from is not None and job.path.suffix.lower() == ".png":
                    h, w = alpha.shape[:2]
                    deep = io.load_colours16(job.colours16_from, (w, h))  # None if the photo changed on disk
                io.save_cutout(rgb, alpha, job.path, icc_profile=job.icc_profile, overwrite=job.overwrite,
                               protect=job.protect, colours16=deep)
                job.depth_written = 16 if deep is not None else 8
            elif job.kind == "mask":
                io.save_mask(alpha, job.path, overwrite=job.overwrite, protect=job.protect)
            elif job.kind == "composite":
                io.save_composite(rgb, alpha, job.path, color=job.color, icc_profile=job.icc_profile,
                                  overwrite=job.overwrite, protect=job.protect)
            else:
                raise ValueError(f"unknown export kind {job.kind!r}")
        except MosError as err:
            self.failed.emit(job, str(err), "Choose another file name or folder.")
            return
        except MemoryError:
            self.failed.emit(job, f"{job.path}: out of memory while writing", "Close other programs and retry.")
            return
        except OSError as err:
            self.failed.emit(job, f"{job.path}: {err.strerror or err}", "Check the folder exists and is writable.")
            return
        except Exception as err:  # noqa: BLE001 - reported in a message box, never a crash
            self.failed.emit(job, f"{job.path}: {type(err).__name__}: {err}", "Please report this.")
            return
        self.finished.emit(job, time.perf_counter() - start)


class ExportController(QObject):
    _run = Signal(object)
    started = Signal(object)
    finished = Signal(object, float)
    failed = Signal(object, str, str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.current: ExportJob | None = None
        self._thread = QThread()
        self._thread.setObjectName("mos-export")
        self._worker = _ExportWorker()
        self._worker.moveToThread(self._thread)
        self._run.connect(self._worker.run)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self.current is not None

    def submit(self, job: ExportJob) -> bool:
        if self.current is not None:
            return False
        self.current = job
        self.busy_changed.emit(True)
        self.started.emit(job)
        self._run.emit(job)
        return True

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Let a running export finish (a half-written file is never left: writes are atomic) and stop."""
        self._thread.quit()
        self._thread.wait(timeout_ms)

    def _on_finished(self, job: ExportJob, seconds: float) -> None:
        self.current = None
        self.busy_changed.emit(False)
        self.finished.emit(job, seconds)

    def _on_failed(self, job: ExportJob, message: str, hint: str) -> None:
        self.current = None
        self.busy_changed.emit(False)
        self.failed.emit(job, message, hint)
