"""The X11 library pre-flight check that `make run` and `mos-studio` do before importing Qt (issue 12)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mos_studio.app import xcb_check
from mos_studio.app.xcb_check import EXIT_PROBLEM, Report, find_plugin, parse_ldd, preflight

# Trimmed `ldd libqxcb.so` output from a fresh Debian 12 with PySide6 6.12, as in the issue.
LDD_FRESH_DEBIAN = """\
\tlinux-vdso.so.1 (0x00007ffd0b9e5000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f0c1c000000)
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f0c1bf79000)
\tlibxkbcommon.so.0 => /lib/x86_64-linux-gnu/libxkbcommon.so.0 (0x00007f0c1bb4e000)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f0c1bb34000)
\tlibxcb-image.so.0 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-randr.so.0 => not found
\tlibxcb-render-util.so.0 => not found
\tlibxcb-shape.so.0 => not found
\tlibxcb-xkb.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0c197a6000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1ac6f000)
"""
ALL_FOUND = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0c197a6000)\n"
X_ENV = {"DISPLAY": ":0"}
PLUGIN = Path("/venv/PySide6/Qt/plugins/platforms/libqxcb.so")


class Recorder:
    """Stands in for subprocess.run: records the command lines, returns the given exit codes in turn."""

    def __init__(self, *codes: int) -> None:
        self.calls: list[list[str]] = []
        self.codes = list(codes) or [0]

    def __call__(self, cmd, **kwargs):  # noqa: ANN001, ANN204
        self.calls.append(list(cmd))
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        return subprocess.CompletedProcess(cmd, code)


def _ldd_sequence(*texts: str):
    left = list(texts)
    return lambda _path: left.pop(0) if len(left) > 1 else left[0]


def test_parse_ldd_lists_each_missing_soname_once_in_order():
    assert parse_ldd(LDD_FRESH_DEBIAN) == [
        "libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-image.so.0",
        "libxcb-keysyms.so.1", "libxcb-randr.so.0", "libxcb-render-util.so.0", "libxcb-shape.so.0",
        "libxcb-xkb.so.1",
    ]
    assert parse_ldd(ALL_FOUND) == []


def test_missing_sonames_map_to_debian_and_fedora_packages():
    rep = Report.for_missing(parse_ldd(LDD_FRESH_DEBIAN))
    assert rep.apt == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-randr0",
                       "libxcb-render-util0", "libxcb-shape0", "libxcb-xkb1", "libxkbcommon-x11-0"]
    # Fedora ships randr, shape and xkb in the one libxcb package: named once.
    assert rep.dnf == ["xcb-util-cursor", "xcb-util-wm", "xcb-util-image", "xcb-util-keysyms", "libxcb",
                       "xcb-util-renderutil", "libxkbcommon-x11"]
    assert rep.unknown == []


def test_unknown_soname_is_named_with_how_to_find_its_package():
    rep = Report.for_missing(["libxcb-cursor.so.0", "libqt-something-new.so.9"])
    assert rep.apt == ["libxcb-cursor0"] and rep.unknown == ["libqt-something-new.so.9"]
    msg = rep.message(root=False)
    assert "libqt-something-new.so.9" in msg and "apt-file search" in msg


def test_message_gives_one_command_per_package_manager():
    msg = Report.for_missing(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]).message(root=False)
    assert "X11 (xcb) platform plugin" in msg
    assert "libxcb-icccm.so.4 libxcb-keysyms.so.1" in msg
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1" in msg
    assert "sudo dnf install -y xcb-util-wm xcb-util-keysyms" in msg
    assert "sudo" not in Report.for_missing(["libxcb-icccm.so.4"]).message(root=True)


def test_non_root_prints_commands_exits_non_zero_and_installs_nothing():
    out, run = io.StringIO(), Recorder()
    code = preflight(want_install=True, env=X_ENV, platform="linux", plugin=PLUGIN,
                     ldd=lambda _p: LDD_FRESH_DEBIAN, is_root=False, run=run, which=lambda _n: "/usr/bin/x", out=out)
    assert code == EXIT_PROBLEM != 0
    assert run.calls == []
    text = out.getvalue()
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4" in text
    assert "sudo dnf install -y xcb-util-cursor xcb-util-wm" in text


def test_root_installs_with_apt_get_then_checks_again():
    out, run = io.StringIO(), Recorder(0)
    code = preflight(want_install=True, env=X_ENV, platform="linux", plugin=PLUGIN,
                     ldd=_ldd_sequence(LDD_FRESH_DEBIAN, ALL_FOUND), is_root=True, run=run,
                     which=lambda n: "/usr/bin/apt-get" if n == "apt-get" else None, out=out)
    assert code == 0
    assert run.calls == [["apt-get", "install", "-y", "-q", "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0",
                          "libxcb-keysyms1", "libxcb-randr0", "libxcb-render-util0", "libxcb-shape0", "libxcb-xkb1",
                          "libxkbcommon-x11-0"]]
    assert "installing" in out.getvalue()


def test_root_on_fresh_image_updates_package_lists_once_and_retries():
    run = Recorder(100, 0, 0)
    code = preflight(want_install=True, env=X_ENV, platform="linux", plugin=PLUGIN,
                     ldd=_ldd_sequence("\tlibxcb-icccm.so.4 => not found\n", ALL_FOUND), is_root=True, run=run,
                     which=lambda n: "/usr/bin/apt-get" if n == "apt-get" else None, out=io.StringIO())
    assert code == 0
    assert [c[:2] for c in run.calls] == [["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]


def test_root_on_fedora_uses_dnf_names():
    run = Recorder(0)
    preflight(want_install=True, env=X_ENV, platform="linux", plugin=PLUGIN,
              ldd=_ldd_sequence("\tlibxcb-icccm.so.4 => not found\n", ALL_FOUND), is_root=True, run=run,
              which=lambda n: "/usr/bin/dnf" if n == "dnf" else None, out=io.StringIO())
    assert run.calls == [["dnf", "install", "-y", "-q", "xcb-util-wm"]]


def test_failed_install_still_ends_with_the_message():
    out = io.StringIO()
    code = preflight(want_install=True, env=X_ENV, platform="linux", plugin=PLUGIN,
                     ldd=lambda _p: "\tlibxcb-icccm.so.4 => not found\n", is_root=True, run=Recorder(100),
                     which=lambda n: "/usr/bin/apt-get" if n == "apt-get" else None, out=out)
    assert code == EXIT_PROBLEM
    assert "apt-get install -y libxcb-icccm4" in out.getvalue()


def test_without_install_flag_root_is_only_told():
    """`mos-studio` never runs a package manager on its own, even as root."""
    run, out = Recorder(), io.StringIO()
    code = preflight(want_install=False, env=X_ENV, platform="linux", plugin=PLUGIN,
                     ldd=lambda _p: LDD_FRESH_DEBIAN, is_root=True, run=run, which=lambda _n: "/usr/bin/x", out=out)
    assert code == EXIT_PROBLEM and run.calls == []


@pytest.mark.parametrize("env,platform", [
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux"),
    ({"QT_QPA_PLATFORM": "wayland"}, "linux"),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, "linux"),
    ({}, "darwin"),
    ({}, "win32"),
])
def test_skipped_where_qt_does_not_use_xcb(env, platform):
    def ldd(_p):
        raise AssertionError("the libraries must not be checked here")

    assert preflight(env=env, platform=platform, plugin=PLUGIN, ldd=ldd, out=io.StringIO()) == 0


@pytest.mark.parametrize("env", [{"DISPLAY": ":1", "QT_QPA_PLATFORM": "xcb"}, {"DISPLAY": ":1",
                                 "QT_QPA_PLATFORM": "wayland;xcb"}, {"DISPLAY": ":1"}])
def test_checked_where_qt_would_load_xcb(env):
    out = io.StringIO()
    assert preflight(env=env, platform="linux", plugin=PLUGIN, ldd=lambda _p: LDD_FRESH_DEBIAN, is_root=False,
                     out=out) == EXIT_PROBLEM
    assert "libxcb-cursor.so.0" in out.getvalue()


@pytest.mark.parametrize("env", [{}, {"QT_QPA_PLATFORM": "xcb"}])
def test_no_display_is_said_plainly(env):
    out = io.StringIO()
    code = preflight(env=env, platform="linux", plugin=PLUGIN, ldd=lambda _p: ALL_FOUND, is_root=False, out=out)
    assert code == EXIT_PROBLEM
    assert "no display found" in out.getvalue() and "QT_QPA_PLATFORM=offscreen" in out.getvalue()


def test_without_ldd_the_known_sonames_are_dlopened():
    asked: list[str] = []

    def loadable(soname: str) -> bool:
        asked.append(soname)
        return soname != "libxcb-cursor.so.0"

    assert xcb_check.missing_libraries(PLUGIN, ldd=lambda _p: None, loadable=loadable) == ["libxcb-cursor.so.0"]
    assert set(asked) == set(xcb_check.KNOWN_SONAMES)
    assert set(xcb_check.KNOWN_SONAMES) <= set(xcb_check.PACKAGES)


def test_real_ldd_reports_a_library_that_is_not_installed(tmp_path):
    """End to end with the system's ldd: a library linked against a soname that was then removed."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which("ldd") is None:
        pytest.skip("needs a C compiler and ldd to build the temporary libraries")
    (tmp_path / "dep.c").write_text("int mos_dep(void) { return 7; }\n")
    (tmp_path / "use.c").write_text("int mos_dep(void);\nint mos_use(void) { return mos_dep(); }\n")
    dep = tmp_path / "libmos-absent.so.7"
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libmos-absent.so.7", "-o", str(dep), str(tmp_path / "dep.c")],
                   check=True)
    user = tmp_path / "libmos-user.so"
    # $ORIGIN: the dependency resolves from the library's own folder, as Qt's plugins find Qt's libraries.
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-rpath,$ORIGIN", "-o", str(user), str(tmp_path / "use.c"), str(dep)],
                   check=True)
    assert "libmos-absent.so.7" not in xcb_check.missing_libraries(user, loadable=lambda _s: True)
    dep.unlink()
    assert xcb_check.missing_libraries(user, loadable=lambda _s: True) == ["libmos-absent.so.7"]
    out = io.StringIO()
    code = preflight(env=X_ENV, platform="linux", plugin=user, is_root=False, out=out)
    assert code == EXIT_PROBLEM and "libmos-absent.so.7" in out.getvalue() and "apt-file search" in out.getvalue()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin exists on Linux only")
