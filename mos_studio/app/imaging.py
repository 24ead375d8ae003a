"""numpy ↔ QImage without copies, and the colour tables the overlays use.

Overlays are `Format_Indexed8` images that share the mask's memory, so a brush stroke costs nothing here: only the
colour table decides whether the mask shows as a tint, as an alpha for a composite, or as a heat map.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPixmap


class SharedImage:
    """A QImage over a numpy buffer; holds the array so the memory outlives the image."""

    def __init__(self, array: np.ndarray, fmt: QImage.Format, color_table: list[int] | None = None) -> None:
        if not array.flags["C_CONTIGUOUS"]:
            raise ValueError("array must be C-contiguous")
        self.array = array
        h, w = array.shape[:2]
        bpl = array.strides[0]
        self.image = QImage(array.data, w, h, bpl, fmt)
        if color_table is not None:
            self.image.setColorTable(color_table)


def rgb_image(rgb: np.ndarray) -> SharedImage:
    return SharedImage(rgb, QImage.Format.Format_RGB888)


def tint_table(color: QColor, opacity: float) -> list[int]:
    """Index i (mask value) → colour with alpha i·opacity: the classic mask tint."""
    r, g, b = color.red(), color.green(), color.blue()
    return [QColor(r, g, b, int(round(i * opacity))).rgba() for i in range(256)]


def band_table(color: QColor | None = None, opacity: float = 0.6) -> list[int]:
    """Index i (share of band pixels under a display pixel) → magenta with alpha i·opacity: the soft-edge band."""
    c = color or QColor(255, 0, 255)
    return [QColor(c.red(), c.green(), c.blue(), int(round(i * opacity))).rgba() for i in range(256)]


def alpha_table() -> list[int]:
    """Index i → black with alpha i: used with DestinationIn to cut the photo out by the mask."""
    return [QColor(0, 0, 0, i).rgba() for i in range(256)]


def _lerp_table(stops: list[tuple[float, tuple[int, int, int]]], alpha: int = 255) -> list[int]:
    table = []
    for i in range(256):
        x = i / 255.0
        for (x0, c0), (x1, c1) in zip(stops, stops[1:], strict=False):
            if x <= x1:
                t = 0.0 if x1 == x0 else (x - x0) / (x1 - x0)
                c = [int(round(a + (b - a) * t)) for a, b in zip(c0, c1, strict=True)]
                break
        table.append(QColor(c[0], c[1], c[2], alpha).rgba())
    return table


# A perceptually ordered dark→bright map (black, purple, orange, pale yellow), like the paper's uncertainty figures.
HEAT_TABLE = _lerp_table([(0.0, (0, 0, 4)), (0.3, (87, 16, 110)), (0.6, (221, 81, 58)), (1.0, (252, 255, 164))])
GREY_TABLE = [QColor(i, i, i).rgba() for i in range(256)]


def to_u8(values: np.ndarray) -> np.ndarray:
    """float map in [0, 1] → contiguous uint8 0..255."""
    return np.ascontiguousarray(np.clip(np.asarray(values, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8))


def map_image(values: np.ndarray, kind: str) -> SharedImage:
    """A stage map as an Indexed8 image: heat colours for uncertainty, grey for prediction."""
    return SharedImage(to_u8(values), QImage.Format.Format_Indexed8,
                       HEAT_TABLE if kind == "uncertainty" else GREY_TABLE)


def checker_brush(size: int = 10) -> QBrush:
    """The usual light/dark checkerboard that says "transparent"."""
    tile = QPixmap(2 * size, 2 * size)
    tile.fill(QColor(204, 204, 204))
    p = QPainter(tile)
    p.fillRect(0, 0, size, size, QColor(255, 255, 255))
    p.fillRect(size, size, size, size, QColor(255, 255, 255))
    p.end()
    return QBrush(tile)


def qimage_to_array(image: QImage) -> np.ndarray:
    """QImage → HxWx4 uint8 (RGBA) copy; used by tests and screenshots."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes())
    return buf.reshape(h, img.bytesPerLine())[:, : 4 * w].reshape(h, w, 4).copy()


__all__ = ["SharedImage", "rgb_image", "tint_table", "alpha_table", "HEAT_TABLE", "GREY_TABLE", "to_u8", "map_image",
           "checker_brush", "qimage_to_array"]


def _downsample(a: np.ndarray, f: int) -> np.ndarray:
    """Area-average by an integer factor (edges padded by replication so no pixel is dropped)."""
    import cv2

    h, w = a.shape[:2]
    ph, pw = -h % f, -w % f
    if ph or pw:
        pad = ((0, ph), (0, pw)) + ((0, 0),) * (a.ndim - 2)
        a = np.pad(a, pad, mode="edge")
    out = cv2.resize(a, (a.shape[1] // f, a.shape[0] // f), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out)


class DisplayLevel:
    """One resolution of the photo and mask as drawn; level 1 shares the document's own arrays."""

    def __init__(self, factor: int, rgb: np.ndarray, mask: np.ndarray, tint: list[int], alpha: list[int]) -> None:
        self.factor = factor
        self.rgb = rgb_image(rgb)
        self.mask = mask
        self.tint = SharedImage(mask, QImage.Format.Format_Indexed8, tint)
        self.alpha = SharedImage(mask, QImage.Format.Format_Indexed8, alpha)

    @property
    def size(self) -> tuple[int, int]:
        return self.mask.shape[1], self.mask.shape[0]


class DisplayPyramid:
    """Half, quarter, … resolution copies for zoomed-out views, built on first use and kept in step with edits.

    Scaling a 12 MP Indexed8 overlay into a fitted view converts every source pixel; drawing from the level whose
    scale is just above the view's cuts that work by 4× per level, while a stroke still updates only its block.
    """

    MAX_FACTOR = 16

    def __init__(self, rgb: np.ndarray, mask: np.ndarray, tint: list[int]) -> None:
        self._rgb = rgb
        self._mask = mask
        self._tint = tint
        self._alpha = alpha_table()
        self.levels: dict[int, DisplayLevel] = {1: DisplayLevel(1, rgb, mask, tint, self._alpha)}

    def factor_for(self, scale: float, max_magnification: float = 1.0) -> int:
        """The coarsest power-of-two level drawn at a scale ≤ max_magnification (1: the photo is never magnified;
        the mask overlay may use 2, its edges are smoothed anyway)."""
        f = 1
        while f * 2 <= self.MAX_FACTOR and scale * f * 2 <= max_magnification:
            f *= 2
        return f

    def level(self, factor: int) -> DisplayLevel:
        if factor not in self.levels:
            finer = self.levels[max(k for k in self.levels if k < factor and factor % k == 0)]
            step = factor // finer.factor
            rgb = _downsample(finer.rgb.array, step)
            mask = _downsample(finer.mask, step)
            self.levels[factor] = DisplayLevel(factor, rgb, mask, self._tint, self._alpha)
        return self.levels[factor]

    def set_tint(self, tint: list[int]) -> None:
        self._tint = tint
        for lv in self.levels.values():
            lv.tint = SharedImage(lv.mask, QImage.Format.Format_Indexed8, tint)

    def update_mask(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Recompute the coarse levels over the changed rectangle (whole blocks of the coarsest factor)."""
        h, w = self._mask.shape
        for f, lv in self.levels.items():
            if f == 1:
                continue
            bx0, by0 = x0 // f, y0 // f
            bx1, by1 = -(-x1 // f), -(-y1 // f)
            block = self._mask[by0 * f: min(h, by1 * f), bx0 * f: min(w, bx1 * f)]
            lv.mask[by0:by1, bx0:bx1] = _downsample(block, f)
