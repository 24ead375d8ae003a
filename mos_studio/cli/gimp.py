"""`mos install-gimp-plugin` / `mos uninstall-gimp-plugin`: put the GIMP 3 plug-in where GIMP looks for it.

The plug-in runs in GIMP's own Python, which has no torch; the install records which Python (this one, of the
project's environment) and which models folder the plug-in must start the bridge with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
from pathlib import Path

from mos_studio.core.errors import MosError

PLUGIN_NAME = "meticulous_select"
CONFIG_NAME = "mos_gimp_config.json"
SHIPPED_FILES = ("meticulous_select.py", "mos_client.py")


def plugin_source() -> Path:
    """The plug-in folder of this checkout (plugin_gimp/meticulous_select)."""
    src = Path(__file__).resolve().parents[2] / "plugin_gimp" / PLUGIN_NAME
    if not (src / f"{PLUGIN_NAME}.py").is_file():
        raise MosError(f"{src}: GIMP plug-in sources not found; install MOS Studio from its source checkout")
    return src


def default_gimp_dir(platform: str | None = None, env: dict[str, str] | None = None, home: Path | None = None) -> Path:
    """GIMP 3's per-user folder: $GIMP3_DIRECTORY, else the platform's config folder (Flatpak's when only it exists)."""
    platform = platform or sys.platform
    env = dict(os.environ) if env is None else env
    home = home or Path.home()
    if env.get("GIMP3_DIRECTORY"):
        return Path(env["GIMP3_DIRECTORY"]).expanduser()
    if platform == "win32":
        base = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        return base / "GIMP" / "3.0"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "GIMP" / "3.0"
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    native = xdg / "GIMP" / "3.0"
    flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0"
    if not native.exists() and flatpak.exists():
        return flatpak
    return native


def _target(gimp_dir: Path) -> Path:
    return gimp_dir / "plug-ins" / PLUGIN_NAME


def _is_ours(target: Path) -> bool:
    return (target / CONFIG_NAME).is_file()


def install(gimp_dir: Path, python: str, models_dir: Path, encoder: str = "default", device: str | None = None,
            force: bool = False) -> Path:
    """Copy the plug-in into `gimp_dir`/plug-ins/meticulous_select and write its config; returns that folder."""
    src = plugin_source()
    target = _target(gimp_dir)
    if target.exists() and not _is_ours(target) and not force:
        raise MosError(f"{target}: exists and was not installed by `mos install-gimp-plugin`; "
                       "move it away or pass --force to replace it")
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        tmp = target / f".{name}.tmp"
        shutil.copyfile(src / name, tmp)
        os.replace(tmp, target / name)
    main = target / f"{PLUGIN_NAME}.py"
    main.chmod(main.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    config = {
        "python": python,
        "models_dir": str(models_dir),
        "encoder": encoder,
        "device": device,
        "project": str(src.parents[1]),
    }
    (target / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return target


def uninstall(gimp_dir: Path, force: bool = False) -> Path | None:
    """Remove the plug-in folder if this command put it there; returns it, or None if nothing was installed."""
    target = _target(gimp_dir)
    if not target.exists():
        return None
    if not _is_ours(target) and not force:
        raise MosError(f"{target}: was not installed by `mos install-gimp-plugin` (no {CONFIG_NAME}); "
                       "left in place — remove it by hand or pass --force")
    shutil.rmtree(target)
    return target


def _run_install(args: argparse.Namespace) -> int:
    from mos_studio.core.weights import find_models_dir

    gimp_dir = Path(args.gimp_dir).expanduser() if args.gimp_dir else default_gimp_dir()
    models_dir = find_models_dir(args.models_dir).resolve()
    python = args.python or sys.executable
    if not Path(python).is_file():
        raise MosError(f"{python}: no such Python executable")
    target = install(gimp_dir, python, models_dir, encoder=args.encoder, device=args.device, force=args.force)
    print(f"installed the GIMP plug-in into {target}")
    print(f"  backend Python: {python}")
    note = "" if any(models_dir.glob("*.safetensors")) else "  (no weights there yet)"
    print(f"  models folder:  {models_dir}{note}")
    print("restart GIMP 3; the commands are in Select → Meticulous Select… / Meticulous Refine Selection…")
    return 0


def _run_uninstall(args: argparse.Namespace) -> int:
    gimp_dir = Path(args.gimp_dir).expanduser() if args.gimp_dir else default_gimp_dir()
    removed = uninstall(gimp_dir, force=args.force)
    if removed is None:
        print(f"nothing to remove: no plug-in in {_target(gimp_dir)}")
    else:
        print(f"removed {removed}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("install-gimp-plugin", help="install the GIMP 3 plug-in (Select → Meticulous Select)",
                              description="Copy the GIMP 3 plug-in into GIMP's plug-ins folder and record which "
                              "Python and models folder it starts.")
    p.add_argument("--gimp-dir", help="GIMP's per-user folder (default: found for this platform, e.g. "
                   "~/.config/GIMP/3.0); the plug-in goes into its plug-ins/ sub-folder")
    p.add_argument("--models-dir", help="weights folder the plug-in uses (default: $MOS_MODELS_DIR or models/)")
    p.add_argument("--python", help="Python that runs the bridge (default: the one running this command)")
    p.add_argument("--encoder", default="default", choices=["default", "mobilenetv3", "resnet50", "efficientnet_lite0"])
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--force", action="store_true", help="replace a plug-in folder that this command did not create")
    p.set_defaults(func=_run_install)

    u = subparsers.add_parser("uninstall-gimp-plugin", help="remove the GIMP 3 plug-in")
    u.add_argument("--gimp-dir", help="GIMP's per-user folder (default: found for this platform)")
    u.add_argument("--force", action="store_true", help="remove the folder even if this command did not create it")
    u.set_defaults(func=_run_uninstall)
