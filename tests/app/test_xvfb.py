"""MOS Studio on a real X server (Xvfb) through Qt's xcb plugin, the path a Linux desktop user takes.

Every other app test runs offscreen, which needs none of the X11 libraries; these catch a missing one (issue 12) and
prove `mos-studio` itself starts. Skipped, with the reason, when Xvfb or the libraries are not installed
(`.ci/run` installs both as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mos_studio.app.xcb_check import Report, find_plugin, missing_libraries

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def xvfb_display():
    """A private Xvfb server; yields its DISPLAY string."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the xcb platform plugin is Linux-only")
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); the app was not started on a real X server")
    missing = missing_libraries(find_plugin())
    if missing:
        cmds = "; ".join(Report.for_missing(missing).commands(root=False))
        pytest.skip(f"Qt's xcb plugin lacks {' '.join(missing)} ({cmds})")
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number and writes it to the pipe once it accepts clients.
    proc = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                             "-br", "-noreset"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        if not number.isdigit():
            proc.kill()
            pytest.fail(f"Xvfb did not start: {proc.communicate(timeout=5)[1].decode(errors='replace')[-500:]}")
        yield f":{number}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _x_env(display: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    # Own HOME and config dir: the default QSettings of `mos-studio` must not touch the user's preferences.
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_RUNTIME_DIR=str(home), PYTHONPATH=str(HERE.parents[1]))
    return env


def test_main_window_is_shown_on_x_server(xvfb_display, tmp_path):
    out = subprocess.run([sys.executable, str(HERE / "xvfb_window_probe.py"), str(tmp_path / "settings.ini")],
                         env=_x_env(xvfb_display, tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["platform"] == "xcb"
    assert info["exposed"] and info["visible"]
    assert "MOS Studio" in info["title"]
    assert info["screen"] == [1280, 800]
    assert info["width"] >= 400 and info["height"] >= 300
    # The X server's root window (black with -br) now shows the window's painted widgets at its place.
    assert info["lit"] > 0.5 * info["samples"], info
    assert info["colors"] >= 3, info


def test_mos_studio_command_starts_under_xcb(xvfb_display, tmp_path):
    """The installed entry point, pre-flight check included, opens its window on X and exits 0."""
    out = subprocess.run([sys.executable, "-m", "mos_studio.app.main", "--startup-probe"],
                         env=_x_env(xvfb_display, tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usable after" in out.stdout
    assert "could not" not in out.stderr.lower(), out.stderr
