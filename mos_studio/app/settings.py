"""Persistent preferences (QSettings): recent files, last folders, overlay, brush, window layout.

The window takes an `AppSettings`, so tests hand it one backed by an INI file in a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QColor

MAX_RECENT = 10


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings("MOS Studio", "mos-studio")

    @classmethod
    def from_file(cls, path: str | Path) -> AppSettings:
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    def recovery_dir(self) -> Path:
        """Where recovery copies of unexported masks live (mos_studio.app.recovery): the platform's application data
        folder (~/.local/share/MOS Studio/mos-studio/recovery on Linux), or beside an INI settings file, so a test's
        temporary settings get a temporary folder too; $MOS_RECOVERY_DIR wins."""
        env = os.environ.get("MOS_RECOVERY_DIR")
        if env:
            return Path(env)
        if self.q.format() == QSettings.Format.IniFormat:
            return Path(self.q.fileName()).parent / "recovery"
        # native settings may live in a registry or a shared preferences folder: never put files beside them
        from PySide6.QtCore import QStandardPaths

        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        return (Path(base) if base else Path.home() / ".local" / "share" / "mos-studio") / "recovery"

    def _get(self, key: str, default, kind=str):  # noqa: ANN001, ANN202 - thin QSettings wrapper
        value = self.q.value(key, default)
        try:
            if kind is bool and isinstance(value, str):
                return value.lower() in ("1", "true", "yes")
            return kind(value)
        except (TypeError, ValueError):
            return default

    # recent files
    def recent_files(self) -> list[str]:
        value = self.q.value("recent/files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        files = [path] + [f for f in self.recent_files() if f != path]
        files = files[:MAX_RECENT]
        self.q.setValue("recent/files", files)
        return files

    def clear_recent(self) -> None:
        self.q.setValue("recent/files", [])

    # folders
    def last_open_dir(self) -> str:
        return self._get("folders/open", str(Path.home()))

    def set_last_open_dir(self, folder: str | Path) -> None:
        self.q.setValue("folders/open", str(folder))

    def last_export_dir(self) -> str:
        return self._get("folders/export", "") or self.last_open_dir()

    def set_last_export_dir(self, folder: str | Path) -> None:
        self.q.setValue("folders/export", str(folder))

    # view and tools
    def overlay_mode(self) -> str:
        return self._get("view/overlay", "tint")

    def set_overlay_mode(self, mode: str) -> None:
        self.q.setValue("view/overlay", mode)

    def opacity(self) -> float:
        return self._get("view/opacity", 0.5, float)

    def set_opacity(self, value: float) -> None:
        self.q.setValue("view/opacity", float(value))

    def composite_color(self) -> QColor:
        color = QColor(self._get("view/composite_color", "#00ff00"))
        return color if color.isValid() else QColor(0, 255, 0)

    def set_composite_color(self, color: QColor) -> None:
        self.q.setValue("view/composite_color", color.name())

    def brush_radius(self) -> int:
        return self._get("tools/brush_radius", 20, int)

    def set_brush_radius(self, radius: int) -> None:
        self.q.setValue("tools/brush_radius", int(radius))

    def tool(self) -> str:
        return self._get("tools/tool", "brush")

    def set_tool(self, tool: str) -> None:
        self.q.setValue("tools/tool", tool)

    def cpu_only(self) -> bool:
        return self._get("inference/cpu_only", False, bool)

    def set_cpu_only(self, value: bool) -> None:
        self.q.setValue("inference/cpu_only", bool(value))

    def soft_edges(self) -> bool:
        return self._get("export/soft_edges", True, bool)

    def set_soft_edges(self, value: bool) -> None:
        self.q.setValue("export/soft_edges", bool(value))

    def edge_snap(self) -> bool:
        return self._get("segment/edge_snap", True, bool)

    def set_edge_snap(self, value: bool) -> None:
        self.q.setValue("segment/edge_snap", bool(value))

    def colour_assist(self) -> bool:
        return self._get("segment/colour_assist", False, bool)

    def set_colour_assist(self, value: bool) -> None:
        self.q.setValue("segment/colour_assist", bool(value))

    def fine_detail(self) -> bool:
        return self._get("segment/fine_detail", False, bool)

    def set_fine_detail(self, value: bool) -> None:
        self.q.setValue("segment/fine_detail", bool(value))

    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, geometry: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def set_window_state(self, state: QByteArray) -> None:
        self.q.setValue("window/state", state)

    def sync(self) -> None:
        self.q.sync()
