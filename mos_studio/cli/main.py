"""`mos` entry point. Each sub-command lives in its own module exposing `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from mos_studio import __version__
from mos_studio.core.errors import MosError

# Modules under mos_studio.cli that add sub-commands; each defines register(subparsers) and sets a `func`.
COMMAND_MODULES = ["cut", "info", "evaluate", "gimp"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mos", description="MOS Studio: meticulous object segmentation.")
    parser.add_argument("--version", action="version", version=f"mos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mos_studio.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"mos_studio.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MosError as err:
        print(f"mos: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
