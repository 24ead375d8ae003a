"""`mos-studio` entry point (placeholder until the app lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("MOS Studio: the desktop app is coming; use `mos cut IMAGE -o DIR` meanwhile.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
