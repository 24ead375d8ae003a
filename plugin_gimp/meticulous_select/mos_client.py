"""Client side of the MOS bridge, in plain standard-library Python.

Why separate from the plug-in file: GIMP's Python has no numpy, no torch and no `mos_studio`; this module needs none
of them (nor `gi`), so the plug-in can ship it and the project's tests can drive it against the real bridge without
GIMP. The wire format is described in `mos_studio/bridge/protocol.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

CONFIG_NAME = "mos_gimp_config.json"
PROTOCOL_VERSION = 1
REINSTALL_HINT = "run `mos install-gimp-plugin` in the MOS Studio environment (see docs/GIMP.md)"
# Environment variables of GIMP's own Python that must not leak into the project's Python.
_PYTHON_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONNOUSERSITE")


class BridgeError(Exception):
    """The backend could not deliver a mask. `kind`: setup | weights | input | backend | cancelled | request."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def plugin_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def load_config(directory: str | None = None) -> dict:
    """The install command's record (python, models_dir, ...); env MOS_PYTHON / MOS_MODELS_DIR / MOS_DEVICE win."""
    path = os.path.join(directory or plugin_dir(), CONFIG_NAME)
    config: dict = {}
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        if not os.environ.get("MOS_PYTHON"):
            raise BridgeError("setup", f"{path} is missing, so the plug-in does not know which Python runs MOS; "
                              f"{REINSTALL_HINT}") from None
    except (OSError, ValueError) as err:
        raise BridgeError("setup", f"{path}: unreadable ({err}); {REINSTALL_HINT}") from None
    if not isinstance(config, dict):
        raise BridgeError("setup", f"{path}: not a JSON object; {REINSTALL_HINT}")
    for key, env in (("python", "MOS_PYTHON"), ("models_dir", "MOS_MODELS_DIR"), ("device", "MOS_DEVICE")):
        if os.environ.get(env):
            config[key] = os.environ[env]
    return config


def bridge_command(config: dict) -> list[str]:
    python = config.get("python")
    if not python:
        raise BridgeError("setup", f"no Python recorded for MOS; {REINSTALL_HINT}")
    if not os.path.isfile(python):
        raise BridgeError("setup", f"MOS Studio's Python {python} does not exist any more; {REINSTALL_HINT}")
    return [python, "-m", "mos_studio.bridge"]


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _PYTHON_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def new_workdir() -> str:
    """A private folder (mode 0700) for the pixel files of one run."""
    return tempfile.mkdtemp(prefix="mos-gimp-")


def run_bridge(
    request: dict,
    config: dict,
    progress: Callable[[str, float], bool | None] | None = None,
    workdir: str | None = None,
) -> dict:
    """Start the bridge, send `request`, relay progress, return the `done` reply or raise `BridgeError`.

    `progress(stage, fraction)` returning False cancels: "cancel" is sent, then the process is killed if it lingers.
    If GIMP kills this plug-in instead, the bridge sees its stdin close and stops by itself.
    """
    request = dict(request, version=PROTOCOL_VERSION)
    request.setdefault("models_dir", config.get("models_dir"))
    request.setdefault("encoder", config.get("encoder") or "default")
    request.setdefault("device", config.get("device"))
    cmd = bridge_command(config)
    log_path = os.path.join(workdir or tempfile.gettempdir(), "bridge-stderr.log")
    kwargs: dict = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    with open(log_path, "w+b") as log:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=child_env(),
                cwd=workdir or None,
                **kwargs,
            )
        except OSError as err:
            raise BridgeError("setup", f"cannot start {cmd[0]} ({err}); {REINSTALL_HINT}") from None
        try:
            reply = _converse(proc, request, progress)
        finally:
            _stop(proc)
        if reply is None:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-6:]
            detail = " | ".join(tail) or f"exit status {proc.returncode}"
            if "No module named" in detail and "mos_studio" in detail:
                raise BridgeError("setup", f"{cmd[0]} has no mos_studio package ({detail}); {REINSTALL_HINT}")
            raise BridgeError("backend", f"the MOS bridge stopped without an answer ({detail}); "
                              f"run `{cmd[0]} -m mos_studio.bridge` by hand or `mos info` to see why")
    if reply.get("type") == "error":
        raise BridgeError(str(reply.get("kind", "backend")), str(reply.get("message", "unknown error")))
    return reply


def _converse(
    proc: subprocess.Popen, request: dict, progress: Callable[[str, float], bool | None] | None
) -> dict | None:
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
        proc.stdin.flush()
    except OSError:
        return None  # it died at once; the caller reports its stderr
    for raw in proc.stdout:
        try:
            reply = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            continue
        if not isinstance(reply, dict):
            continue
        kind = reply.get("type")
        if kind in ("done", "error"):
            return reply
        if kind == "progress" and progress is not None:
            fraction = reply.get("fraction", 0.0)
            keep_going = progress(str(reply.get("stage", "")), float(fraction if fraction is not None else 0.0))
            if keep_going is False:
                try:
                    proc.stdin.write(b"cancel\n")
                    proc.stdin.flush()
                except OSError:
                    pass
                raise BridgeError("cancelled", "cancelled; the image was left untouched")
    return None


def _stop(proc: subprocess.Popen) -> None:
    """Close our end (the bridge reads that as cancel), give it a moment, then make sure it is gone."""
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_file(path: str, size: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != size:
        raise BridgeError("backend", f"{path}: the bridge wrote {len(data)} bytes, expected {size}")
    return data


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def paste_rows(mask: bytes, width: int, height: int, off_x: int, off_y: int, canvas_w: int, canvas_h: int) -> bytes:
    """Place a width×height Y u8 mask at (off_x, off_y) on a zero canvas, clipping whatever falls outside.

    Pure Python on whole rows (no per-pixel loop), because GIMP's Python has no numpy.
    """
    out = bytearray(canvas_w * canvas_h)
    x0, x1 = max(off_x, 0), min(off_x + width, canvas_w)
    y0, y1 = max(off_y, 0), min(off_y + height, canvas_h)
    if x0 >= x1 or y0 >= y1:
        return bytes(out)
    for y in range(y0, y1):
        src = (y - off_y) * width + (x0 - off_x)
        dst = y * canvas_w + x0
        out[dst : dst + (x1 - x0)] = mask[src : src + (x1 - x0)]
    return bytes(out)
