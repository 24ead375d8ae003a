"""Brush strokes painted straight into the numpy mask, touching only each segment's bounding sub-array.

A painted pixel is exactly one whose centre lies within `radius` of the stroke's path (a chain of round-capped
segments). The definition is exact and cheap on the sub-array, so a test can check it pixel for pixel.
"""

from __future__ import annotations

import numpy as np

Rect = tuple[int, int, int, int]


def union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def segment_rect(p0: tuple[float, float], p1: tuple[float, float], radius: float, width: int, height: int
                 ) -> Rect | None:
    """The pixels a capsule of `radius` around p0→p1 can touch, clipped to the image."""
    x0 = int(np.floor(min(p0[0], p1[0]) - radius)) - 1
    y0 = int(np.floor(min(p0[1], p1[1]) - radius)) - 1
    x1 = int(np.ceil(max(p0[0], p1[0]) + radius)) + 2
    y1 = int(np.ceil(max(p0[1], p1[1]) + radius)) + 2
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def capsule(rect: Rect, p0: tuple[float, float], p1: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean map over `rect`: pixel centres within `radius` of the segment p0→p1."""
    x0, y0, x1, y1 = rect
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    ax, ay = float(p0[0]), float(p0[1])
    dx, dy = float(p1[0]) - ax, float(p1[1]) - ay
    length2 = dx * dx + dy * dy
    px = xs[None, :] - ax
    py = ys[:, None] - ay
    if length2 <= 1e-12:
        d2 = px * px + py * py
    else:
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
        ex = px - t * dx
        ey = py - t * dy
        d2 = ex * ex + ey * ey
    return d2 <= radius * radius


class BrushStroke:
    """One press-drag-release of the brush or eraser on a mask (modified in place).

    Keeps a snapshot so that `finish()` can hand the undo stack only the changed sub-rectangle, before and after.
    """

    def __init__(self, mask: np.ndarray, radius: float, value: int) -> None:
        self.mask = mask
        self.radius = float(max(0.5, radius))
        self.value = np.uint8(value)
        self.bounds: Rect | None = None
        self._before = mask.copy()
        self._last: tuple[float, float] | None = None
        self.points: list[tuple[float, float]] = []

    def add(self, point: tuple[float, float]) -> Rect | None:
        """Extend the stroke to `point` (image pixel coordinates); returns the sub-rectangle that may have changed."""
        start = self._last if self._last is not None else point
        self._last = point
        self.points.append(point)
        h, w = self.mask.shape
        rect = segment_rect(start, point, self.radius, w, h)
        if rect is None:
            return None
        hit = capsule(rect, start, point, self.radius)
        x0, y0, x1, y1 = rect
        self.mask[y0:y1, x0:x1][hit] = self.value
        self.bounds = union(self.bounds, rect)
        return rect

    def finish(self) -> tuple[Rect, np.ndarray, np.ndarray] | None:
        """(rect, before, after) of the touched area, or None when the stroke never touched the image."""
        if self.bounds is None:
            return None
        x0, y0, x1, y1 = self.bounds
        before = self._before[y0:y1, x0:x1].copy()
        after = self.mask[y0:y1, x0:x1].copy()
        self._before = None  # free the snapshot
        return self.bounds, before, after

    def footprint(self) -> tuple[tuple[int, int], np.ndarray] | None:
        """`((x0, y0), map)`: a boolean map of the stroke's bounding box, True where the stroke painted (whatever
        those pixels held before), and where that box starts; None when it never touched the image. A colour stroke
        hands this to the core as what the user marked; a full-size map cost most of a short stroke's time at 8K."""
        if self.bounds is None:
            return None
        bx0, by0, bx1, by1 = self.bounds
        h, w = self.mask.shape
        out = np.zeros((by1 - by0, bx1 - bx0), bool)
        pts = [self.points[0], *self.points]
        for a, b in zip(pts, pts[1:], strict=False):
            rect = segment_rect(a, b, self.radius, w, h)
            if rect is not None:
                x0, y0, x1, y1 = rect
                out[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] |= capsule(rect, a, b, self.radius)
        return (bx0, by0), out

    def abort(self) -> None:
        """Put the mask back as it was (e.g. the image changed under the stroke)."""
        if self.bounds is not None and self._before is not None:
            x0, y0, x1, y1 = self.bounds
            self.mask[y0:y1, x0:x1] = self._before[y0:y1, x0:x1]
        self._before = None
