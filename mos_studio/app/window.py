"""The main window: wires the document, canvas, stage inspector, inference and export controllers together.

Widgets talk through the `Document` and signals; none of them holds the window. The window is the only place that
turns user intent (menus, tools, prompts) into jobs and applies their results — and only when the job's generation
is still the document's, so a late result never overwrites a newer edit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import qtawesome as qta
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QColor, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QHeaderView,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
)

from . import messages
from .canvas import OVERLAYS, Canvas
from .document import Document
from .export import EXPORT_KINDS, ExportController, ExportJob
from .inference import CascadeLoader, InferenceController, Job, JobResult, UserFacingError
from .inspector import StageInspector
from .opener import ImageOpener, describe_open_error
from .recovery import RecoveryStore, photo_key
from .settings import AppSettings

APP_NAME = "MOS Studio"
CUT_HINT = "Wrong patch? Colour eraser (Shift+W) or colour brush (W) over it. Wrong subject? Box prompt (X)"
RECOVERY_DELAY_MS = 1500  # a recovery copy of an unexported mask is kept this long after the last edit
OVERLAY_TITLES = {"tint": "Mask tint", "composite": "Composite on colour", "checker": "Cut-out on checkerboard",
                  "off": "No overlay"}
OPEN_FILTER = "Images (*.jpg *.jpeg *.png *.tif *.tiff *.webp);;All files (*)"


def icon(name: str):  # noqa: ANN201 - QIcon
    """A qtawesome icon in the palette's text colour, so it reads on light and dark themes."""
    from PySide6.QtWidgets import QApplication

    pal = QApplication.palette()
    return qta.icon(name, color=pal.windowText().color().name(), color_disabled=pal.mid().color().name())



# What the newer tools do, shown in the status bar when one is picked (the menu text is only their name).
TOOL_HINTS = {
    "colour_brush": "Colour brush: paint a few pixels of what the cut missed; on release it grows by colour to the "
                    "photo's edges, within the dotted ring",
    "colour_erase": "Colour eraser: paint a few pixels of background the cut kept; on release it goes, up to the "
                    "photo's edges, within the dotted ring",
    "soft_brush": "Soft-edge brush: paint over fur or hair at the edge; exports with Soft edges solve alpha there",
}

