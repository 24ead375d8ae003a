"""The image canvas: a plain QWidget with its own view transform (zoom, pan), overlays and the editing tools.

It observes a `Document` and edits only its mask (through `BrushStroke` + the undo stack); prompts that need the
model (box, region re-refine) are emitted as signals for the window to turn into inference jobs. Painting is limited
to the exposed rectangle and draws straight from numpy-backed QImages, so a stroke on a 12 MP photo repaints only a
few thousand screen pixels.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QCursor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

from .brush import BrushStroke
from .document import Document, clip_rect
from .imaging import DisplayPyramid, SharedImage, band_table, checker_brush, map_image, tint_table

TOOLS = ("pan", "brush", "erase", "colour_brush", "colour_erase", "soft_brush", "box", "refine_rect", "refine_lasso")
PAINTING = ("brush", "erase", "colour_brush", "colour_erase", "soft_brush")  # drawn as a round brush under the mouse
OVERLAYS = ("tint", "composite", "checker", "off")
MIN_ZOOM, MAX_ZOOM = 0.01, 32.0
MIN_PROMPT = 8  # the cascade needs a box or region of at least 8×8 pixels
MASK_MAGNIFICATION = 1.25  # zoomed out, the overlay may come from a level slightly coarser than the screen


class Canvas(QWidget):
    zoom_changed = Signal(float)  # scale (1.0 = 100 %)
    brush_size_changed = Signal(int)  # radius in image pixels
    tool_changed = Signal(str)
    overlay_changed = Signal(str)
    box_drawn = Signal(tuple)  # (x0, y0, x1, y1) image pixels
    region_drawn = Signal(tuple, object)  # bounding rect, polygon (N x 2 float array) or None for a rectangle
    cursor_moved = Signal(int, int)
    edit_message = Signal(str)  # a line for the status bar about an edit just made (a colour stroke's outcome)

    def __init__(self, doc: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.scale = 1.0
        self.offset = QPointF(0, 0)
        self.tool = "brush"
        self.overlay = "tint"
        self.opacity = 0.5
        self.tint_color = QColor(255, 40, 80)
        self.composite_color = QColor(0, 255, 0)
        self.brush_radius = 20
        self._pyramid: DisplayPyramid | None = None
        self._stage: SharedImage | None = None
        self._stage_extent: tuple[int, int, int, int] | None = None
        self._band: SharedImage | None = None  # the soft-edge band (where alpha is solved), display resolution
        self.stage_label = ""
        self._checker = checker_brush()
        self._stroke: BrushStroke | None = None
        self._stroke_colour = False  # the running stroke is a colour stroke (grown by colour when it ends)
        self._stroke_soft = False  # the running stroke paints the soft-edge strokes, not the mask
        self._pan_from: QPointF | None = None
        self._space = False
        self._drag_from: QPointF | None = None  # image coords
        self._drag_to: QPointF | None = None
        self._lasso: list[QPointF] = []
        self._mouse: QPointF | None = None
        self._fitted = True
        doc.image_changed.connect(self._on_image)
        doc.mask_changed.connect(self._on_mask)

    # -- document ---------------------------------------------------------------------------------------------------
    def _on_image(self) -> None:
        if self._stroke is not None:
            self._stroke = None
        self._stage = None
        self._band = None
        self.stage_label = ""
        if self.doc.rgb is None or self.doc.mask is None:
            self._pyramid = None
        else:
            self._pyramid = DisplayPyramid(self.doc.rgb, self.doc.mask, tint_table(self.tint_color, self.opacity))
        self.fit()

    def _on_mask(self, rect: QRect) -> None:
        if self._pyramid is not None:
            self._pyramid.update_mask(rect.x(), rect.y(), rect.x() + rect.width(), rect.y() + rect.height())
        if self.overlay == "off" and self._stage is None:
            return
        self.update(self.image_rect_to_widget(rect))

    # -- view transform ---------------------------------------------------------------------------------------------
    def to_image(self, p: QPointF) -> QPointF:
        return QPointF((p.x() - self.offset.x()) / self.scale, (p.y() - self.offset.y()) / self.scale)

    def to_widget(self, p: QPointF) -> QPointF:
        return QPointF(p.x() * self.scale + self.offset.x(), p.y() * self.scale + self.offset.y())

    def image_rect_to_widget(self, rect: QRect | QRectF, margin: int = 2) -> QRect:
        r = QRectF(rect)
        tl = self.to_widget(r.topLeft())
        br = self.to_widget(r.bottomRight())
        return QRectF(tl, br).toAlignedRect().adjusted(-margin, -margin, margin, margin)

    def fit(self) -> None:
        """Zoom so the whole photo fits the widget, centred."""
        self._fitted = True
        if self.doc.rgb is None or self.width() < 2 or self.height() < 2:
            self.update()
            return
        s = min(self.width() / self.doc.width, self.height() / self.doc.height)
        self._set_view(min(MAX_ZOOM, max(MIN_ZOOM, s)), keep_fit=True)

    def _set_view(self, scale: float, anchor_widget: QPointF | None = None, keep_fit: bool = False) -> None:
        if anchor_widget is None or keep_fit:
            self.scale = scale
            self.offset = QPointF((self.width() - self.doc.width * scale) / 2,
                                  (self.height() - self.doc.height * scale) / 2)
        else:
            anchor_img = self.to_image(anchor_widget)
            self.scale = scale
            self.offset = QPointF(anchor_widget.x() - anchor_img.x() * scale,
                                  anchor_widget.y() - anchor_img.y() * scale)
        self._fitted = keep_fit
        self.zoom_changed.emit(self.scale)
        self.update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        if self.doc.rgb is None:
            return
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        self._set_view(min(MAX_ZOOM, max(MIN_ZOOM, self.scale * factor)), anchor)

    def set_zoom(self, scale: float) -> None:
        if self.doc.rgb is None:
            return
        self._set_view(min(MAX_ZOOM, max(MIN_ZOOM, scale)), QPointF(self.width() / 2, self.height() / 2))

    def pan_by(self, dx: float, dy: float) -> None:
        self.offset = QPointF(self.offset.x() + dx, self.offset.y() + dy)
        self._fitted = False
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(900, 650)

    # -- settings ---------------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        self._drag_from = self._drag_to = None
        self._lasso = []
        self.setCursor(Qt.CursorShape.OpenHandCursor if tool == "pan" else
                       Qt.CursorShape.BlankCursor if tool in PAINTING else Qt.CursorShape.CrossCursor)
        self.tool_changed.emit(tool)
        self.update()

    def set_overlay(self, mode: str) -> None:
        if mode not in OVERLAYS:
            raise ValueError(f"unknown overlay {mode!r}")
        self.overlay = mode
        self.overlay_changed.emit(mode)
        self.update()

    def cycle_overlay(self) -> str:
        self.set_overlay(OVERLAYS[(OVERLAYS.index(self.overlay) + 1) % len(OVERLAYS)])
        return self.overlay

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(min(1.0, max(0.0, opacity)))
        if self._pyramid is not None:
            self._pyramid.set_tint(tint_table(self.tint_color, self.opacity))
        self.update()

    def set_composite_color(self, color: QColor) -> None:
        self.composite_color = QColor(color)
        self.update()

    def set_brush_radius(self, radius: int) -> None:
        radius = int(min(1000, max(1, radius)))
        if radius != self.brush_radius:
            self.brush_radius = radius
            self.brush_size_changed.emit(radius)
            self.update()

    def show_stage(self, values: np.ndarray | None, kind: str = "uncertainty", label: str = "",
                   extent: tuple[int, int, int, int] | None = None) -> None:
        """Show one stage map (float in [0, 1]) stretched over `extent` (default: the photo); None hides it."""
        self._stage = None if values is None else map_image(values, kind)
        self._stage_extent = extent
        self.stage_label = label if values is not None else ""
        self.update()

    def set_band(self, band: np.ndarray | None) -> None:
        """Show the soft-edge band (uint8, 255 = alpha is solved there, any size: stretched over the photo)."""
        self._band = None if band is None else SharedImage(np.ascontiguousarray(band, np.uint8),
                                                           QImage.Format.Format_Indexed8, band_table())
        self.update()

    @property
    def band_shown(self) -> bool:
        return self._band is not None

    # -- painting ---------------------------------------------------------------------------------------------------
    def _source_target(self, widget_rect: QRect, level) -> tuple[QRectF, QRectF] | None:  # noqa: ANN001
        """(source rect in the level's pixels, target rect in widget pixels) for what lies under widget_rect."""
        f = level.factor
        tl = self.to_image(QPointF(widget_rect.topLeft()))
        br = self.to_image(QPointF(widget_rect.bottomRight()) + QPointF(1, 1))
        w, h = level.size
        r = clip_rect((int(np.floor(tl.x() / f)) - 1, int(np.floor(tl.y() / f)) - 1, int(np.ceil(br.x() / f)) + 1,
                       int(np.ceil(br.y() / f)) + 1), w, h)
        if r is None:
            return None
        src = QRectF(r[0], r[1], r[2] - r[0], r[3] - r[1])
        return src, self._target(QRectF(r[0] * f, r[1] * f, (r[2] - r[0]) * f, (r[3] - r[1]) * f))

    def _target(self, src: QRectF) -> QRectF:
        return QRectF(self.to_widget(src.topLeft()), self.to_widget(src.bottomRight()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        clip = event.rect()
        p = QPainter(self)
        p.fillRect(clip, QColor(48, 48, 52))
        if self._pyramid is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Open a photo (Ctrl+O) or drop it here")
            p.end()
            return
        pyr = self._pyramid
        photo = pyr.level(pyr.factor_for(self.scale))
        overlay = pyr.level(pyr.factor_for(self.scale, MASK_MAGNIFICATION))
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale * photo.factor < 1.0)
        photo_st = self._source_target(clip, photo)
        mask_st = self._source_target(clip, overlay)
        if photo_st is not None and mask_st is not None:
            if self.overlay in ("composite", "checker"):
                self._paint_cutout(p, clip, photo, photo_st, overlay, mask_st)
            else:
                p.drawImage(photo_st[1], photo.rgb.image, photo_st[0])
                if self.overlay == "tint":
                    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale * overlay.factor < 1.3)
                    p.drawImage(mask_st[1], overlay.tint.image, mask_st[0])
            if self._band is not None:
                img = self._band.image
                p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                p.drawImage(self._target(QRectF(0, 0, self.doc.width, self.doc.height)), img,
                            QRectF(0, 0, img.width(), img.height()))
            if self._stage is not None:
                img = self._stage.image
                x0, y0, x1, y1 = self._stage_extent or (0, 0, self.doc.width, self.doc.height)
                full = self._target(QRectF(x0, y0, x1 - x0, y1 - y0))
                p.setOpacity(0.85)
                p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                p.drawImage(full, img, QRectF(0, 0, img.width(), img.height()))
                p.setOpacity(1.0)
        self._paint_tool_feedback(p)
        p.end()

    def _paint_cutout(self, p: QPainter, clip: QRect, photo, photo_st, overlay, mask_st) -> None:  # noqa: ANN001
        """Composite / checkerboard: the photo cut out by the mask, computed at screen resolution for `clip` only."""
        ratio = self.devicePixelRatioF()
        layer = QImage(QSize(int(clip.width() * ratio), int(clip.height() * ratio)),
                       QImage.Format.Format_ARGB32_Premultiplied)
        layer.setDevicePixelRatio(ratio)
        layer.fill(Qt.GlobalColor.transparent)
        lp = QPainter(layer)
        lp.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale * photo.factor < 1.0)
        lp.translate(-clip.x(), -clip.y())
        lp.drawImage(photo_st[1], photo.rgb.image, photo_st[0])
        lp.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
        lp.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale * overlay.factor < 1.3)
        lp.drawImage(mask_st[1], overlay.alpha.image, mask_st[0])
        lp.end()
        image_area = self._target(QRectF(0, 0, self.doc.width, self.doc.height)).toAlignedRect() & clip
        if self.overlay == "checker":
            p.setBrushOrigin(self.offset)
            p.fillRect(image_area, self._checker)
        else:
            p.fillRect(image_area, self.composite_color)
        p.drawImage(clip.topLeft(), layer)

    def _paint_tool_feedback(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._drag_from is not None and self._drag_to is not None:
            rect = QRectF(self.to_widget(self._drag_from), self.to_widget(self._drag_to)).normalized()
            color = QColor(255, 220, 0) if self.tool == "box" else QColor(0, 200, 255)
            p.setPen(QPen(QColor(0, 0, 0), 3))
            p.drawRect(rect)
            p.setPen(QPen(color, 1.5, Qt.PenStyle.DashLine))
            p.drawRect(rect)
        if len(self._lasso) > 1:
            poly = QPolygonF([self.to_widget(q) for q in self._lasso])
            p.setPen(QPen(QColor(0, 0, 0), 3))
            p.drawPolygon(poly)
            p.setPen(QPen(QColor(0, 200, 255), 1.5, Qt.PenStyle.DashLine))
            p.drawPolygon(poly)
        if self._stroke is not None and self._stroke_soft and self._stroke.points:  # the soft-edge stroke so far
            trail = QPolygonF([self.to_widget(QPointF(x, y)) for x, y in self._stroke.points])
            pen = QPen(QColor(255, 0, 255, 110), max(1.0, 2 * self._stroke.radius * self.scale))
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            p.drawPolyline(trail)
        if self.tool in PAINTING and self._mouse is not None:
            r = self.brush_radius * self.scale
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(QColor(0, 0, 0), 3))
            p.drawEllipse(self._mouse, r, r)
            adds = self.tool in ("brush", "colour_brush")
            ring = QColor(255, 0, 255) if self.tool == "soft_brush" else QColor(255, 255, 255) if adds else \
                QColor(255, 90, 90)
            p.setPen(QPen(ring, 1.5))
            p.drawEllipse(self._mouse, r, r)
            if self.tool.startswith("colour"):  # how far the stroke may grow: a dotted ring at the reach
                reach = self.colour_reach() * self.scale
                p.setPen(QPen(QColor(0, 0, 0, 160), 2.5))
                p.drawEllipse(self._mouse, reach, reach)
                p.setPen(QPen(QColor(255, 255, 255) if adds else QColor(255, 90, 90), 1, Qt.PenStyle.DotLine))
                p.drawEllipse(self._mouse, reach, reach)
        if self.stage_label:
            width = self.fontMetrics().horizontalAdvance(self.stage_label)
            p.fillRect(QRect(8, 8, width + 14, 22), QColor(0, 0, 0, 160))
            p.setPen(QColor(255, 255, 255))
            p.drawText(QRect(15, 8, width + 4, 22), Qt.AlignmentFlag.AlignVCenter, self.stage_label)

    def _brush_cursor_rect(self, center: QPointF | None) -> QRect:
        if center is None:
            return QRect()
        r = (self.colour_reach() if self.tool.startswith("colour") else self.brush_radius) * self.scale + 4
        return QRectF(center.x() - r, center.y() - r, 2 * r, 2 * r).toAlignedRect()

    def colour_reach(self) -> float:
        """How far (image pixels) a colour stroke with the current brush may grow from its own pixels."""
        from mos_studio.core.strokes import reach_for_brush

        return reach_for_brush(self.brush_radius)

    # -- input ------------------------------------------------------------------------------------------------------
    def _panning_gesture(self, event: QMouseEvent) -> bool:
        return (event.button() == Qt.MouseButton.MiddleButton or self._space or self.tool == "pan"
                ) and event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self.doc.rgb is None:
            return
        pos = event.position()
        if self._panning_gesture(event):
            self._pan_from = pos
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        img = self.to_image(pos)
        if self.tool == "soft_brush":
            self._stroke = BrushStroke(self.doc.ensure_soft_band(), self.brush_radius, 255)
            self._stroke_colour = False
            self._stroke_soft = True
            self._extend_stroke(img)
        elif self.tool in PAINTING:
            self._stroke = BrushStroke(self.doc.mask, self.brush_radius, 0 if self.tool.endswith("erase") else 255)
            self._stroke_colour = self.tool.startswith("colour")
            self._stroke_soft = False
            self._extend_stroke(img)
        elif self.tool in ("box", "refine_rect"):
            self._drag_from = self._drag_to = img
        elif self.tool == "refine_lasso":
            self._lasso = [img]

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        old_cursor = self._brush_cursor_rect(self._mouse)
        self._mouse = pos
        img = self.to_image(pos)
        self.cursor_moved.emit(int(np.floor(img.x())), int(np.floor(img.y())))
        if self._pan_from is not None:
            d = pos - self._pan_from
            self._pan_from = pos
            self.pan_by(d.x(), d.y())
            return
        if self._stroke is not None:
            self._extend_stroke(img)
        elif self._drag_from is not None:
            self._drag_to = img
            self.update()
        elif self._lasso:
            self._lasso.append(img)
            self.update()
        if self.tool in PAINTING:
            self.update(old_cursor | self._brush_cursor_rect(pos))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._pan_from is not None:
            self._pan_from = None
            if self._space:
                self.setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.set_tool(self.tool)  # restores the tool's cursor
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if self._stroke is not None:
            self.end_stroke()
        elif self._drag_from is not None and self._drag_to is not None:
            a, b = self._drag_from, self._drag_to
            self._drag_from = self._drag_to = None
            rect = clip_rect((int(round(a.x())), int(round(a.y())), int(round(b.x())), int(round(b.y()))),
                             self.doc.width, self.doc.height)
            self.update()
            if rect is not None and rect[2] - rect[0] >= MIN_PROMPT and rect[3] - rect[1] >= MIN_PROMPT:
                if self.tool == "box":
                    self.box_drawn.emit(rect)
                else:
                    self.region_drawn.emit(rect, None)
        elif self._lasso:
            pts = np.array([(q.x(), q.y()) for q in self._lasso], np.float32)
            self._lasso = []
            self.update()
            if len(pts) >= 3:
                rect = clip_rect((int(np.floor(pts[:, 0].min())), int(np.floor(pts[:, 1].min())),
                                  int(np.ceil(pts[:, 0].max())) + 1, int(np.ceil(pts[:, 1].max())) + 1),
                                 self.doc.width, self.doc.height)
                if rect is not None and rect[2] - rect[0] >= MIN_PROMPT and rect[3] - rect[1] >= MIN_PROMPT:
                    self.region_drawn.emit(rect, pts)

    def _extend_stroke(self, img: QPointF) -> None:
        assert self._stroke is not None
        rect = self._stroke.add((img.x(), img.y()))
        if rect is None:
            return
        # zoomed out, the overlay is drawn from a coarser copy: keep it in step (a soft-edge stroke is drawn as a trail
        # by _paint_tool_feedback instead, and the band follows when it ends)
        if self._pyramid is not None and not self._stroke_soft:
            self._pyramid.update_mask(*rect)
        self.update(self.image_rect_to_widget(QRect(rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1])))

    def end_stroke(self) -> None:
        """Finish the running stroke and record it as one undoable step."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        footprint = stroke.footprint() if self._stroke_colour else None
        done = stroke.finish()
        if done is None:
            return
        rect, before, after = done
        if self._stroke_soft:
            self._stroke_soft = False
            self.doc.push_soft_patch(rect, before, after, "Soft-edge brush")
            self.update()
            return
        if footprint is None:
            self.doc.push_patch(rect, before, after, "Brush" if stroke.value else "Erase")
            return
        self._grow_by_colour(rect, before, footprint, add=bool(stroke.value), radius=stroke.radius)

    def _grow_by_colour(self, rect: tuple[int, int, int, int], before: np.ndarray,
                        footprint: tuple[tuple[int, int], np.ndarray], add: bool, radius: float) -> None:
        """Replace a finished colour stroke's paint with what its colours reach (one undo step), or put the mask
        back as it was when that fails: a colour stroke never leaves a half-made edit."""
        from mos_studio.core.strokes import colour_stroke, reach_for_brush

        x0, y0, x1, y1 = rect
        self.doc.mask[y0:y1, x0:x1] = before  # the paint was only to show the stroke while it was drawn
        name = "Colour brush" if add else "Colour eraser"
        reach = reach_for_brush(radius)  # the radius the stroke had, not the brush's now
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        t0 = time.perf_counter()
        try:
            grown = colour_stroke(self.doc.rgb, self.doc.mask, footprint[1], add, reach, origin=footprint[0])
        except ValueError as err:
            grown = None
            self.edit_message.emit(f"{name}: nothing changed ({err})")
        finally:
            QApplication.restoreOverrideCursor()
        changed = False
        if grown is not None:
            (gx0, gy0, gx1, gy1), values = grown
            changed = self.doc.replace_region((gx0, gy0, gx1, gy1), values.astype(np.uint8) * 255, name)
            self.edit_message.emit(
                f"{name}: {'changed the mask' if changed else 'nothing to change'} within {reach:.0f} px of the "
                f"stroke ({time.perf_counter() - t0:.1f} s)")
        if not changed:  # show the mask without the stroke's paint again
            if self._pyramid is not None:
                self._pyramid.update_mask(x0, y0, x1, y1)
            self.update(self.image_rect_to_widget(QRect(x0, y0, x1 - x0, y1 - y0)))

    def paint_stroke(self, points: list[tuple[float, float]], erase: bool = False, radius: int | None = None,
                     colour: bool = False, soft: bool = False) -> None:
        """Paint a stroke through image-space points, exactly as a mouse drag would (used by tests and scripts);
        `colour`: as the colour brush or eraser, grown by colour when it ends; `soft`: as the soft-edge brush."""
        if self.doc.mask is None or not points:
            return
        target = self.doc.ensure_soft_band() if soft else self.doc.mask
        self._stroke = BrushStroke(target, radius or self.brush_radius, 0 if erase else 255)
        self._stroke_colour = colour and not soft
        self._stroke_soft = soft
        for x, y in points:
            self._extend_stroke(QPointF(x, y))
        self.end_stroke()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.15 ** steps
            self.set_brush_radius(int(round(self.brush_radius * factor)) + (1 if steps > 0 else -1))
            return
        self.zoom_by(1.25 ** steps, event.position())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() == Qt.Key.Key_Escape and (self._drag_from is not None or self._lasso):
            self._drag_from = self._drag_to = None
            self._lasso = []
            self.update()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.set_tool(self.tool)
            return
        super().keyReleaseEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt API
        old = self._brush_cursor_rect(self._mouse)
        self._mouse = None
        self.update(old)
        super().leaveEvent(event)

    def cursor_image_pos(self) -> QPoint:
        return self.to_image(QPointF(self.mapFromGlobal(QCursor.pos()))).toPoint()