def test_real_plugin_ldd_agrees_with_the_dynamic_loader():
    """On this machine, what ldd calls missing is exactly what dlopen cannot find among the plugin's needs."""
    plugin = find_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    missing = xcb_check.missing_libraries(plugin)
    needed = xcb_check.KNOWN_SONAMES
    assert sorted(s for s in needed if not xcb_check.dlopen_ok(s)) == sorted(s for s in missing if s in needed)
    # Every X library the shipped plugin links to, found or not, has a package name to print.
    linked = re.findall(r"^\s*(lib(?:xcb|X|xkb)\S*\.so\.\d+)\s+=>", xcb_check.run_ldd(plugin) or "", re.MULTILINE)
    assert len(linked) >= 15
    assert [s for s in linked if s not in xcb_check.PACKAGES] == []


def test_check_runs_without_importing_qt():
    code = ("import sys; from mos_studio.app import xcb_check; xcb_check.main(['--list']); "
            "assert not any(m.startswith('PySide6') for m in sys.modules), 'PySide6 imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "libqxcb.so" in out.stdout and "missing:" in out.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check only acts on Linux")
def test_mos_studio_without_display_exits_2_with_a_message(monkeypatch, capsys):
    from mos_studio.app import main as app_main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert app_main.main([]) == EXIT_PROBLEM
    err = capsys.readouterr().err
    assert "no display found" in err or "X11 (xcb) platform plugin" in err


def test_libs_only_checks_without_display_or_xcb_platform():
    """What .ci/run uses before the Xvfb test: headless, QT_QPA_PLATFORM=offscreen, yet the libraries count."""
    run = Recorder(0)
    code = preflight(want_install=True, env={"QT_QPA_PLATFORM": "offscreen"}, platform="linux", plugin=PLUGIN,
                     ldd=_ldd_sequence("\tlibxcb-keysyms.so.1 => not found\n", ALL_FOUND), is_root=True, run=run,
                     which=lambda n: "/usr/bin/apt-get" if n == "apt-get" else None, out=io.StringIO(),
                     libs_only=True)
    assert code == 0
    assert run.calls == [["apt-get", "install", "-y", "-q", "libxcb-keysyms1"]]
