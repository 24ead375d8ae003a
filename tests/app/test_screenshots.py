"""Screenshots of the main window (mask overlay) and of the stage inspector, saved as artefacts.

Folder: $MOS_SCREENSHOT_DIR, else out/screenshots in the project; the path is printed in the test output.
With the tiny random test models the mask itself is meaningless; the pictures show the app, not model quality.
`MOS_SCREENSHOT_MODELS=models` takes them with trained weights instead (how docs/ screenshots are made).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mos_studio.app.imaging import qimage_to_array

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]


def sample_photo(make_photo) -> np.ndarray:
    try:
        from skimage import data

        return np.ascontiguousarray(data.coffee())  # CC0 photo from scikit-image; make run's sample
    except ImportError:
        return make_photo(480, 320)


def not_blank(image) -> float:
    arr = qimage_to_array(image)[..., :3].astype(np.float32)
    return float(arr.std())


def test_screenshots_main_window_and_stage_inspector(make_window, tiny_loader, qtbot, make_photo, capsys):
    folder = Path(os.environ.get("MOS_SCREENSHOT_DIR") or ROOT / "out" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    trained = os.environ.get("MOS_SCREENSHOT_MODELS")
    if trained:
        from mos_studio.app.inference import default_loader

        win = make_window(default_loader(trained, device="cpu"))
    else:
        win = make_window(tiny_loader)
    win.resize(1280, 800)
    rgb = sample_photo(make_photo)
    win.doc.set_image(rgb, path="coffee.png")
    with qtbot.waitSignal(win.result_applied, timeout=120_000):
        win.run_cut()
    if not win.doc.has_mask:  # random weights may select nothing: show the overlay with a painted stroke instead
        win.canvas.paint_stroke([(150, 120), (300, 180)], radius=40)
    win.canvas.set_overlay("tint")
    win.opacity_slider.setValue(55)
    win.device_label.setText(f"Device: {win.doc.device}")
    qtbot.wait(50)

    win.canvas.set_overlay("off")
    plain = qimage_to_array(win.canvas.grab().toImage())
    win.canvas.set_overlay("tint")
    main = win.grab().toImage()
    tinted = qimage_to_array(win.canvas.grab().toImage())
    assert (np.abs(tinted.astype(int) - plain.astype(int)).sum(-1) > 0).mean() > 0.01  # the overlay is visible

    win.inspector.tabs.setCurrentIndex(1)
    win.inspector.stretch.setChecked(True)  # per-map range: shows the structure of each block's maps
    win.inspector.toggle("H", 3, "uncertainty")
    assert win.canvas._stage is not None
    inspector = win.inspector_dock.grab().toImage()
    with_stage = win.grab().toImage()

    paths = {"screenshot_main.png": main, "screenshot_inspector.png": inspector,
             "screenshot_stage_over_image.png": with_stage}
    for name, image in paths.items():
        assert not_blank(image) > 12.0, name
        assert image.save(str(folder / name))
        assert (folder / name).stat().st_size > 5000
    with capsys.disabled():
        print(f"\n[screenshots] saved {', '.join(paths)} to {folder}")
