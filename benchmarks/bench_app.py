"""Desktop-app timings on a 12 MP photo: startup, overlay update after a stroke, zoom/pan redraw, cut-out export.

Prints numbers; asserts nothing. Runs offscreen (QT_QPA_PLATFORM=offscreen) unless a display is set up.

    .venv/bin/python benchmarks/bench_app.py [--width 4000 --height 3000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_startup(repeat: int) -> None:
    """Wall time from launching `mos-studio` to a shown, painted, usable window (fresh process each time)."""
    walls, inproc = [], []
    config_home = tempfile.mkdtemp(prefix="mos_bench_config_")  # keep the user's own settings out of it
    for _ in range(repeat):
        t0 = time.perf_counter()
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": config_home}
        out = subprocess.run([sys.executable, "-m", "mos_studio.app.main", "--startup-probe"], capture_output=True,
                             text=True, cwd=ROOT, env=env, timeout=120)
        wall = time.perf_counter() - t0
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("usable after")), None)
        if line is None:
            print("startup probe failed:", out.stdout, out.stderr)
            return
        walls.append(wall)
        inproc.append(float(line.split()[2]))
    print(f"startup to usable window (process launch → first paint, then exit), {repeat} runs:"
          f" median {median(walls):.2f} s, min {min(walls):.2f} s, max {max(walls):.2f} s"
          f" (in-process part {median(inproc):.2f} s)")


def synthetic_photo(w: int, h: int) -> np.ndarray:
    """Smooth shapes plus sensor-like noise, so PNG/JPEG encoders work about as hard as on a real photo."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sin(xx / 97.0) * 60 + 120
    g = np.cos(yy / 83.0) * 60 + 120
    b = (xx + yy) / (w + h) * 200
    rgb = np.stack([r, g, b], -1)
    rgb += np.random.default_rng(0).normal(0.0, 6.0, rgb.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--skip-cut", action="store_true",
                    help="skip the responsiveness check while a cut runs (tiny random models, CPU)")
    args = ap.parse_args()
    w, h = args.width, args.height
    print(f"MOS Studio app benchmark — {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPU cores, Qt platform {os.environ['QT_QPA_PLATFORM']}")
    if not args.skip_startup:
        bench_startup(args.repeat)

    from PySide6.QtCore import QEventLoop, QPoint, QPointF, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from mos_studio.app.settings import AppSettings
    from mos_studio.app.window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="mos_bench_app_"))
    win = MainWindow(AppSettings.from_file(tmp / "settings.ini"), loader=lambda: None, preload=False)
    win.resize(1400, 900)
    win.show()
    app.processEvents()
    rgb = synthetic_photo(w, h)
    from PIL import Image

    photo = tmp / "photo.jpg"
    Image.fromarray(rgb).save(photo, quality=92)
    opens = []
    for _ in range(max(1, args.repeat // 2)):
        t0 = time.perf_counter()
        if not win.open_path(photo):
            print("could not open the benchmark photo")
            return 1
        app.processEvents()
        opens.append(time.perf_counter() - t0)
    print(f"image {w}×{h} = {w * h / 1e6:.1f} MP; canvas {win.canvas.width()}×{win.canvas.height()} px; "
          f"open the JPEG ({photo.stat().st_size / 1e6:.1f} MB) → decoded, shown fitted: median {ms(median(opens))}")
    canvas, doc = win.canvas, win.doc
    doc.replace_region((0, 0, w, h), ((np.add.outer(np.arange(h) - h / 2, np.zeros(w)) ** 2
                                       + np.add.outer(np.zeros(h), np.arange(w) - w / 2) ** 2)
                                      < (0.35 * h) ** 2).astype(np.uint8) * 255, "bench mask")
    app.processEvents()

    def flush() -> None:
        app.processEvents()

    # -- overlay update after a stroke ------------------------------------------------------------------------------
    for zoom_name, setup in (("fit", canvas.fit), ("100 %", lambda: canvas.set_zoom(1.0))):
        setup()
        canvas.set_overlay("tint")
        flush()
        canvas.set_tool("brush")
        canvas.set_brush_radius(40)
        per_move, strokes = [], []
        for rep in range(args.repeat):
            y = 200 + rep * 60
            t_stroke = time.perf_counter()
            QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(300, y))
            flush()
            for i in range(1, 21):
                t = time.perf_counter()
                QTest.mouseMove(canvas, QPoint(300 + 20 * i, y + (i % 3) * 5))
                flush()
                per_move.append(time.perf_counter() - t)
            QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                               QPoint(700, y))
            flush()
            strokes.append(time.perf_counter() - t_stroke)
        cmd = doc.undo_stack.command(doc.undo_stack.count() - 1)
        print(f"stroke at {zoom_name:>5} (brush radius 40 image px): mouse move → mask painted + overlay repainted "
              f"median {ms(median(per_move))}, max {ms(max(per_move))}; whole 20-segment stroke incl. press "
              f"snapshot and undo record {ms(median(strokes))}; undo step stores {cmd.nbytes / 1e3:.0f} kB "
              f"(full mask {doc.mask.nbytes / 1e6:.0f} MB)")
        t = time.perf_counter()
        doc.undo_stack.undo()
        flush()
        print(f"undo of that stroke at {zoom_name:>5}: {ms(time.perf_counter() - t)}")

    # -- the soft-edge band after a stroke (Soft edges on, H's maps from a cut) -----------------------------------
    import cv2

    from mos_studio.app.document import StageSet, StageView

    edge = cv2.GaussianBlur(doc.mask[::4, ::4].astype(np.float32) / 255.0, (0, 0), 3)  # H's maps at 1/4 size
    doubt = (1.0 - np.abs(2.0 * edge - 1.0)).astype(np.float32)
    names = ["S8_0", "S8_1", "S8_2", "S4_2", "S8_3", "S4_3", "S2_3"]
    win.set_soft_edges(True)
    doc.set_stages({"H": StageSet("H", [StageView(n, doubt, edge) for n in names])}, None, "CPU")  # a new cut's
    t = time.perf_counter()
    win.update_band()
    first = time.perf_counter() - t
    bands = []
    for rep in range(args.repeat):
        canvas.paint_stroke([(w * 0.3, h * 0.3 + 40 * rep), (w * 0.6, h * 0.35 + 40 * rep)], radius=40)
        t = time.perf_counter()
        win.update_band()
        bands.append(time.perf_counter() - t)
    print(f"soft-edge band recomputed after a stroke (GUI thread, 250 ms after it ends): first after a cut "
          f"{ms(first)} (H's doubt enlarged to the photo), then median {ms(median(bands))} "
          f"({win.soft_band_px / 1e6:.2f} M band pixels)")
    win.set_soft_edges(False)

    # -- applying a whole-image result (what a finished cut does) --------------------------------------------------
    canvas.fit()
    flush()
    applies = []
    for rep in range(args.repeat):
        new_mask = np.zeros((h, w), np.uint8)
        new_mask[h // 5 + rep: 4 * h // 5, w // 5: 4 * w // 5 + rep] = 255
        t = time.perf_counter()
        doc.replace_region((0, 0, w, h), new_mask, "bench cut")
        flush()
        applies.append(time.perf_counter() - t)
    print(f"apply a full-image cut result (undo record + display levels + repaint at fit): "
          f"median {ms(median(applies))}")

    # -- zoom / pan redraw ------------------------------------------------------------------------------------------
    for mode in ("tint", "composite", "checker"):
        canvas.set_overlay(mode)
        for zoom_name, setup in (("fit", canvas.fit), ("100 %", lambda: canvas.set_zoom(1.0)),
                                 ("400 %", lambda: canvas.set_zoom(4.0))):
            setup()
            flush()
            zooms, pans = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                canvas.zoom_by(1.1, QPointF(700, 450))
                canvas.repaint()
                zooms.append(time.perf_counter() - t)
                canvas.zoom_by(1 / 1.1, QPointF(700, 450))
                canvas.repaint()
                t = time.perf_counter()
                canvas.pan_by(37, -21)
                canvas.repaint()
                pans.append(time.perf_counter() - t)
            print(f"redraw {mode:>9} at {zoom_name:>5}: zoom step {ms(median(zooms))}, pan step {ms(median(pans))}")
    toggles = []
    canvas.fit()
    for _ in range(args.repeat):
        t = time.perf_counter()
        canvas.cycle_overlay()
        canvas.repaint()
        toggles.append(time.perf_counter() - t)
    print(f"overlay toggle (M) at fit incl. full redraw: median {ms(median(toggles))}")

    # -- export ---------------------------------------------------------------------------------------------------
    if not args.skip_export:
        for kind, name in (("cutout", "cutout.png"), ("mask", "mask.png"), ("composite", "composite.jpg")):
            loop = QEventLoop()
            result: dict[str, float] = {}
            win.exporter.finished.connect(lambda job, s, r=result, lp=loop: (r.setdefault("s", s), lp.quit()))
            win.exporter.failed.connect(lambda job, m, hint, lp=loop: (print("export failed:", m), lp.quit()))
            ticks = []
            timer = QTimer()
            timer.setInterval(16)
            last = [time.perf_counter()]

            def tick(last=last, ticks=ticks) -> None:
                now = time.perf_counter()
                ticks.append(now - last[0])
                last[0] = now

            timer.timeout.connect(tick)
            t = time.perf_counter()
            target = tmp / name
            if not win.export_to(kind, target):
                print("export did not start")
                continue
            timer.start()
            loop.exec()
            timer.stop()
            total = time.perf_counter() - t
            win.exporter.finished.disconnect()
            win.exporter.failed.disconnect()
            size = target.stat().st_size / 1e6 if target.exists() else 0
            gap = max(ticks) if ticks else float("nan")
            print(f"export {kind:>9} {w}×{h} on the worker thread: {result.get('s', float('nan')):.2f} s write, "
                  f"{total:.2f} s until the GUI heard back; file {size:.1f} MB; longest GUI event-loop gap meanwhile "
                  f"{ms(gap)}")
    # -- responsiveness while a cut runs (tiny random models: this measures the GUI, not the model) --------------
    if not args.skip_cut:
        from mos_studio.core.cascade import Cascade
        from mos_studio.core.testing import write_tiny_models

        models = write_tiny_models(tmp / "tiny_models")
        win.controller.set_loader(lambda: Cascade.from_pretrained(models_dir=models), preload=False)
        loop = QEventLoop()
        ticks: list[float] = []
        redraws: list[float] = []
        stages: list[str] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            ticks.append(now - last[0])
            last[0] = now
            if len(ticks) % 10 == 0:  # a pan step every ~160 ms, as a user dragging the view would
                t = time.perf_counter()
                canvas.pan_by(3, 2)
                canvas.repaint()
                redraws.append(time.perf_counter() - t)

        timer = QTimer()
        timer.setInterval(16)
        timer.timeout.connect(tick)
        win.controller.progress.connect(lambda stage, f: stages.append(stage))
        win.result_applied.connect(lambda job: loop.quit())
        win.controller.failed.connect(lambda job, err: (print("cut failed:", err.message), loop.quit()))
        canvas.fit()
        t = time.perf_counter()
        win.run_cut()
        timer.start()
        loop.exec()
        timer.stop()
        total = time.perf_counter() - t
        gaps = sorted(ticks)
        p95 = gaps[int(0.95 * (len(gaps) - 1))] if gaps else float("nan")
        print(f"cut {w}×{h} with tiny random models on {win.controller.device_name}: {total:.1f} s, "
              f"{len(stages)} progress updates; GUI event loop during it: median tick {ms(median(gaps))}, "
              f"95th percentile {ms(p95)}, longest {ms(max(gaps))} (16 ms timer); "
              f"pan redraws meanwhile median {ms(median(redraws) if redraws else float('nan'))}")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MB")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
