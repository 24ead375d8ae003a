"""`mos-studio [PHOTO]`: start the desktop app, optionally opening a photo."""

from __future__ import annotations

import argparse
import os
import sys
import time

_T0 = time.perf_counter()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mos-studio", description="MOS Studio: pixel-accurate cut-outs of photos.")
    p.add_argument("photo", nargs="?", help="image to open (JPEG, PNG, TIFF, WebP)")
    p.add_argument("--models-dir", help="folder with the trained weights (default: $MOS_MODELS_DIR or models/)")
    p.add_argument("--encoder", default="default", choices=["default", "mobilenetv3", "resnet50", "efficientnet_lite0"],
                   help="which trained pair to use (default: the pair models/default.json names)")
    p.add_argument("--cut", action="store_true",
                   help="run Cut out as soon as the photo has opened (as `make run` does on the sample)")
    p.add_argument("--startup-probe", action="store_true", help=argparse.SUPPRESS)  # used by benchmarks/bench_app.py
    return p


def build_window(argv: list[str], settings=None, preload: bool = True):  # noqa: ANN001, ANN201
    """Parse the command line and show the window (the photo opens once the event loop runs)."""
    from PySide6.QtCore import QTimer

    from .inference import default_loader
    from .window import MainWindow

    args = _parser().parse_args(argv)
    window = MainWindow(settings=settings, preload=preload,
                        loader_for_device=lambda device: default_loader(args.models_dir, args.encoder, device))
    window.show()
    if args.photo:
        if args.cut:
            def cut_once(_path: str) -> None:
                window.image_opened.disconnect(cut_once)
                window.run_cut()

            window.image_opened.connect(cut_once)
        QTimer.singleShot(0, lambda: window.open_async(args.photo))
    return window


def _install_excepthook(window) -> None:  # noqa: ANN001 - MainWindow
    """A bug in a slot shows a message box and the app keeps running, instead of a silent traceback or a crash."""
    import traceback

    from . import messages

    showing = []

    def hook(exc_type, exc, tb) -> None:  # noqa: ANN001
        traceback.print_exception(exc_type, exc, tb)
        if showing or issubclass(exc_type, KeyboardInterrupt):
            return
        showing.append(True)
        try:
            messages.show_error(window, "Unexpected error", f"{exc_type.__name__}: {exc}",
                                "Your work is still open. Please report this with the text printed in the terminal.")
        finally:
            showing.clear()

    sys.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    # Before PySide6 is imported: a missing X11 library or display gets a clear message, never a Qt abort.
    from .xcb_check import preflight

    if (code := preflight()) != 0:
        return code
    os.environ.setdefault("QT_API", "pyside6")  # qtawesome's qtpy must not pick up another Qt binding
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("MOS Studio")
    app.setApplicationName("mos-studio")
    app.setApplicationDisplayName("MOS Studio")
    window = build_window(argv, preload=not args.startup_probe)
    _install_excepthook(window)
    if args.startup_probe:
        def ready() -> None:
            window.repaint()
            print(f"usable after {time.perf_counter() - _T0:.3f} s (in-process, after imports of main)", flush=True)
            window.close()
            app.quit()

        QTimer.singleShot(0, ready)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
