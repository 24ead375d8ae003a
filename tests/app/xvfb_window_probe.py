"""Run by test_xvfb.py in a fresh process on a real X server: show MOS Studio's main window through Qt's xcb plugin.

It passes the same pre-flight check as `mos-studio`, opens the window, waits until the X server reports it exposed,
grabs the X root window and prints one JSON line describing what is on screen. Exit 0 only when all of that worked.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["QT_QPA_PLATFORM"] = "xcb"
os.environ.setdefault("QT_API", "pyside6")

from mos_studio.app.xcb_check import preflight  # noqa: E402

if preflight() != 0:
    sys.exit(3)

from PySide6.QtWidgets import QApplication  # noqa: E402

from mos_studio.app.main import build_window  # noqa: E402
from mos_studio.app.settings import AppSettings  # noqa: E402

app = QApplication([sys.argv[0]])
window = build_window([], settings=AppSettings.from_file(sys.argv[1]), preload=False)
deadline = time.monotonic() + 10
while not (window.windowHandle() and window.windowHandle().isExposed()) and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
exposed = bool(window.windowHandle() and window.windowHandle().isExposed())
for _ in range(20):  # let the first paint reach the X server
    app.processEvents()
    time.sleep(0.02)
app.sync()

geo = window.geometry()
shot = app.primaryScreen().grabWindow(0).toImage()  # the X root window: what the server really shows
colors = set()
lit = 0
samples = 0
for y in range(geo.top() + 5, min(geo.bottom(), shot.height() - 1), 7):
    for x in range(geo.left() + 5, min(geo.right(), shot.width() - 1), 7):
        rgb = shot.pixel(x, y) & 0xFFFFFF
        colors.add(rgb)
        lit += rgb != 0
        samples += 1
print(json.dumps({
    "platform": app.platformName(), "exposed": exposed, "visible": window.isVisible(),
    "title": window.windowTitle(), "width": geo.width(), "height": geo.height(),
    "screen": [shot.width(), shot.height()], "samples": samples, "lit": lit, "colors": len(colors),
}), flush=True)
window.close()
app.quit()
sys.exit(0 if exposed else 4)
