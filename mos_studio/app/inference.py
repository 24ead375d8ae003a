"""Runs the L/H cascade on one worker thread, so the window stays responsive while it works.

The controller never touches widgets. It receives a *loader* (a callable returning a ready `Cascade`) so tests can
hand it tiny models; the default loader reads the trained weights from `$MOS_MODELS_DIR` or the project's models
folder and refuses to run when they are missing (random weights are never used). Each job carries the document's
generation id; the window applies a result only when that id is still current.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from .document import StageSet, StageView

CascadeLoader = Callable[[], Any]


class UserFacingError(Exception):
    """An error already phrased for a message box: a title, what happened, and what to do."""

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.hint = hint


def default_loader(models_dir: str | Path | None = None, encoder: str = "default",
                   device: str | None = None) -> CascadeLoader:
    """A loader for the shipped weights on `device` (None: the GPU if there is one, else the CPU); raises
    UserFacingError when they are missing or unusable."""

    def load() -> Any:
        from mos_studio.core.errors import WeightsError
        from mos_studio.core.weights import find_models_dir, weights_path

        folder = find_models_dir(models_dir)
        missing = [p for p in (weights_path(folder, encoder, s) for s in ("L", "H")) if not p.is_file()]
        if missing:
            raise UserFacingError(
                "No trained weights",
                f"No trained weights found in {folder}: see README to train or install weights.",
                "Missing: " + ", ".join(p.name for p in missing)
                + ". Set MOS_MODELS_DIR to the folder that holds them, or train them (docs/TRAINING.md).",
            )
        from mos_studio.core.cascade import Cascade

        try:
            return Cascade.from_pretrained(models_dir=folder, encoder=encoder, device=device)
        except WeightsError as err:
            raise UserFacingError(
                "Model weights unusable", str(err), "Restore the files from the release or train them again."
            ) from err

    return load


@dataclass
class Job:
    """One request: a whole-image cut, a box prompt, or a re-refine of a region."""

    kind: str  # "cut" | "box" | "refine"
    generation: int
    image: np.ndarray
    mask: np.ndarray | None = None  # uint8 copy of the mask when the job started (refine)
    rect: tuple[int, int, int, int] | None = None  # box or region bounding rect (x0, y0, x1, y1)
    polygon: np.ndarray | None = None  # lasso points (N x 2, image pixels) or None for a rectangle
    job_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    edge_snap: bool = True  # snap the edge onto the photo's as H's card says (False: never; cuts and regions only)
    colour_assist: bool | None = None  # L's unsure band re-decided by colour: on, off, or None as L's card says
    fine_detail: bool | None = None  # H's full-resolution crops after its global pass: on, off, or as H's card says


@dataclass
class JobResult:
    """The cascade's output converted for the app (mask as uint8 0/255)."""

    job: Job
    mask: np.ndarray
    probability: np.ndarray
    stages: dict[str, StageSet]
    device: str
    timings: dict[str, float]


def convert_result(job: Job, result: Any) -> JobResult:
    # A box prompt runs L on the box and H on the box or, with the card's box_context, a wider rectangle (the
    # result's region); a region re-refine runs H on the region: their maps cover only that rect.
    h_extent = (getattr(result, "region", job.rect) if job.kind == "box"  # None: H saw the whole photo
                else job.rect if job.kind == "refine" else None)
    extents = {"L": job.rect if job.kind == "box" else None, "H": h_extent}
    stages = {
        net: StageSet(net, [StageView(s.name, np.asarray(s.uncertainty, np.float32),
                                      np.asarray(s.prediction, np.float32)) for s in maps], extents.get(net),
                      getattr(result, "h_weights", "") if net == "H" else "")
        for net, maps in (result.stages or {}).items()
    }
    mask = np.asarray(result.mask)
    mask_u8 = (mask > 0.5).astype(np.uint8) * 255 if mask.dtype != np.uint8 else mask
    return JobResult(job, mask_u8, np.asarray(result.probability, np.float32), stages, str(result.device),
                     dict(result.timings or {}))


def describe_exception(err: BaseException) -> UserFacingError:
    """Turn anything the cascade raises into a message a photographer can act on."""
    from mos_studio.core.errors import ImageError, MosError, WeightsError

    if isinstance(err, UserFacingError):
        return err
    text = str(err)
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and "out of memory" in text.lower()):
        return UserFacingError(
            "Out of memory",
            "The computer ran out of memory while cutting out this image.",
            "Draw a box around the object (box prompt) so less is processed, close other programs, "
            "or downscale the photo and try again.",
        )
    if isinstance(err, WeightsError):
        return UserFacingError("Model weights unusable", text, "Restore the weights or train them (see README).")
    if isinstance(err, ImageError):
        return UserFacingError("Image problem", text, "Open another file.")
    if isinstance(err, MosError):
        return UserFacingError("Cut-out failed", text)
    return UserFacingError("Unexpected error", f"{type(err).__name__}: {text}",
                           "Please report this with the details below.\n" + traceback.format_exc(limit=3))


