"""Check, before Qt is imported, that Qt's X11 (xcb) platform plugin can load.

PySide6 wheels bundle Qt but not the X11 helper libraries its xcb plugin links against (libxcb-cursor,
libxcb-icccm, ...). On a fresh Linux install some are missing and Qt aborts with "no Qt platform plugin could be
initialized", which names none of them. This module asks the dynamic loader (`ldd`) which libraries of the plugin
the wheel actually ships fail to resolve, maps them to distribution packages and either installs them (root with
apt-get or dnf, only when asked) or prints the one command to run. It imports nothing from Qt: importing PySide6
is what we are trying to make safe.

`python -m mos_studio.app.xcb_check [--install]` is what `make run` calls; `mos-studio` calls `preflight()`.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# Soname -> (Debian/Ubuntu package, Fedora/RHEL package). Covers everything libqxcb.so and libQt6XcbQpa.so link to
# directly or through the X libraries, so whatever `ldd` reports missing gets a package name.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
}

# What the xcb plugin of PySide6 6.5-6.12 links to. Only used when `ldd` is unavailable or cannot read the plugin;
# normally the plugin file itself is asked, so a new Qt version that needs another library is still caught.
KNOWN_SONAMES: tuple[str, ...] = (
    "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-util.so.1", "libxcb-image.so.0", "libxcb-keysyms.so.1",
    "libxcb-randr.so.0", "libxcb-render-util.so.0", "libxcb-shm.so.0", "libxcb-sync.so.1", "libxcb-xfixes.so.0",
    "libxcb-render.so.0", "libxcb-shape.so.0", "libxcb-xkb.so.1", "libxcb.so.1", "libxkbcommon.so.0",
    "libxkbcommon-x11.so.0", "libX11-xcb.so.1", "libX11.so.6", "libGL.so.1",
)

PLUGIN_PARTS = ("Qt", "plugins", "platforms", "libqxcb.so")
EXIT_PROBLEM = 2
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.MULTILINE)


@dataclass
class Report:
    """What the check found: the sonames that do not resolve and the packages that would provide them."""

    missing: list[str]
    apt: list[str] = field(default_factory=list)
    dnf: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @classmethod
    def for_missing(cls, missing: Sequence[str]) -> Report:
        rep = cls(missing=sorted(set(missing)))
        for soname in rep.missing:
            if soname in PACKAGES:
                deb, rpm = PACKAGES[soname]
                rep.apt += [deb] if deb not in rep.apt else []
                rep.dnf += [rpm] if rpm not in rep.dnf else []
            else:
                rep.unknown.append(soname)
        return rep

    def commands(self, root: bool) -> list[str]:
        """The install one-liners for apt and dnf (with sudo unless we already are root)."""
        sudo = "" if root else "sudo "
        cmds = []
        if self.apt:
            cmds.append(f"Debian/Ubuntu:  {sudo}apt-get install -y {' '.join(self.apt)}")
        if self.dnf:
            cmds.append(f"Fedora/RHEL:    {sudo}dnf install -y {' '.join(self.dnf)}")
        return cmds

    def message(self, root: bool) -> str:
        lines = [
            "MOS Studio cannot open its window: Qt's X11 (xcb) platform plugin needs system libraries that are "
            "not installed:",
            "  " + " ".join(self.missing),
        ]
        cmds = self.commands(root)
        if cmds:
            lines += ["Install them with one of:"] + [f"  {c}" for c in cmds]
        if self.unknown:
            lines.append("No package name is known here for: " + " ".join(self.unknown)
                         + " (find it with `apt-file search NAME` or `dnf provides '*/NAME'`).")
        lines.append("Then start it again (`make run` or `mos-studio`). Without a desktop, QT_QPA_PLATFORM=offscreen "
                     "runs it headless.")
        return "\n".join(lines)


def parse_ldd(text: str) -> list[str]:
    """Sonames that `ldd` printed as `NAME => not found`, in order, without repeats."""
    seen: list[str] = []
    for name in _NOT_FOUND.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def find_plugin() -> Path | None:
    """The wheel's libqxcb.so, located without importing PySide6 (find_spec does not run the package)."""
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        plugin = Path(loc).joinpath(*PLUGIN_PARTS)
        if plugin.is_file():
            return plugin
    return None


def run_ldd(path: Path) -> str | None:
    """`ldd PATH` output, or None when ldd is absent or cannot read the file (then the known list is used)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        out = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 and "=>" not in out.stdout:
        return None
    return out.stdout


def dlopen_ok(soname: str) -> bool:
    """Whether the dynamic loader finds SONAME (loads it; harmless for these small X libraries)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(plugin: Path | None, ldd: Callable[[Path], str | None] = run_ldd,
                      loadable: Callable[[str], bool] = dlopen_ok) -> list[str]:
    """Sonames the xcb plugin needs that do not resolve: from ldd on the plugin, else by dlopen of the known list."""
    text = ldd(plugin) if plugin is not None else None
    if text is not None:
        return parse_ldd(text)
    return [s for s in KNOWN_SONAMES if not loadable(s)]