class MainWindow(QMainWindow):
    """MOS Studio's window. `loader` builds the cascade (tests pass tiny models); `settings` persists preferences."""

    image_opened = Signal(str)
    result_applied = Signal(object)  # Job
    result_dropped = Signal(object)  # Job
    export_done = Signal(str)

    def __init__(self, settings: AppSettings | None = None, loader: CascadeLoader | None = None,
                 preload: bool = True, loader_for_device: Callable[[str | None], CascadeLoader] | None = None
                 ) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.doc = Document(self)
        self.loader_for_device = loader_for_device
        if loader_for_device is not None:
            loader = loader_for_device("cpu" if self.settings.cpu_only() else None)
        self.controller = InferenceController(loader, self)
        self.exporter = ExportController(self)
        self.opener = ImageOpener(self)
        self.canvas = Canvas(self.doc)
        self.inspector = StageInspector(self.doc)
        self.dropped_results = 0
        self.soft_band_px = 0
        self.last_timings: dict[str, float] = {}
        self._job_started_at = 0.0
        # what to do once the export the user chose in the "export first?" question has been written
        self._after_export: Callable[[], object] | None = None
        # a copy of an unexported mask, kept a moment after each edit (mos_studio.app.recovery)
        self.recovery = RecoveryStore(self.settings.recovery_dir())
        self.recovery.prune()
        self._recovery_key: str | None = None
        self._recovery_error_shown: str | None = None
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.setCentralWidget(self.canvas)
        self.inspector_dock = QDockWidget("Stage inspector", self)
        self.inspector_dock.setObjectName("stage_inspector")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_statusbar()
        self._connect()
        self._restore_settings()
        self._update_enabled()
        self._shut_down = False
        from PySide6.QtWidgets import QApplication

        if (app := QApplication.instance()) is not None:
            app.aboutToQuit.connect(self.shutdown)
        if preload:
            QTimer.singleShot(400, self.controller.preload)
        else:
            self.device_label.setText("Device: chosen at the first cut")

    # -- construction -----------------------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None, checkable: bool = False,  # noqa: ANN001
                group: str = "") -> QAction:
        act = QAction(text, self)
        if icon_name:
            act.setIcon(icon(icon_name))
        if shortcut:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            act.setShortcuts([QKeySequence(s) for s in shortcuts])
        act.setCheckable(checkable)
        act.setProperty("group", group)
        if slot is not None:
            act.triggered.connect(slot)
        self.addAction(act)
        self.all_actions.append(act)
        return act

    def _build_actions(self) -> None:
        self.all_actions: list[QAction] = []
        a = self._action
        self.act_open = a("&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "mdi6.folder-open", group="File")
        self.act_export_cutout = a("Export &cut-out (PNG)…", lambda: self.export_dialog("cutout"), "Ctrl+E",
                                   "mdi6.content-save", group="File")
        self.act_export_mask = a("Export &mask (PNG)…", lambda: self.export_dialog("mask"), "Ctrl+Shift+M",
                                 "mdi6.content-save-outline", group="File")
        self.act_export_composite = a("Export c&omposite on colour…", lambda: self.export_dialog("composite"),
                                      "Ctrl+Shift+E", "mdi6.image-move", group="File")
        self.act_export_stages = a("Export stage maps (sheet and arrays)…", self.export_stages_dialog, None,
                                   "mdi6.view-grid-outline", group="File")
        self.act_soft_edges = a("&Soft edges (alpha matting where H was unsure)", self.set_soft_edges, "Shift+S",
                                "mdi6.blur", checkable=True, group="File")
        self.act_soft_edges.setToolTip("On: exports solve a soft alpha in the band where H was unsure (shown in "
                                       "magenta) and take the object's own colours there, so hair and fur keep no "
                                       "fringe of the old background. Off: the 0/255 mask.")
        self.act_soft_edges.setChecked(self.settings.soft_edges())
        self.act_quit = a("&Quit", self.close, "Ctrl+Q", "mdi6.exit-to-app", group="File")

        self.act_undo = self.doc.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        self.act_undo.setIcon(icon("mdi6.undo"))
        self.act_redo = self.doc.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_redo.setIcon(icon("mdi6.redo"))
        for act in (self.act_undo, self.act_redo):
            act.setProperty("group", "Edit")
            self.addAction(act)
            self.all_actions.append(act)
        self.act_clear = a("C&lear mask", self.clear_mask, "Ctrl+Backspace", "mdi6.eraser-variant", group="Edit")
        self.act_invert = a("&Invert mask", self.invert_mask, "Ctrl+I", "mdi6.invert-colors", group="Edit")
        self.act_clear_soft = a("Clear &soft-edge strokes", self.clear_soft_strokes, "Ctrl+Shift+Backspace",
                                "mdi6.blur-off", group="Edit")

        self.act_cut = a("&Cut out", self.run_cut, ["Ctrl+Return", "Ctrl+Enter"], "mdi6.content-cut", group="Segment")
        self.act_cancel = a("C&ancel", self.controller.cancel, "Esc", "mdi6.cancel", group="Segment")
        self.act_cpu_only = a("Run on the CPU only", self.set_cpu_only, "Ctrl+Shift+G", "mdi6.chip", checkable=True,
                              group="Segment")
        self.act_cpu_only.setChecked(self.settings.cpu_only())
        self.act_cpu_only.setEnabled(self.loader_for_device is not None)
        self.act_cpu_only.setToolTip("Off: the GPU when there is one (CUDA or Apple MPS), else the CPU")
        self.act_edge_snap = a("Snap &edges to the photo", self.set_edge_snap, "Shift+E", "mdi6.vector-curve",
                               checkable=True, group="Segment")
        self.act_edge_snap.setChecked(self.settings.edge_snap())
        self.act_edge_snap.setToolTip("On: a cut's or re-refined region's edge is moved onto the photo's own edges "
                                      "(a guided filter; as the model card says). Off: H's edge as it is.")
        self.act_colour_assist = a("Decide unsure edges by &colour", self.set_colour_assist, "Shift+K",
                                   "mdi6.palette", checkable=True, group="Segment")
        self.act_colour_assist.setChecked(self.settings.colour_assist())
        self.act_colour_assist.setToolTip(
            "On: where the low-resolution pass is unsure, a colour model of what it is sure of decides (GrabCut; "
            "about 0.15 s more a cut). Helps where the object's colours plainly differ from the background's, "
            "hurts where they are shared. Cuts and box prompts only.")
        self.act_fine_detail = a("Fine &detail at full resolution (slower)", self.set_fine_detail, "Shift+D",
                                 "mdi6.magnify-scan", checkable=True, group="Segment")
        self.act_fine_detail.setChecked(self.settings.fine_detail())
        self.act_fine_detail.setToolTip(
            "On: after its whole-photo pass, H looks again at 1:1 in 512 px tiles along the edge, which brings back "
            "whiskers, stray hairs and thin stems in photos larger than about 1000 px. About 6 times slower on a "
            "CPU. Photos under 768 px already get an enlarged look and are unchanged.")

        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, text, key, ic in (
            ("brush", "&Brush (add)", "B", "mdi6.brush"),
            ("erase", "&Eraser", "E", "mdi6.eraser"),
            ("colour_brush", "Colour br&ush (add; grows by colour to the photo's edges)", "W", "mdi6.auto-fix"),
            ("colour_erase", "C&olour eraser (remove; grows by colour to the photo's edges)", "Shift+W",
             "mdi6.magic-staff"),
            ("soft_brush", "&Soft-edge brush (paint where the cut-out's edge should be soft: hair, fur)", "S",
             "mdi6.blur"),
            ("box", "Bo&x prompt (segment the object in a box)", "X", "mdi6.select-drag"),
            ("refine_rect", "&Re-refine rectangle", "R", "mdi6.selection"),
            ("refine_lasso", "Re-refine &lasso", "L", "mdi6.lasso"),
            ("pan", "&Pan (or hold Space / middle mouse)", "H", "mdi6.hand-back-right"),
        ):
            act = a(text, lambda _=False, t=tool: self.canvas.set_tool(t), key, ic, checkable=True, group="Tools")
            self.tool_group.addAction(act)
            self.tool_actions[tool] = act
        self.act_brush_bigger = a("Brush bigger (or Ctrl+wheel)", lambda: self._scale_brush(1.25), "]",
                                  group="Tools")
        self.act_brush_smaller = a("Brush smaller (or Ctrl+wheel)", lambda: self._scale_brush(0.8), "[",
                                   group="Tools")

        self.act_fit = a("&Fit to window", self.canvas.fit, "F", "mdi6.fit-to-screen", group="View")
        self.act_100 = a("Actual size (100 %)", lambda: self.canvas.set_zoom(1.0), "1", "mdi6.numeric-1-box-outline",
                         group="View")
        self.act_zoom_in = a("Zoom &in (or wheel)", lambda: self.canvas.zoom_by(1.25), ["Ctrl+=", "+"],
                             "mdi6.magnify-plus", group="View")
        self.act_zoom_out = a("Zoom &out (or wheel)", lambda: self.canvas.zoom_by(0.8), ["Ctrl+-", "-"],
                              "mdi6.magnify-minus", group="View")
        self.act_overlay = a("Next &overlay (tint / composite / checkerboard / off)", self.canvas.cycle_overlay, "M",
                             "mdi6.layers", group="View")
        self.act_overlay_toggle = a("Overlay on/off", self.toggle_overlay, "O", "mdi6.layers-off", group="View")
        self.act_color = a("Composite &colour…", self.choose_color, "Shift+C", "mdi6.palette", group="View")
        self.act_inspector = self.inspector_dock.toggleViewAction()
        self.act_inspector.setText("Stage &inspector")
        self.act_inspector.setShortcut(QKeySequence("I"))
        self.act_inspector.setIcon(icon("mdi6.view-grid"))
        self.act_inspector.setProperty("group", "View")
        self.all_actions.append(self.act_inspector)
        self.act_hide_stage = a("Hide stage map", self.hide_stage, "Shift+I", group="View")

        self.act_shortcuts = a("&Keyboard shortcuts", self.show_shortcuts, "F1", "mdi6.keyboard", group="Help")
        self.act_about = a("&About MOS Studio", self.show_about, None, "mdi6.information-outline", group="Help")

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        for act in (self.act_export_cutout, self.act_export_mask, self.act_export_composite):
            m.addAction(act)
        m.addAction(self.act_export_stages)
        m.addAction(self.act_soft_edges)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for act in (self.act_undo, self.act_redo, None, self.act_clear, self.act_invert, self.act_clear_soft):
            m.addSeparator() if act is None else m.addAction(act)
        m = mb.addMenu("&Segment")
        m.addAction(self.act_cut)
        m.addAction(self.act_cancel)
        m.addAction(self.act_cpu_only)
        m.addAction(self.act_edge_snap)
        m.addAction(self.act_colour_assist)
        m.addAction(self.act_fine_detail)
        m.addSeparator()
        for tool in ("box", "refine_rect", "refine_lasso"):
            m.addAction(self.tool_actions[tool])
        m = mb.addMenu("&Tools")
        for act in self.tool_group.actions():
            m.addAction(act)
        m.addSeparator()
        m.addAction(self.act_brush_bigger)
        m.addAction(self.act_brush_smaller)
        m = mb.addMenu("&View")
        for act in (self.act_fit, self.act_100, self.act_zoom_in, self.act_zoom_out, None, self.act_overlay,
                    self.act_overlay_toggle, self.act_color, None, self.act_inspector, self.act_hide_stage):
            m.addSeparator() if act is None else m.addAction(act)
        m = mb.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setIconSize(QSize(20, 20))
        tb.addAction(self.act_open)
        tb.addAction(self.act_export_cutout)
        tb.addAction(self.act_soft_edges)
        tb.addSeparator()
        tb.addAction(self.act_cut)
        tb.addSeparator()
        tb.addAction(self.act_undo)
        tb.addAction(self.act_redo)
        tb.addSeparator()
        for act in self.tool_group.actions():
            tb.addAction(act)
        tb.addWidget(QLabel(" Size "))
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 1000)
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("Brush radius in image pixels ([ and ], or Ctrl+wheel)")
        tb.addWidget(self.brush_spin)
        tb.addSeparator()
        self.overlay_combo = QComboBox()
        for mode in OVERLAYS:
            self.overlay_combo.addItem(OVERLAY_TITLES[mode], mode)
        self.overlay_combo.setToolTip("How the mask is shown (M cycles)")
        tb.addWidget(self.overlay_combo)
        tb.addWidget(QLabel(" Opacity "))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(100)
        self.opacity_slider.setToolTip("Mask tint opacity")
        tb.addWidget(self.opacity_slider)
        tb.addAction(self.act_color)
        tb.addSeparator()
        tb.addAction(self.act_fit)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.stage_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(180)
        self.progress.setVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setDefaultAction(self.act_cancel)
        self.cancel_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.cancel_button.setVisible(False)
        self.pos_label = QLabel("")
        self.zoom_label = QLabel("")
        self.device_label = QLabel("Device: loading…")
        self.device_label.setToolTip("Where the model runs (GPU name or CPU)")
        for w in (self.stage_label, self.progress, self.cancel_button):
            sb.addWidget(w)
        for w in (self.pos_label, self.zoom_label, self.device_label):
            sb.addPermanentWidget(w)

    def _connect(self) -> None:
        c = self.canvas
        c.zoom_changed.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f} %"))
        c.cursor_moved.connect(self._show_pos)
        c.tool_changed.connect(self._on_tool)
        c.overlay_changed.connect(self._on_overlay)
        c.brush_size_changed.connect(self._on_brush_size)
        c.box_drawn.connect(self.run_box)
        c.region_drawn.connect(self.run_refine)
        c.edit_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.brush_spin.valueChanged.connect(c.set_brush_radius)
        self.overlay_combo.currentIndexChanged.connect(lambda i: c.set_overlay(self.overlay_combo.itemData(i)))
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.inspector.stage_selected.connect(self._show_stage)
        self.inspector.stage_cleared.connect(self.hide_stage)
        self.inspector.save_requested.connect(self.export_stages_dialog)
        ic = self.controller
        ic.started.connect(self._on_job_started)
        ic.progress.connect(self._on_progress)
        ic.finished.connect(self._on_finished)
        ic.failed.connect(self._on_failed)
        ic.cancelled.connect(self._on_cancelled)
        ic.device_ready.connect(self._on_device)
        ic.busy_changed.connect(lambda _busy: self._update_enabled())
        op = self.opener
        op.loaded.connect(self._on_opened)
        op.failed.connect(self._on_open_failed)
        op.busy_changed.connect(self._on_open_busy)
        ex = self.exporter
        ex.started.connect(self._on_export_started)
        ex.finished.connect(self._on_export_finished)
        ex.failed.connect(self._on_export_failed)
        ex.busy_changed.connect(lambda _busy: self._update_enabled())
        self.doc.image_changed.connect(self._update_enabled)
        self.doc.stages_changed.connect(self._update_enabled)
        self.doc.undo_stack.indexChanged.connect(lambda _i: self._update_enabled())
        self.doc.undo_stack.indexChanged.connect(lambda _i: self._on_stack_changed())
        self.doc.undo_stack.cleanChanged.connect(lambda _clean: self._on_stack_changed())
        self._recovery_timer = QTimer(self)
        self._recovery_timer.setSingleShot(True)
        self._recovery_timer.setInterval(RECOVERY_DELAY_MS)
        self._recovery_timer.timeout.connect(self.keep_recovery_copy)
        self._band_timer = QTimer(self)
        self._band_timer.setSingleShot(True)
        self._band_timer.setInterval(250)  # a brush stroke is many mask changes: recompute the band once after it
        self._band_timer.timeout.connect(self.update_band)
        for sig in (self.doc.mask_changed, self.doc.stages_changed, self.doc.image_changed):
            sig.connect(lambda *_: self._band_timer.start() if self.act_soft_edges.isChecked() else None)
        self.doc.soft_band_changed.connect(self._on_soft_strokes)

    def _restore_settings(self) -> None:
        s = self.settings
        self.canvas.set_brush_radius(s.brush_radius())
        self.brush_spin.setValue(self.canvas.brush_radius)
        self.opacity_slider.setValue(int(round(s.opacity() * 100)))
        self.canvas.set_opacity(s.opacity())
        self.canvas.set_composite_color(s.composite_color())
        mode = s.overlay_mode()
        self.canvas.set_overlay(mode if mode in OVERLAYS else "tint")
        self._on_overlay(self.canvas.overlay)
        tool = s.tool()
        self.canvas.set_tool(tool if tool in self.tool_actions else "brush")
        self.tool_actions[self.canvas.tool].setChecked(True)
        if (geometry := s.geometry()) is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if (state := s.window_state()) is not None:
            self.restoreState(state)

    def save_settings(self) -> None:
        s = self.settings
        s.set_brush_radius(self.canvas.brush_radius)
        s.set_opacity(self.canvas.opacity)
        s.set_overlay_mode(self.canvas.overlay)
        s.set_composite_color(self.canvas.composite_color)
        s.set_tool(self.canvas.tool)
        s.set_soft_edges(self.act_soft_edges.isChecked())
        s.set_geometry(self.saveGeometry())
        s.set_window_state(self.saveState())
        s.sync()

    # -- state ------------------------------------------------------------------------------------------------------
    def _update_enabled(self) -> None:
        has = self.doc.has_image
        busy = self.controller.busy
        for act in (self.act_cut,):
            act.setEnabled(has and not busy)
        for act in (self.act_export_cutout, self.act_export_mask, self.act_export_composite):
            act.setEnabled(has and not self.exporter.busy)
        for act in (self.act_clear, self.act_invert, self.act_fit, self.act_100, self.act_zoom_in, self.act_zoom_out,
                    self.act_clear_soft):
            act.setEnabled(has)
        self.act_cancel.setEnabled(busy)
        self.act_export_stages.setEnabled(has and bool(self.doc.stages))

    def _show_pos(self, x: int, y: int) -> None:
        if self.doc.has_image and 0 <= x < self.doc.width and 0 <= y < self.doc.height:
            self.pos_label.setText(f"{x}, {y}")
        else:
            self.pos_label.setText("")

    def _on_tool(self, tool: str) -> None:
        if tool in self.tool_actions:
            self.tool_actions[tool].setChecked(True)
        if tool in TOOL_HINTS:
            self.statusBar().showMessage(TOOL_HINTS[tool], 8000)

    def _on_overlay(self, mode: str) -> None:
        i = self.overlay_combo.findData(mode)
        if i >= 0 and i != self.overlay_combo.currentIndex():
            self.overlay_combo.blockSignals(True)
            self.overlay_combo.setCurrentIndex(i)
            self.overlay_combo.blockSignals(False)
        if mode != "off":
            self._last_overlay = mode

    def _on_brush_size(self, radius: int) -> None:
        if self.brush_spin.value() != radius:
            self.brush_spin.setValue(radius)

    def _on_opacity(self, value: int) -> None:
        self.canvas.set_opacity(value / 100.0)

    def _scale_brush(self, factor: float) -> None:
        r = self.canvas.brush_radius
        self.canvas.set_brush_radius(max(r + (1 if factor > 1 else -1), int(round(r * factor))) if factor > 1
                                     else min(r - 1, int(round(r * factor))))

    def set_cpu_only(self, cpu_only: bool) -> None:
        """Switch between the GPU (if any) and the CPU; the models reload on the worker thread."""
        self.settings.set_cpu_only(cpu_only)
        if self.act_cpu_only.isChecked() != cpu_only:
            self.act_cpu_only.setChecked(cpu_only)
        if self.loader_for_device is None:
            return
        self.device_label.setText("Device: loading…")
        self.controller.set_loader(self.loader_for_device("cpu" if cpu_only else None))

    def set_edge_snap(self, on: bool) -> None:
        """Edge snap on/off for the next cuts, box prompts and region re-refines (not the current mask)."""
        self.settings.set_edge_snap(on)
        if self.act_edge_snap.isChecked() != on:
            self.act_edge_snap.setChecked(on)

    def set_colour_assist(self, on: bool) -> None:
        """Colour assist on/off for the next cuts and box prompts (not the current mask)."""
        self.settings.set_colour_assist(on)
        if self.act_colour_assist.isChecked() != on:
            self.act_colour_assist.setChecked(on)

    def set_fine_detail(self, on: bool) -> None:
        """Fine detail (H's full-resolution crops) on/off for the next cuts, box prompts and region re-refines."""
        self.settings.set_fine_detail(on)
        if self.act_fine_detail.isChecked() != on:
            self.act_fine_detail.setChecked(on)

    def set_soft_edges(self, on: bool) -> None:
        """Soft edges on/off: exports use the matte, and the band where alpha is solved is drawn over the photo."""
        self.settings.set_soft_edges(on)
        if self.act_soft_edges.isChecked() != on:
            self.act_soft_edges.setChecked(on)
        self.update_band()

    def _on_soft_strokes(self, _rect: object = None) -> None:
        """A soft-edge stroke (or its undo): show the band again, and turn Soft edges on, which the stroke is for."""
        if not self.act_soft_edges.isChecked():
            self.set_soft_edges(True)
            self.statusBar().showMessage("Soft edges turned on: exports solve alpha in the band you paint (magenta)",
                                         6000)
        else:
            self._band_timer.start()

    def h_doubt(self) -> np.ndarray | None:
        """H's uncertainty from the last cut, at the image's size (uint8), or None when H has not run."""
        stage_set = self.doc.stages.get("H")
        if stage_set is None or not self.doc.has_image:
            return None
        # the band is recomputed after every stroke: H's maps, enlarged to the photo, only change with a new cut
        # (0.14 s of the band's 0.27 s at 8K, docs/PERFORMANCE.md)
        key = (id(stage_set), stage_set.extent, self.doc.width, self.doc.height, id(self.doc.rgb))
        cached = getattr(self, "_doubt_cache", None)
        if cached is not None and cached[0] == key and cached[1] is stage_set:
            return cached[2]
        from mos_studio.core.matting import stage_uncertainty

        doubt = stage_uncertainty(stage_set.stages, (self.doc.width, self.doc.height), stage_set.extent)
        self._doubt_cache = (key, stage_set, doubt)
        return doubt

    def update_band(self) -> int:
        """Recompute and show the soft-edge band (hidden when Soft edges is off); returns its size in pixels."""
        self._band_timer.stop()
        self.soft_band_px = 0
        if not self.act_soft_edges.isChecked() or not self.doc.has_image or not self.doc.has_mask:
            self.canvas.set_band(None)
            return 0
        import cv2

        from mos_studio.core.matting import UNKNOWN, build_trimap

        trimap = build_trimap(self.doc.mask > 127, self.h_doubt(), painted=self.doc.soft_band)
        if trimap is None:
            self.canvas.set_band(None)
            self.statusBar().showMessage("Soft edges: no band where H was unsure (run Cut out first, or paint one "
                                         "with the soft-edge brush, S); exports use the mask as it is", 5000)
            return 0
        band = (trimap == UNKNOWN).astype(np.uint8) * 255
        self.soft_band_px = int(np.count_nonzero(band))
        f = max(1, int(np.ceil(max(band.shape) / 2048)))  # the overlay needs no more than screen resolution
        if f > 1:
            band = cv2.resize(band, (band.shape[1] // f, band.shape[0] // f), interpolation=cv2.INTER_AREA)
        self.canvas.set_band(band)
        return self.soft_band_px

    def toggle_overlay(self) -> None:
        if self.canvas.overlay == "off":
            self.canvas.set_overlay(getattr(self, "_last_overlay", "tint"))
        else:
            self.canvas.set_overlay("off")

    def choose_color(self) -> None:
        color = QColorDialog.getColor(self.canvas.composite_color, self, "Composite colour")
        if color.isValid():
            self.canvas.set_composite_color(color)
            if self.canvas.overlay != "composite":
                self.canvas.set_overlay("composite")

    def _show_stage(self, net: str, index: int, kind: str) -> None:
        stage_set = self.doc.stages.get(net)
        if stage_set is None or index >= len(stage_set.stages):
            return
        view = stage_set.stages[index]
        values = self.inspector.display_values(getattr(view, kind))
        self.canvas.show_stage(values, kind, f"{net} · {view.name} · {kind}  (Shift+I hides)", stage_set.extent)

    def hide_stage(self) -> None:
        self.canvas.show_stage(None)
        self.inspector.clear_selection(emit=False)

    # -- files ------------------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", self.settings.last_open_dir(), OPEN_FILTER)
        if path:
            self.open_async(path)

    def open_path(self, path: str | Path) -> bool:
        """Open a photo now (blocking); on any problem show what to do and keep the current document."""
        from mos_studio.core.io import load_image

        path = Path(path)
        self.setCursor(Qt.CursorShape.WaitCursor)
        try:
            loaded = load_image(path)
        except BaseException as err:  # noqa: BLE001 - never crash on a bad file
            if isinstance(err, KeyboardInterrupt):
                raise
            self._on_open_failed(path, *describe_open_error(path, err))
            return False
        finally:
            self.unsetCursor()
        return self._on_opened(path, loaded)

    def open_async(self, path: str | Path) -> None:
        """Open a photo decoded on a worker thread (dialog, drop, recent files, command line)."""
        path = Path(path)
        self.stage_label.setText(f"Opening {path.name}…")
        self.opener.request(path)

    def _on_open_busy(self, busy: bool) -> None:
        if busy:
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()
            if not self.controller.busy and not self.exporter.busy:
                self.stage_label.setText("")

    def _on_open_failed(self, path: Path, title: str, message: str, hint: str) -> None:
        messages.show_error(self, title, message, hint)

    def _on_stack_changed(self) -> None:
        """After every step, undo, redo or export: the title's asterisk, and the recovery copy kept or dropped."""
        try:
            unexported = self.doc.unexported  # one look at the mask (a scan of 33 MB at 8K) for both
        except RuntimeError:  # the undo stack is being deleted with the window and says it is clean
            return
        self.setWindowModified(unexported)
        if unexported:
            self._recovery_timer.start()  # once the edits pause: a brush stroke is one step, a cut another
        else:
            self._recovery_timer.stop()
            if self._recovery_key is not None:
                self.recovery.remove(self._recovery_key)  # exported, or undone to what was: nothing to recover

    def keep_recovery_copy(self) -> None:
        """Hand a copy of the unexported mask to the recovery store (written on its thread)."""
        self._recovery_timer.stop()
        err = self.recovery.last_error
        if err and err != self._recovery_error_shown:
            self._recovery_error_shown = err
            self.statusBar().showMessage(f"Note: {err}", 10000)
        if self._recovery_key is None or not self.doc.unexported or self.doc.path is None:
            return
        band = self.doc.soft_band
        self.recovery.save(self._recovery_key, self.doc.path, self.doc.mask.copy(),
                           band.copy() if band is not None and band.any() else None)

    def _offer_recovery(self, name: str) -> None:
        """A copy of this photo's mask left by a session that ended before it was exported: offer it back."""
        if self._recovery_key is None:
            return
        found = self.recovery.find(self._recovery_key, self.doc.width, self.doc.height)
        if found is None:
            return
        answer = messages.ask_recover(self, name, found.saved_at)
        if answer == "discard":
            self.recovery.remove(self._recovery_key)
        if answer != "restore":
            return
        stack = self.doc.undo_stack
        stack.beginMacro("Recovered mask")
        self.doc.replace_region((0, 0, self.doc.width, self.doc.height), found.mask, "Recovered mask")
        if found.soft_band is not None:
            band = self.doc.ensure_soft_band()
            self.doc.push_soft_patch((0, 0, self.doc.width, self.doc.height), band.copy(), found.soft_band,
                                     "Recovered soft-edge strokes")
        stack.endMacro()
        self.statusBar().showMessage(f"Restored the unexported mask of {name} (Ctrl+Z takes it back)", 8000)

    def _show_modified(self) -> None:
        """The title's asterisk: the mask has changes not exported yet (closing would ask first)."""
        try:
            modified = self.doc.unexported
        except RuntimeError:  # the undo stack is being deleted with the window and says it is clean
            return
        self.setWindowModified(modified)

    def may_discard(self, doing: str, then: Callable[[], object]) -> bool:
        """True when the current mask may go: nothing unexported, or the user said to discard it. When they chose to
        export it first, the export dialog opens and `then` runs once that export is written (False meanwhile)."""
        if not self.doc.unexported:
            return True
        name = self.doc.path.name if self.doc.path else "this photo"
        answer = messages.ask_unexported(self, name, doing)
        if answer == "discard":
            self._recovery_timer.stop()
            if self._recovery_key is not None:
                self.recovery.remove(self._recovery_key)
                self._recovery_key = None  # the user let it go: keep no copy of it any more
            return True
        if answer == "export" and self.export_dialog("cutout"):
            self._after_export = then
            self.statusBar().showMessage(f"Exporting the cut-out of {name} before {doing}…", 8000)
        return False

    def _on_opened(self, path: Path, loaded) -> bool:  # noqa: ANN001 - LoadedImage
        if not self.may_discard("opening another photo", lambda: self._on_opened(path, loaded)):
            return False
        if self.controller.busy:
            self.controller.cancel()  # its result is dropped anyway: the document changes below
        self.hide_stage()
        self.doc.set_image(loaded.rgb, path=path, icc_profile=loaded.icc_profile)
        self.doc.depth = int(getattr(loaded, "depth", 8))
        self._recovery_key = photo_key(path, self.doc.width, self.doc.height)
        alpha = getattr(loaded, "alpha", None)
        if alpha is not None and alpha.shape == self.doc.mask.shape and int(alpha.min()) < 255:
            # a cut-out exported earlier: carry on editing its alpha (one undo step away from an empty mask)
            self.doc.replace_region((0, 0, self.doc.width, self.doc.height), alpha, "Mask from the file's alpha")
            self.doc.undo_stack.setClean()  # it is what the file holds: nothing to lose yet
        self.settings.add_recent(path)
        self.settings.set_last_open_dir(path.parent)
        self.setWindowTitle(f"{path.name}[*] ({self.doc.width}×{self.doc.height}) — {APP_NAME}")
        self._offer_recovery(path.name)
        self._show_modified()
        self.statusBar().showMessage(f"Opened {path.name}: {self.doc.width}×{self.doc.height}, "
                                     f"{self.doc.width * self.doc.height / 1e6:.1f} MP", 5000)
        self.canvas.setFocus()
        self.image_opened.emit(str(path))
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for i, f in enumerate(files):
            act = self.recent_menu.addAction(f"&{(i + 1) % 10} {Path(f).name}")
            act.setToolTip(f)
            act.triggered.connect(lambda _=False, p=f: self.open_async(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.settings.clear_recent)
        else:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        for url in event.mimeData().urls():
            if url.isLocalFile():
                event.acceptProposedAction()
                self.open_async(url.toLocalFile())
                return

    # -- edits ------------------------------------------------------------------------------------------------------
    def clear_mask(self) -> None:
        if self.doc.mask is not None:
            self.doc.replace_region((0, 0, self.doc.width, self.doc.height), np.zeros_like(self.doc.mask),
                                    "Clear mask")

    def clear_soft_strokes(self) -> None:
        """Forget every soft-edge stroke (one undo step); the band is H's again."""
        band = self.doc.soft_band
        if band is not None and band.any():
            self.doc.push_soft_patch((0, 0, self.doc.width, self.doc.height), band.copy(), np.zeros_like(band),
                                     "Clear soft-edge strokes")

    def invert_mask(self) -> None:
        if self.doc.mask is not None:
            self.doc.replace_region((0, 0, self.doc.width, self.doc.height), 255 - self.doc.mask, "Invert mask")

    # -- inference --------------------------------------------------------------------------------------------------
    def _submit(self, job: Job) -> bool:
        if not self.doc.has_image:
            self.statusBar().showMessage("Open a photo first (Ctrl+O)", 4000)
            return False
        if not self.controller.submit(job):
            self.statusBar().showMessage("Busy: wait for the running job or cancel it (Esc)", 4000)
            return False
        return True

    def run_cut(self) -> bool:
        """Segment the salient object of the whole photo (L at low resolution, then H at full resolution)."""
        if not self.doc.has_image:
            return self._submit(Job("cut", 0, np.zeros((1, 1, 3), np.uint8)))
        return self._submit(Job("cut", self.doc.generation, self.doc.rgb, edge_snap=self.act_edge_snap.isChecked(),
                                colour_assist=self.act_colour_assist.isChecked(),
                                fine_detail=self.act_fine_detail.isChecked()))

    def run_box(self, rect: tuple[int, int, int, int]) -> bool:
        """Segment only the object inside `rect` (L on the crop, H refines it)."""
        return self.doc.has_image and self._submit(Job("box", self.doc.generation, self.doc.rgb, rect=tuple(rect),
                                                       edge_snap=self.act_edge_snap.isChecked(),
                                                       colour_assist=self.act_colour_assist.isChecked(),
                                                       fine_detail=self.act_fine_detail.isChecked()))

    def run_refine(self, rect: tuple[int, int, int, int], polygon: np.ndarray | None = None) -> bool:
        """Re-run H inside a rectangle (or the lasso `polygon`, whose bounding rect is `rect`) and merge only there."""
        if not self.doc.has_image:
            return False
        return self._submit(Job("refine", self.doc.generation, self.doc.rgb, mask=self.doc.mask.copy(),
                                rect=tuple(rect), polygon=polygon, edge_snap=self.act_edge_snap.isChecked(),
                                fine_detail=self.act_fine_detail.isChecked()))

    def _on_job_started(self, job: Job) -> None:
        self._job_started_at = time.perf_counter()
        names = {"cut": "Cutting out", "box": "Segmenting the box", "refine": "Re-refining the region"}
        self.stage_label.setText(names.get(job.kind, job.kind) + "…")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)

    def _on_progress(self, stage: str, fraction: float) -> None:
        self.stage_label.setText(f"{stage}")
        self.progress.setValue(int(round(max(0.0, min(1.0, fraction)) * 1000)))

    def _job_ended(self) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.stage_label.setText("")

    def _on_finished(self, res: JobResult) -> None:
        self._job_ended()
        job = res.job
        if job.generation != self.doc.generation or job.image is not self.doc.rgb:
            self.dropped_results += 1
            self.statusBar().showMessage("Result dropped: the photo or mask changed while it was being computed", 6000)
            self.result_dropped.emit(job)
            return
        w, h = self.doc.width, self.doc.height
        if job.kind in ("cut", "box"):
            self.doc.replace_region((0, 0, w, h), res.mask, "Cut out" if job.kind == "cut" else "Box prompt")
        else:
            x0, y0, x1, y1 = job.rect
            region = region_mask(job.rect, job.polygon)
            self.doc.replace_region(job.rect, res.mask[y0:y1, x0:x1], "Re-refine region", where=region)
        self.doc.set_stages(res.stages, res.probability, res.device, res.timings)
        self.hide_stage()
        self.last_timings = res.timings
        self.device_label.setText(f"Device: {res.device}")
        took = time.perf_counter() - self._job_started_at
        if job.kind == "cut":  # where the cut goes wrong, say which tool fixes it fastest
            self.statusBar().showMessage(f"Done in {took:.1f} s. {CUT_HINT}", 15000)  # the device: bottom right
        else:
            self.statusBar().showMessage(f"Done in {took:.1f} s on {res.device}", 6000)
        self.result_applied.emit(job)

    def _on_failed(self, job: Job | None, err: UserFacingError) -> None:
        if job is None:  # background preload: report quietly; the box comes when the user asks for a cut
            self.device_label.setText("Device: — (no weights)" if err.title == "No trained weights" else
                                      "Device: — (model not loaded)")
            self.statusBar().showMessage(err.message, 10000)
            return
        self._job_ended()
        messages.show_error(self, err.title, err.message, err.hint)

    def _on_device(self, name: str) -> None:
        self.device_label.setText(f"Device: {name}")
        if name.upper().startswith("CPU") and not self.settings.cpu_only():
            self.device_label.setToolTip("No CUDA or Apple MPS GPU was found, so the model runs on the CPU "
                                         "(slower on large photos; a box prompt processes less).")
        else:
            self.device_label.setToolTip("Where the model runs (Segment ▸ Run on the CPU only switches)")

    def _on_cancelled(self, job: Job) -> None:
        self._job_ended()
        self.statusBar().showMessage("Cancelled; nothing was changed", 4000)

    # -- export -----------------------------------------------------------------------------------------------------
    def suggested_name(self, kind: str) -> str:
        stem = self.doc.path.stem if self.doc.path else "image"
        return f"{stem}_{kind}{EXPORT_KINDS[kind][2]}"

    def export_dialog(self, kind: str) -> bool:
        """Ask where to export and start it; False when the user cancelled or nothing was started."""
        if not self.doc.has_image:
            return False
        self._after_export = None  # an export the user starts by hand carries out nothing left pending
        title, filters, suffix = EXPORT_KINDS[kind]
        start = str(Path(self.settings.last_export_dir()) / self.suggested_name(kind))
        path, selected = QFileDialog.getSaveFileName(self, f"Export {title}", start, filters,
                                                     options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return False
        if not Path(path).suffix:
            path += ".png" if "PNG" in selected else suffix
        return self.export_to(kind, path)

    def export_to(self, kind: str, path: str | Path, color: QColor | None = None) -> bool:
        """Start exporting on the worker thread; asks before replacing a file; False when nothing was started."""
        path = Path(path)
        if not self.doc.has_image or self.doc.mask is None:
            return False
        if not self.doc.has_mask and kind != "mask":
            messages.show_error(self, "Nothing to export", "The mask is empty.",
                                "Run Cut out (Ctrl+Enter), draw a box (X) or paint with the brush (B) first.")
            return False
        overwrite = False
        if path.exists():
            if not messages.ask_overwrite(self, str(path)):
                return False
            overwrite = True
        color = color or self.canvas.composite_color
        soft = self.act_soft_edges.isChecked()
        job = ExportJob(kind, path, self.doc.rgb, self.doc.mask.copy(), self.doc.icc_profile,
                        (color.red(), color.green(), color.blue()),
                        protect=(self.doc.path,) if self.doc.path else (), overwrite=overwrite,
                        soft=soft, doubt=self.h_doubt() if soft else None,
                        painted=self.doc.soft_band.copy() if soft and self.doc.soft_band is not None else None,
                        edits=self.doc.edits,
                        colours16_from=self.doc.path if kind == "cutout" and self.doc.depth == 16 else None)
        if not self.exporter.submit(job):
            self.statusBar().showMessage("An export is already running", 4000)
            return False
        self.settings.set_last_export_dir(path.parent)
        return True

    def export_stages_dialog(self) -> bool:
        """Ask where to write the HierPR maps of the last cut and write them (a sheet and, beside it, the arrays)."""
        if not self.doc.stages:
            self.statusBar().showMessage("No stage maps yet: run Cut out (Ctrl+Enter) first", 4000)
            return False
        stem = self.doc.path.stem if self.doc.path else "photo"
        start = str(Path(self.settings.last_export_dir()) / f"{stem}_stages.png")
        path, _ = QFileDialog.getSaveFileName(self, "Export stage maps", start, "PNG sheet (*.png)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if not path:
            return False
        return self.export_stages_to(path if Path(path).suffix else path + ".png")

    def export_stages_to(self, path: str | Path) -> bool:
        """Write the sheet to `path` and the float maps to the same name with .npz; asks before replacing either."""
        from mos_studio.core.errors import MosError
        from mos_studio.core.stages import save_stages

        sheet = Path(path)
        arrays = sheet.with_suffix(".npz")
        existing = [p for p in (sheet, arrays) if p.exists()]
        if existing and not messages.ask_overwrite(self, " and ".join(str(p) for p in existing)):
            return False
        maps = {net: stage_set.stages for net, stage_set in self.doc.stages.items()}
        regions = {net: stage_set.extent for net, stage_set in self.doc.stages.items()}
        try:
            save_stages(maps, sheet, arrays, regions=regions, stretch=self.inspector.stretch.isChecked(),
                        overwrite=bool(existing), protect=(self.doc.path,) if self.doc.path else ())
        except MosError as err:
            messages.show_error(self, "Export failed", str(err), "Choose another file name or folder.")
            return False
        self.settings.set_last_export_dir(sheet.parent)
        self.statusBar().showMessage(f"Saved the stage maps to {sheet} and {arrays.name}", 8000)
        return True

    def _on_export_started(self, job: ExportJob) -> None:
        self.stage_label.setText(f"Exporting {job.path.name}…")
        self.progress.setRange(0, 0)  # busy indicator: the encoder reports no progress
        self.progress.setVisible(True)

    def _on_export_finished(self, job: ExportJob, seconds: float) -> None:
        self.progress.setRange(0, 1000)
        if not self.controller.busy:
            self._job_ended()
        soft = " with soft edges" if job.soft_applied else ""
        deep = " at 16 bits per channel" if job.depth_written == 16 else ""
        self.statusBar().showMessage(f"Exported {job.path}{deep}{soft} in {seconds:.1f} s", 8000)
        clean = job.rgb is self.doc.rgb and self.doc.mark_exported(job.edits)
        self._show_modified()
        self.export_done.emit(str(job.path))
        then, self._after_export = self._after_export, None
        if then is not None:
            if clean:
                then()
            else:  # changed while it was written: ask again rather than lose the newer edit
                self.statusBar().showMessage(f"Exported {job.path}; the mask changed meanwhile, so nothing more was "
                                             "done", 8000)

    def _on_export_failed(self, job: ExportJob, message: str, hint: str) -> None:
        self._after_export = None  # the photo stays open: its mask is not safe anywhere yet
        self.progress.setRange(0, 1000)
        if not self.controller.busy:
            self._job_ended()
        messages.show_error(self, "Export failed", message, hint)

    # -- help -------------------------------------------------------------------------------------------------------
    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """(group, action, keys) for every action that has a shortcut; Help ▸ Shortcuts shows exactly this."""
        rows = []
        for act in self.all_actions:
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in act.shortcuts())
            if keys:
                rows.append((str(act.property("group") or ""), act.text().replace("&", ""), keys))
        rows += [("View", "Zoom at the cursor", "Mouse wheel"), ("View", "Pan", "Space + drag, or middle mouse"),
                 ("Tools", "Brush size", "Ctrl + mouse wheel")]
        return rows

    def show_shortcuts(self) -> QDialog:
        dlg = QDialog(self)
        dlg.setWindowTitle("Keyboard shortcuts")
        rows = self.shortcut_rows()
        table = QTableWidget(len(rows), 3)
        table.setHorizontalHeaderLabels(["Group", "Action", "Keys"])
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.verticalHeader().setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dlg.reject)
        layout = QVBoxLayout(dlg)
        layout.addWidget(table)
        layout.addWidget(buttons)
        dlg.resize(620, 640)
        dlg.setModal(False)
        dlg.show()
        self._shortcuts_dialog = dlg
        return dlg

    def show_about(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.about(self, "About MOS Studio",
                          "<b>MOS Studio</b><br>Pixel-accurate cut-outs of high-resolution photos with the "
                          "MeticulousNet L/H cascade (Meticulous Object Segmentation).")

    def shutdown(self) -> None:
        """Stop the worker threads (cancelling a running cut; an export is let finish). Safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self.controller.shutdown()
        self.exporter.shutdown()
        self.opener.shutdown()
        if self._recovery_timer.isActive() or self.doc.unexported:  # quitting without the question (a signal)
            self.keep_recovery_copy()
        self.recovery.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self._shut_down and not self.may_discard("closing", self.close):
            event.ignore()
            return
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)


def region_mask(rect: tuple[int, int, int, int], polygon: np.ndarray | None) -> np.ndarray:
    """Boolean map over rect: everything for a rectangle, the inside of the lasso for a polygon."""
    x0, y0, x1, y1 = rect
    if polygon is None:
        return np.ones((y1 - y0, x1 - x0), bool)
    import cv2

    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    pts = np.round(np.asarray(polygon, np.float64) - (x0, y0)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1)
    return canvas.astype(bool)