class _Worker(QObject):
    """Lives on the worker thread; owns the cascade once loaded."""

    progress = Signal(int, str, float)
    finished = Signal(object)  # JobResult
    failed = Signal(object, object)  # Job | None, UserFacingError
    cancelled = Signal(object)  # Job
    device_ready = Signal(str)

    def __init__(self, loader: CascadeLoader) -> None:
        super().__init__()
        self._loader = loader
        self._cascade: Any = None
        self._card_edge_radius: int | None = None
        self._card_colour_mix = 0.0
        self._card_local_passes = False

    def _ensure_cascade(self) -> Any:
        if self._cascade is None:
            self._cascade = self._loader()
            # The card's edge snap, kept so the app's switch can turn it off and back on per job.
            self._card_edge_radius = getattr(getattr(self._cascade, "config", None), "edge_radius", None)
            self._card_colour_mix = float(getattr(getattr(self._cascade, "config", None), "l_colour_mix", 0.0))
            self._card_local_passes = bool(getattr(getattr(self._cascade, "config", None), "local_passes", False))
            self.device_ready.emit(str(getattr(self._cascade, "device_name", "CPU")))
        return self._cascade

    @Slot(object)
    def set_loader(self, loader: CascadeLoader) -> None:
        """Use another loader (e.g. another device) from the next job on; runs between jobs on this thread."""
        self._loader = loader
        self._cascade = None

    @Slot()
    def preload(self) -> None:
        try:
            self._ensure_cascade()
        except BaseException as err:  # noqa: BLE001 - reported, never raised into Qt
            self.failed.emit(None, describe_exception(err))

    @Slot(object)
    def run(self, job: Job) -> None:
        from mos_studio.core.errors import Cancelled

        try:
            if job.cancel.is_set():
                raise Cancelled("cancelled before it started")
            cascade = self._ensure_cascade()

            def report(stage: str, fraction: float) -> None:
                self.progress.emit(job.job_id, str(stage), float(fraction))

            config = getattr(cascade, "config", None)
            if config is not None and hasattr(config, "edge_radius"):  # set between jobs, on this thread
                config.edge_radius = self._card_edge_radius if job.edge_snap else None
            if config is not None and hasattr(config, "l_colour_mix"):
                from mos_studio.core.colour import assist_mix

                config.l_colour_mix = assist_mix(self._card_colour_mix, job.colour_assist)
            if config is not None and hasattr(config, "local_passes"):
                config.local_passes = self._card_local_passes if job.fine_detail is None else job.fine_detail

            if job.kind == "cut":
                result = cascade(job.image, progress=report, cancel=job.cancel)
            elif job.kind == "box":
                result = cascade(job.image, box=job.rect, progress=report, cancel=job.cancel)
            elif job.kind == "refine":
                result = cascade(job.image, mask=job.mask, roi=job.rect, progress=report, cancel=job.cancel)
            else:
                raise ValueError(f"unknown job kind {job.kind!r}")
            if job.cancel.is_set():
                raise Cancelled("cancelled")
            self.finished.emit(convert_result(job, result))
        except Cancelled:
            self.cancelled.emit(job)
        except BaseException as err:  # noqa: BLE001 - a worker must never take the app down
            self.failed.emit(job, describe_exception(err))


class InferenceController(QObject):
    """Owns the one worker thread; submits jobs, forwards progress, supports cancel.

    Signals carry the job so the receiver can check `job.generation` against the document before applying.
    """

    _run = Signal(object)
    _preload = Signal()
    _set_loader = Signal(object)
    started = Signal(object)  # Job
    progress = Signal(str, float)  # stage, fraction in [0, 1]
    finished = Signal(object)  # JobResult
    failed = Signal(object, object)  # Job | None, UserFacingError
    cancelled = Signal(object)  # Job
    device_ready = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, loader: CascadeLoader | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self.current: Job | None = None
        self.device_name: str | None = None
        self._thread = QThread()
        self._thread.setObjectName("mos-inference")
        self._worker = _Worker(loader or default_loader())
        self._worker.moveToThread(self._thread)
        self._run.connect(self._worker.run)
        self._preload.connect(self._worker.preload)
        self._set_loader.connect(self._worker.set_loader)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._worker.device_ready.connect(self._on_device)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self.current is not None

    def preload(self) -> None:
        """Load the models in the background (to show the device early); errors arrive as `failed(None, …)`."""
        self._preload.emit()

    def set_loader(self, loader: CascadeLoader, preload: bool = True) -> None:
        """Switch models or device; a running job finishes on the old cascade (the worker handles this after it)."""
        self.device_name = None
        self._set_loader.emit(loader)
        if preload:
            self._preload.emit()

    def submit(self, job: Job) -> bool:
        """Queue a job; False when one is already running (the UI disables the actions meanwhile)."""
        if self.current is not None:
            return False
        job.job_id = next(self._ids)
        self.current = job
        self.busy_changed.emit(True)
        self.started.emit(job)
        self._run.emit(job)
        return True

    def cancel(self) -> None:
        if self.current is not None:
            self.current.cancel.set()

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel what runs and stop the thread (called when the window closes)."""
        self.cancel()
        self._thread.quit()
        self._thread.wait(timeout_ms)

    # -- worker → GUI thread ----------------------------------------------------------------------------------------
    def _done(self, job: Job | None) -> bool:
        if job is None or self.current is None or job.job_id != self.current.job_id:
            return False
        self.current = None
        self.busy_changed.emit(False)
        return True

    def _on_progress(self, job_id: int, stage: str, fraction: float) -> None:
        if self.current is not None and self.current.job_id == job_id:
            self.progress.emit(stage, fraction)

    def _on_finished(self, result: JobResult) -> None:
        if self._done(result.job):
            self.finished.emit(result)

    def _on_failed(self, job: Job | None, err: UserFacingError) -> None:
        if job is None or self._done(job):
            self.failed.emit(job, err)

    def _on_cancelled(self, job: Job) -> None:
        if self._done(job):
            self.cancelled.emit(job)

    def _on_device(self, name: str) -> None:
        self.device_name = name
        self.device_ready.emit(name)
