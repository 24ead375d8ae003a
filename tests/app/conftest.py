"""App fixtures: an isolated settings file per test, tiny real models, a sample photo, and recorded message boxes.

Message boxes are replaced by recorders so that a test never blocks on a modal dialog; tests assert on what was
shown instead.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    from mos_studio.core.testing import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_cascade(tiny_models_dir):
    """One real cascade of tiny random models (loading is the slow part; jobs never overlap)."""
    from mos_studio.core.cascade import Cascade, CascadeConfig

    # small working sizes keep each GUI test's cut to about a second on a shared 2-core machine
    return Cascade.from_pretrained(models_dir=tiny_models_dir, device="cpu",
                                   config=CascadeConfig(l_size=128, global_size=320))


@pytest.fixture(scope="module")
def shipped_cascade():
    """The shipped weights on the CPU, for the tests that need a real cut (each test restores what it changes)."""
    from mos_studio.core.cascade import Cascade

    return Cascade.from_pretrained(Path(__file__).resolve().parents[2] / "models", device="cpu")


@pytest.fixture
def tiny_loader(tiny_cascade):
    return lambda: tiny_cascade


class SlowCascade:
    """The real tiny cascade, with a pause at each progress report so a test can act while it runs."""

    def __init__(self, inner, pause: float = 0.25) -> None:
        self.inner = inner
        self.pause = pause
        self.device_name = inner.device_name
        self.reports: list[str] = []
        self.running = threading.Event()

    def __call__(self, image, *, progress=None, cancel=None, **kwargs):
        import time

        def report(stage: str, fraction: float) -> None:
            self.reports.append(stage)
            if progress is not None:
                progress(stage, fraction)
            self.running.set()
            time.sleep(self.pause)

        return self.inner(image, progress=report, cancel=cancel, **kwargs)


@pytest.fixture
def slow_cascade(tiny_cascade):
    return SlowCascade(tiny_cascade)


@pytest.fixture
def app_settings(tmp_path):
    from mos_studio.app.settings import AppSettings

    return AppSettings.from_file(tmp_path / "settings.ini")


class MessageLog:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str, str]] = []
        self.overwrite_questions: list[str] = []
        self.overwrite_answer = True
        self.unexported_questions: list[tuple[str, str]] = []
        self.unexported_answer = "discard"  # closing a window with edits, as tests did before the question existed
        self.recover_questions: list[str] = []
        self.recover_answer = "later"


@pytest.fixture(autouse=True)
def message_log(monkeypatch) -> MessageLog:
    from mos_studio.app import messages

    log = MessageLog()

    def show_error(parent, title, message, hint=""):
        log.errors.append((title, message, hint))

    def ask_overwrite(parent, path):
        log.overwrite_questions.append(path)
        return log.overwrite_answer

    def ask_unexported(parent, name, doing):
        log.unexported_questions.append((name, doing))
        return log.unexported_answer

    monkeypatch.setattr(messages, "show_error", show_error)
    monkeypatch.setattr(messages, "ask_overwrite", ask_overwrite)
    def ask_recover(parent, name, saved_at):
        log.recover_questions.append(name)
        return log.recover_answer

    monkeypatch.setattr(messages, "ask_unexported", ask_unexported)
    monkeypatch.setattr(messages, "ask_recover", ask_recover)
    return log


def make_photo(width: int = 320, height: int = 240) -> np.ndarray:
    """A smooth background with a bright textured disc: an object with a clear edge."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([40 + 60 * xx / width, 90 + 50 * yy / height, 150 - 40 * xx / width], -1)
    cx, cy, r = width * 0.45, height * 0.5, min(width, height) * 0.3
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    obj = np.stack([220 - 30 * np.sin(xx / 5), 150 + 40 * np.cos(yy / 7), 60 + 0 * xx], -1)
    rgb = np.where(inside[..., None], obj, bg)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture(name="make_photo")
def make_photo_fixture():
    return make_photo


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(make_photo()).save(path)
    return path


@pytest.fixture
def make_window(qtbot, app_settings):
    """Build a shown MainWindow (closed, threads stopped, at teardown)."""
    from mos_studio.app.window import MainWindow

    def build(loader=None, settings=None):
        win = MainWindow(settings or app_settings, loader=loader, preload=False)
        qtbot.addWidget(win)
        win.resize(1000, 700)
        win.show()
        qtbot.waitExposed(win)
        return win

    return build


@pytest.fixture
def window(make_window, tiny_loader):
    return make_window(tiny_loader)
