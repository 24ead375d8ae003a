"""Stage inspector: the 7 HierPR blocks' uncertainty maps and predictions side by side (the paper's Fig. 6).

One tab per network (L, the segmenter; H, the refiner). Each thumbnail is drawn at the photo's aspect ratio;
clicking one asks for it to be shown over the image (the canvas does that), clicking it again hides it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .document import Document, StageSet
from .imaging import SharedImage, map_image

NET_TITLES = {"L": "L — segmenter", "H": "H — refiner"}
KINDS = ("uncertainty", "prediction")


class Thumbnail(QWidget):
    """One stage map, clickable."""

    clicked = Signal()

    def __init__(self, width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._width = width
        self._aspect = 0.75
        self._image: SharedImage | None = None
        self.selected = False
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFixedSize(self.sizeHint())

    def set_aspect(self, aspect: float) -> None:
        self._aspect = max(0.1, min(10.0, aspect))
        self.setFixedSize(self.sizeHint())

    def set_map(self, image: SharedImage | None) -> None:
        self._image = image
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(self._width, max(8, int(round(self._width * self._aspect))))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 30, 34))
        if self._image is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            img = self._image.image
            p.drawImage(QRectF(self.rect()), img, QRectF(0, 0, img.width(), img.height()))
        else:
            p.setPen(QColor(120, 120, 120))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "—")
        if self.selected:
            p.setPen(QPen(QColor(255, 200, 0), 3))
            p.drawRect(self.rect().adjusted(1, 1, -2, -2))
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()


class StageInspector(QWidget):
    stage_selected = Signal(str, int, str)  # net, block index, kind
    stage_cleared = Signal()
    save_requested = Signal()  # the user wants the maps as files (the window asks where)

    def __init__(self, doc: Document, thumb_width: int = 112, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.tabs = QTabWidget()
        self.thumbs: dict[tuple[str, int, str], Thumbnail] = {}
        self.name_labels: dict[tuple[str, int], QLabel] = {}
        self.selection: tuple[str, int, str] | None = None
        for net in ("L", "H"):
            page = QWidget()
            grid = QGridLayout(page)
            grid.setHorizontalSpacing(6)
            grid.setVerticalSpacing(4)
            grid.addWidget(QLabel("<b>block</b>"), 0, 0)
            grid.addWidget(QLabel("<b>uncertainty</b>"), 0, 1, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(QLabel("<b>prediction</b>"), 0, 2, Qt.AlignmentFlag.AlignHCenter)
            for i in range(7):
                name = QLabel("—")
                self.name_labels[(net, i)] = name
                grid.addWidget(name, i + 1, 0)
                for col, kind in enumerate(KINDS, start=1):
                    thumb = Thumbnail(thumb_width)
                    thumb.clicked.connect(lambda n=net, k=i, kd=kind: self.toggle(n, k, kd))
                    self.thumbs[(net, i, kind)] = thumb
                    grid.addWidget(thumb, i + 1, col)
            grid.setRowStretch(8, 1)
            scroll = QScrollArea()
            scroll.setWidget(page)
            scroll.setWidgetResizable(True)
            self.tabs.addTab(scroll, NET_TITLES[net])
        self.hint = QLabel("Run “Cut out” to see how each HierPR block refines the mask.")
        self.hint.setWordWrap(True)
        self.stretch = QCheckBox("Stretch each map to its own range")
        self.stretch.setToolTip("Off: absolute values (uncertainty 1 = p of 0.5). On: min–max per map, to see faint "
                                "structure.")
        self.stretch.toggled.connect(self.refresh)
        self.save_button = QPushButton("Save maps…")
        self.save_button.setToolTip("Write every block's maps of L and H: a sheet as the paper's Figure 6 (PNG, "
                                    "stretched if the box above is ticked) and the float maps at each block's "
                                    "resolution beside it (.npz)")
        self.save_button.clicked.connect(self.save_requested)
        self.save_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.hint)
        layout.addWidget(self.tabs)
        layout.addWidget(self.stretch)
        layout.addWidget(self.save_button)
        self.setMinimumWidth(2 * thumb_width + 120)
        doc.stages_changed.connect(self.refresh)
        doc.image_changed.connect(self.refresh)

    def refresh(self) -> None:
        self.clear_selection(emit=False)
        for tab, net in enumerate(("L", "H")):
            stage_set: StageSet | None = self.doc.stages.get(net)
            small = stage_set is not None and stage_set.weights == "Hs"
            self.tabs.setTabText(tab, NET_TITLES[net] + (" (small-photo weights)" if small else ""))
            self.tabs.setTabToolTip(tab, "H's second weights, trained on small photos, refined this cut: the photo "
                                    "is no larger than H's 1024 px global pass" if small else "")
            aspect = 0.75
            if self.doc.has_image:
                x0, y0, x1, y1 = (stage_set.rect(self.doc.width, self.doc.height) if stage_set is not None
                                  else (0, 0, self.doc.width, self.doc.height))
                aspect = (y1 - y0) / max(1, x1 - x0)
            for i in range(7):
                view = stage_set.stages[i] if stage_set is not None and i < len(stage_set.stages) else None
                self.name_labels[(net, i)].setText(view.name if view is not None else "—")
                for kind in KINDS:
                    thumb = self.thumbs[(net, i, kind)]
                    thumb.set_aspect(aspect)
                    thumb.set_map(None if view is None else map_image(self.display_values(getattr(view, kind)), kind))
        has = bool(self.doc.stages)
        self.hint.setVisible(not has)
        self.save_button.setEnabled(has)
        if has and "H" in self.doc.stages and "L" not in self.doc.stages:
            self.tabs.setCurrentIndex(1)

    def display_values(self, values: np.ndarray) -> np.ndarray:
        """The map as drawn: absolute, or stretched to [0, 1] when the user asked to see faint structure."""
        if not self.stretch.isChecked():
            return values
        lo, hi = float(np.min(values)), float(np.max(values))
        return (values - lo) / (hi - lo) if hi - lo > 1e-6 else np.zeros_like(values)

    def toggle(self, net: str, index: int, kind: str) -> None:
        """Select a map (the window shows it over the image), or clear it when it is already selected."""
        stage_set = self.doc.stages.get(net)
        if stage_set is None or index >= len(stage_set.stages):
            return
        if self.selection == (net, index, kind):
            self.clear_selection()
            return
        self.clear_selection(emit=False)
        self.selection = (net, index, kind)
        self.thumbs[self.selection].selected = True
        self.thumbs[self.selection].update()
        self.stage_selected.emit(net, index, kind)

    def clear_selection(self, emit: bool = True) -> None:
        if self.selection is not None:
            self.thumbs[self.selection].selected = False
            self.thumbs[self.selection].update()
            self.selection = None
            if emit:
                self.stage_cleared.emit()
