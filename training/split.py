"""Hold out a validation split of an `images/` + `masks/` folder, reproducibly and without copying pixels.

    python -m training.split data/davis --out data/split --val-fraction 0.15 --group '^(.+)_\\d+$'

Writes `OUT/train/NAME/{images,masks}` and `OUT/val/NAME/{images,masks}` as symbolic links to the originals, plus
`OUT/NAME_split.json` listing which stems went where. Pairs are split by *group* (default: one group per stem);
`--group` is a regular expression whose first capture names the group, so video frames of one sequence
(`bear_00012`) never land on both sides — frames of one clip are near-duplicates, and a frame-level split would
make validation scores meaningless. Groups are ordered by a SHA-1 of their name, so the split does not depend on
file-system order and is the same on every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

from mos_studio.core.errors import MosError

from .data.sources import _files


def split_groups(stems: list[str], val_fraction: float, group: str | None = None) -> tuple[list[str], list[str]]:
    """(train stems, val stems); at least one group goes to each side when there are two or more groups."""
    if not 0.0 < val_fraction < 1.0:
        raise MosError(f"--val-fraction must lie strictly between 0 and 1, not {val_fraction}")
    pattern = re.compile(group) if group else None
    groups: dict[str, list[str]] = {}
    for s in stems:
        m = pattern.match(s) if pattern else None
        groups.setdefault(m.group(1) if m and m.groups() else s, []).append(s)
    order = sorted(groups, key=lambda g: hashlib.sha1(g.encode("utf-8")).hexdigest())
    n_val = min(len(order) - 1, max(1, math.ceil(val_fraction * len(order)))) if len(order) > 1 else 0
    val_groups = set(order[:n_val])
    train = sorted(s for g in order if g not in val_groups for s in groups[g])
    val = sorted(s for g in val_groups for s in groups[g])
    return train, val


def _link_all(pairs: dict[str, tuple[Path, Path]], stems: list[str], dest: Path) -> None:
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for s in stems:
        img, mask = pairs[s]
        for src, sub in ((img, "images"), (mask, "masks")):
            os.symlink(src.resolve(), dest / sub / src.name)  # dest is new: make_split refuses existing ones


def make_split(root: str | Path, out: str | Path, val_fraction: float = 0.15, group: str | None = None,
               name: str | None = None) -> dict:
    root, out = Path(root), Path(out)
    name = name or root.name
    images, masks = _files(root / "images"), _files(root / "masks")
    pairs = {s: (images[s], masks[s]) for s in images if s in masks}
    if not pairs:
        raise MosError(f"{root}: no image/mask pairs with matching names under images/ and masks/")
    train, val = split_groups(sorted(pairs), val_fraction, group)
    for side, stems in (("train", train), ("val", val)):
        target = out / side / name
        if target.exists():
            raise MosError(f"{target}: already exists; remove it first (a split is never changed in place)")
        _link_all(pairs, stems, target)
    record = {"source": str(root.resolve()), "name": name, "val_fraction": val_fraction, "group": group,
              "train": train, "val": val}
    (out / f"{name}_split.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.split", description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="folder with images/ and masks/ (same stems)")
    ap.add_argument("--out", required=True, help="folder that receives train/NAME and val/NAME")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--group", help="regex whose first group names a pair's group, e.g. '^(.+)_\\d+$' for video")
    ap.add_argument("--name", help="dataset name in the output (default: the folder's name)")
    args = ap.parse_args(argv)
    try:
        rec = make_split(args.root, args.out, args.val_fraction, args.group, args.name)
    except (MosError, re.error) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{rec['name']}: {len(rec['train'])} train, {len(rec['val'])} val pairs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
