"""`mos` entry point. Each sub-command lives in its own module exposing `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import os
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
    # --threads is accepted before or after the sub-command (`mos --threads 1 cut …` or `mos cut --threads 1 …`).
    for p in (parser, *sub.choices.values()):
        if any("--threads" in a.option_strings for a in p._actions):
            continue  # a sub-command that defines its own
        p.add_argument(
            "--threads", default=argparse.SUPPRESS if p is not parser else None, metavar="N",
            help="CPU threads for inference (default: auto, the cores not busy with other programs); "
                 "also read from $MOS_THREADS",
        )
    return parser


def apply_threads(value: str | None) -> int | None:
    """Validate --threads and pass it on through the environment, so the cascade, the bridge it may start and any
    thread pool created later (OpenMP reads OMP_NUM_THREADS when torch loads) all use it."""
    from mos_studio.core.optimize import THREADS_ENV, parse_threads

    if value is None:
        return None
    try:
        n = parse_threads(value)
    except ValueError as err:
        raise MosError(f"--threads: {err}") from None
    os.environ[THREADS_ENV] = str(n or 0)
    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        apply_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except MosError as err:
        print(f"mos: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
