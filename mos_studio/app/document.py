"""The open photo and everything computed for it: the one model the widgets observe.

The numpy mask (uint8, 0 = background, 255 = object) is the source of truth. It is edited in place so that the
canvas's Indexed8 overlay, which shares its memory, never needs rebuilding; every edit goes through a
`MaskPatchCommand` that keeps only the changed sub-rectangle (before and after), never a full-size copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack


@dataclass
class StageView:
    """One HierPR block's maps as the app shows them (float32 in [0, 1] at the block's own resolution)."""

    name: str
    uncertainty: np.ndarray
    prediction: np.ndarray


@dataclass
class StageSet:
    """The 7 blocks of one network pass ("L" or "H"), in the paper's order S8_0 … S2_3."""

    net: str
    stages: list[StageView] = field(default_factory=list)
    extent: tuple[int, int, int, int] | None = None  # image rect the maps cover (box or region); None = whole
    weights: str = ""  # for H: "Hs" when H's small-photo weights ran (a cut of a photo up to 1024 px), else "H"

    def rect(self, width: int, height: int) -> tuple[int, int, int, int]:
        return self.extent if self.extent is not None else (0, 0, width, height)


def clip_rect(rect: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) clipped to the image; None when nothing is left."""
    x0, y0, x1, y1 = (int(v) for v in rect)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


class Document(QObject):
    """Image, mask, probability, the 7 stage maps for L and H, the undo stack and the edit generation.

    `generation` grows on every change to the mask (edit, undo, redo, new image). The inference controller tags each
    job with the generation it started from; a result whose generation is no longer current is dropped, so a late
    result never overwrites a newer edit.
    """

    image_changed = Signal()
    mask_changed = Signal(QRect)  # the changed region in image pixels
    stages_changed = Signal()
    generation_changed = Signal(int)
    soft_band_changed = Signal(QRect)  # the user's soft-edge strokes changed there (image pixels)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.rgb: np.ndarray | None = None
        self.icc_profile: bytes | None = None
        self.depth = 8  # bits per colour channel in the photo's file (16: the cut-out export keeps them)
        self.mask: np.ndarray | None = None
        # Where the user painted with the soft-edge brush (uint8, 255 = solve alpha here), None until the first
        # stroke: exports with soft edges matte it whatever H thought of it.
        self.soft_band: np.ndarray | None = None
        self.probability: np.ndarray | None = None
        self.stages: dict[str, StageSet] = {}
        self.device: str | None = None
        self.timings: dict[str, float] = {}
        self.generation = 0
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(200)
        # Every step, undo or redo moves this on: an export started at one count and finished at the same count
        # wrote exactly what the user sees, and only then is the document clean (nothing of theirs to lose).
        self.edits = 0
        self.undo_stack.indexChanged.connect(self._count_edit)

    # -- state ------------------------------------------------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self.rgb is not None

    @property
    def width(self) -> int:
        return 0 if self.rgb is None else int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return 0 if self.rgb is None else int(self.rgb.shape[0])

    @property
    def has_mask(self) -> bool:
        return self.mask is not None and bool(self.mask.any())

    @property
    def unexported(self) -> bool:
        """True when closing the photo would lose a mask the user has not exported since they last changed it (a
        cut, stroke, re-refine or undo made after the last export). An empty mask has nothing to lose."""
        return self.has_image and not self.undo_stack.isClean() and self.has_mask

    def mark_exported(self, edits: int) -> bool:
        """Call when an export started at edit count `edits` has been written: the document is clean again unless
        it changed meanwhile (then it stays unexported). True when it is clean now."""
        if edits == self.edits:
            self.undo_stack.setClean()
        return self.undo_stack.isClean()

    def _count_edit(self, _index: int) -> None:
        self.edits += 1

    def bump_generation(self) -> int:
        self.generation += 1
        self.generation_changed.emit(self.generation)
        return self.generation

    def set_image(self, rgb: np.ndarray, path: str | Path | None = None, icc_profile: bytes | None = None) -> None:
        """Replace the photo: a fresh empty mask, no stages, an empty undo history."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        self.undo_stack.clear()
        self.rgb = np.ascontiguousarray(rgb)
        self.path = Path(path) if path is not None else None
        self.icc_profile = icc_profile
        self.depth = 8
        self.mask = np.zeros(self.rgb.shape[:2], np.uint8)
        self.soft_band = None
        self.probability = None
        self.stages = {}
        self.device = None
        self.timings = {}
        self.bump_generation()
        self.image_changed.emit()
        self.stages_changed.emit()

    def set_stages(self, stages: dict[str, StageSet], probability: np.ndarray | None, device: str | None,
                   timings: dict[str, float] | None = None) -> None:
        self.stages = {**self.stages, **stages}  # a region re-refine brings H only: keep the last L
        if probability is not None:
            self.probability = probability
        self.device = device
        self.timings = dict(timings or {})
        self.stages_changed.emit()

    # -- edits ------------------------------------------------------------------------------------------------------
    def write_patch(self, rect: tuple[int, int, int, int], values: np.ndarray) -> None:
        """Write `values` into the mask at rect (x0, y0, x1, y1); used only by undo commands."""
        x0, y0, x1, y1 = rect
        assert self.mask is not None
        self.mask[y0:y1, x0:x1] = values
        self.bump_generation()
        self.mask_changed.emit(QRect(x0, y0, x1 - x0, y1 - y0))

    def push_patch(self, rect: tuple[int, int, int, int], before: np.ndarray, after: np.ndarray, text: str) -> bool:
        """Record an edit of the sub-rectangle `rect` on the undo stack (and apply `after`).

        Returns False (and records nothing) when the edit changes no pixel.
        """
        if np.array_equal(before, after):
            return False
        self.undo_stack.push(MaskPatchCommand(self, rect, before, after, text))
        return True

    def ensure_soft_band(self) -> np.ndarray:
        """The soft-edge strokes' array, made (empty) on first use."""
        assert self.rgb is not None
        if self.soft_band is None:
            self.soft_band = np.zeros(self.rgb.shape[:2], np.uint8)
        return self.soft_band

    def write_soft_patch(self, rect: tuple[int, int, int, int], values: np.ndarray) -> None:
        """Write `values` into the soft-edge strokes at rect; used only by undo commands."""
        x0, y0, x1, y1 = rect
        self.ensure_soft_band()[y0:y1, x0:x1] = values
        self.soft_band_changed.emit(QRect(x0, y0, x1 - x0, y1 - y0))

    def push_soft_patch(self, rect: tuple[int, int, int, int], before: np.ndarray, after: np.ndarray,
                        text: str) -> bool:
        """Record a soft-edge stroke on the undo stack (and apply it); False when it changes nothing."""
        if np.array_equal(before, after):
            return False
        self.undo_stack.push(SoftBandPatchCommand(self, rect, before, after, text))
        return True

    def replace_region(self, rect: tuple[int, int, int, int], new_values: np.ndarray, text: str,
                       where: np.ndarray | None = None) -> bool:
        """Set the mask inside rect to `new_values` (only where `where` is true, if given) as one undoable step."""
        assert self.mask is not None
        x0, y0, x1, y1 = rect
        before = self.mask[y0:y1, x0:x1].copy()
        after = new_values.astype(np.uint8, copy=True)
        if where is not None:
            after = np.where(where, after, before).astype(np.uint8)
        return self.push_patch(rect, before, after, text)


class MaskPatchCommand(QUndoCommand):
    """Undoable mask edit holding only the changed sub-rectangle, before and after."""

    def __init__(self, doc: Document, rect: tuple[int, int, int, int], before: np.ndarray, after: np.ndarray,
                 text: str) -> None:
        super().__init__(text)
        self.doc = doc
        self.rect = rect
        self.before = before
        self.after = after

    @property
    def nbytes(self) -> int:
        return int(self.before.nbytes + self.after.nbytes)

    def redo(self) -> None:
        self.doc.write_patch(self.rect, self.after)

    def undo(self) -> None:
        self.doc.write_patch(self.rect, self.before)


class SoftBandPatchCommand(MaskPatchCommand):
    """Undoable soft-edge stroke: the same sub-rectangle bookkeeping, written to the soft-edge strokes."""

    def redo(self) -> None:
        self.doc.write_soft_patch(self.rect, self.after)

    def undo(self) -> None:
        self.doc.write_soft_patch(self.rect, self.before)