def _platform_names(env: Mapping[str, str]) -> list[str]:
    """QT_QPA_PLATFORM as Qt reads it: a ';'-separated fallback list, each `name[:options]`."""
    raw = env.get("QT_QPA_PLATFORM", "").strip()
    return [p.split(":", 1)[0].strip().lower() for p in raw.split(";") if p.strip()]


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt would try the xcb plugin: asked for explicitly, or by default on an X display."""
    names = _platform_names(env)
    if names:
        return "xcb" in names
    if env.get("WAYLAND_DISPLAY") and (not env.get("DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland"):
        return False  # Qt takes its Wayland plugin here
    return True


def display_problem(env: Mapping[str, str]) -> str | None:
    """A clear sentence when Qt would need a display and there is none, else None."""
    names = _platform_names(env)
    if names and names != ["xcb"]:
        return None  # offscreen, wayland, vnc or a fallback list: Qt has something else to try
    if env.get("DISPLAY") or (not names and env.get("WAYLAND_DISPLAY")):
        return None
    return ("MOS Studio cannot open its window: no display found (DISPLAY and WAYLAND_DISPLAY are unset). Start it "
            "from a desktop session or over `ssh -X`, or set QT_QPA_PLATFORM=offscreen for a headless check.")


def _installer(which: Callable[[str], str | None]) -> list[str] | None:
    if which("apt-get"):
        return ["apt-get", "install", "-y", "-q"]
    if which("dnf"):
        return ["dnf", "install", "-y", "-q"]
    return None


def install(rep: Report, run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
            which: Callable[[str], str | None] = shutil.which, out: TextIO = sys.stderr) -> bool:
    """Install the packages of REP as root with apt-get (else dnf); True when the package manager succeeded."""
    base = _installer(which)
    if base is None:
        return False
    pkgs = rep.apt if base[0] == "apt-get" else rep.dnf
    if not pkgs:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"mos-studio: installing the X11 libraries Qt needs: {' '.join(base + pkgs)}", file=out, flush=True)
    done = run(base + pkgs, env=env, check=False)
    if done.returncode != 0 and base[0] == "apt-get":
        # A fresh image often has no package lists yet; fetch them once and try again.
        run(["apt-get", "update", "-q"], env=env, check=False)
        done = run(base + pkgs, env=env, check=False)
    return done.returncode == 0


def preflight(want_install: bool = False, env: Mapping[str, str] | None = None, platform: str | None = None,
              plugin: Path | None = None, ldd: Callable[[Path], str | None] = run_ldd,
              loadable: Callable[[str], bool] = dlopen_ok, is_root: bool | None = None,
              run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
              which: Callable[[str], str | None] = shutil.which, out: TextIO | None = None,
              libs_only: bool = False) -> int:
    """0 when Qt can start its window; else print why (and the fix) and return EXIT_PROBLEM.

    With want_install and root, missing libraries are installed first. Skipped off Linux and when Qt is told to use
    another platform plugin (offscreen, wayland, ...). libs_only checks the libraries whatever the environment and
    not the display (CI installs them before its Xvfb test). The other parameters exist for the tests.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    out = sys.stderr if out is None else out
    if not platform.startswith("linux") or not (libs_only or uses_xcb(env)):
        return 0
    is_root = (os.geteuid() == 0) if is_root is None else is_root
    plugin = find_plugin() if plugin is None else plugin
    missing = missing_libraries(plugin, ldd, loadable)
    if missing:
        rep = Report.for_missing(missing)
        if want_install and is_root and install(rep, run=run, which=which, out=out):
            missing = missing_libraries(plugin, ldd, loadable)
            rep = Report.for_missing(missing)
        if missing:
            print(rep.message(is_root), file=out, flush=True)
            return EXIT_PROBLEM
    problem = None if libs_only else display_problem(env)
    if problem:
        print(problem, file=out, flush=True)
        return EXIT_PROBLEM
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mos_studio.app.xcb_check",
                                description="Check that Qt's X11 plugin has the system libraries it needs.")
    p.add_argument("--install", action="store_true",
                   help="as root, install missing libraries with apt-get (or dnf) instead of only naming them")
    p.add_argument("--libs-only", action="store_true",
                   help="check the libraries even without a display or with another QT_QPA_PLATFORM")
    p.add_argument("--list", action="store_true", help="print the missing libraries and their packages, then exit")
    args = p.parse_args(argv)
    if args.list:
        plugin = find_plugin()
        rep = Report.for_missing(missing_libraries(plugin))
        print(f"plugin: {plugin}")
        print(f"missing: {' '.join(rep.missing) or '(none)'}")
        for cmd in rep.commands(root=False):
            print(cmd)
        return 0
    return preflight(want_install=args.install, libs_only=args.libs_only)


if __name__ == "__main__":
    sys.exit(main())
