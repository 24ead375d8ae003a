"""MOS Studio desktop app (PySide6). Reaches torch only through mos_studio.core."""
