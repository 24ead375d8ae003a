"""Errors the user can act on. Every message names the file (if any) and the problem."""

from __future__ import annotations

from pathlib import Path


class MosError(Exception):
    """Base class: the CLI prints str(err) on one line and exits non-zero; the app shows it in a message box."""


class ImageError(MosError):
    """An input image cannot be read or is unusable (missing, empty, truncated, not an image, too small/large)."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class MaskError(ImageError):
    """A user-supplied mask is unusable (wrong size, unreadable)."""


class WeightsError(MosError):
    """Model weights are missing, corrupt or do not match their model card."""


class ExportError(MosError):
    """An export would overwrite something it must not, or could not be written."""


class Cancelled(MosError):
    """The user cancelled a running job; nothing was changed."""
