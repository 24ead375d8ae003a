"""Rebuild the training and evaluation data on a new machine, exactly as the shipped cards record it.

A new machine starts with none of the data (docs/DATA_ENGINE.md, docs/MODELS.md). Two recipes were written down only
in prose until stop 23, when the data had to be rebuilt and the held-out numbers reproduced to the last digit:

    # a photo-pool source, from a repository brought in with the search tool's fetch (a bare git dir)
    python -m training.rebuild pool GITDIR COMMIT SLUG PATH_REGEX --out POOL [--exclude REGEX]
    # the four round-1 real-truth sets, from their repositories' trees (git archive COMMIT | tar -x)
    python -m training.rebuild realsets SRC --out RAW [--sets humanseg davis horse cats]

`pool` takes the blobs at COMMIT whose path matches PATH_REGEX: absent blobs skipped, the same blob once (first in
path order), only JPEG/PNG (and MPO, a JPEG variant some cameras write) with a short side of 256 px or more, each
at POOL/SLUG/<basename>. The name matters: a photo's held-out side is a hash of SLUG/<basename> (training.pool).

`realsets` expects SRC/humanseg (VikramShenoy97/Human-Segmentation-Dataset), SRC/davis (MathLee/EOR-VOS),
SRC/horse (shenshutao/image_segmentation) and SRC/cats (pcashman21/feral-cat-segmentation-dataset-and-model),
each the repository's tree at the commit the cards name, and writes RAW/<set>/{images,masks}; then `training.split`
with the commands in docs/MODELS.md. The cat masks are drawn with PIL's polygon fill at float coordinates, one
polygon after another: OpenCV's fillPoly (rounded or truncated corners) moves the edge by a pixel and the cats'
held-out mBA by up to 0.5 points.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mos_studio.core.errors import MosError

MIN_SHORT_SIDE = 256


def extract_pool_source(git_dir: Path, commit: str, slug: str, pattern: str, out: Path,
                        exclude: str | None = None) -> dict:
    """Write one pool source's photos to out/slug; returns counts (matched, absent, dup, notimg, small, kept)."""
    git = ["git", f"--git-dir={git_dir}"]
    listing = subprocess.run(git + ["ls-tree", "-r", "-z", commit], capture_output=True)
    if listing.returncode != 0:
        raise MosError(f"{git_dir}: cannot list commit {commit} ({listing.stderr.decode().strip()})")
    entries = []
    for line in listing.stdout.decode().split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        _, kind, sha = meta.split()
        if kind == "blob" and re.fullmatch(pattern, path) and not (exclude and re.search(exclude, path)):
            entries.append((path, sha))
    entries.sort()
    dest = out / slug
    dest.mkdir(parents=True, exist_ok=True)
    stats = dict(matched=len(entries), absent=0, dup=0, notimg=0, small=0, kept=0)
    seen: set[str] = set()
    names: dict[str, str] = {}
    for path, sha in entries:
        if sha in seen:
            stats["dup"] += 1
            continue
        seen.add(sha)
        blob = subprocess.run(git + ["cat-file", "blob", sha], capture_output=True)
        if blob.returncode != 0:  # snapshots drop some large blobs
            stats["absent"] += 1
            continue
        try:
            with Image.open(io.BytesIO(blob.stdout)) as im:
                fmt, (w, h) = im.format, im.size
                im.load()
        except Exception:  # noqa: BLE001 - any undecodable file is simply not a photo
            stats["notimg"] += 1
            continue
        if fmt not in ("JPEG", "PNG", "MPO"):
            stats["notimg"] += 1
            continue
        if min(w, h) < MIN_SHORT_SIDE:
            stats["small"] += 1
            continue
        name = path.rsplit("/", 1)[-1]
        if name in names:  # never seen in the ten recorded sources; kept apart rather than overwritten
            name = path.replace("/", "__")
        names[name] = path
        (dest / name).write_bytes(blob.stdout)
        stats["kept"] += 1
    return stats


def _binary(mask: Image.Image) -> Image.Image:
    return Image.fromarray(np.where(np.asarray(mask.convert("L")) > 127, 255, 0).astype(np.uint8), "L")


def _dirs(raw: Path, name: str) -> tuple[Path, Path]:
    images, masks = raw / name / "images", raw / name / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    return images, masks


def _same_aspect(a: tuple[int, int], b: tuple[int, int], what: Path) -> None:
    if abs(a[0] / a[1] - b[0] / b[1]) / (b[0] / b[1]) >= 0.01:
        raise MosError(f"{what}: image {a} and mask {b} differ in aspect ratio")


def _write_pair(ip: Path, mp: Path, images: Path, masks: Path) -> None:
    """Image and thresholded mask at the smaller of their two sizes (same aspect ratio required): the larger one is
    shrunk, an image with Lanczos and saved as JPEG 95, a mask bilinearly; an image that is not resized is copied
    byte for byte."""
    with Image.open(ip) as im, Image.open(mp) as mk:
        mask = mk.convert("L")
        if im.size == mk.size:
            (images / ip.name).write_bytes(ip.read_bytes())
        else:
            _same_aspect(im.size, mk.size, ip)
            if im.size[0] * im.size[1] > mk.size[0] * mk.size[1]:
                im.convert("RGB").resize(mk.size, Image.LANCZOS).save(images / ip.name, quality=95)
            else:
                mask = mask.resize(im.size, Image.BILINEAR)
                (images / ip.name).write_bytes(ip.read_bytes())
    _binary(mask).save(masks / f"{ip.stem}.png")


def build_humanseg(src: Path, raw: Path) -> int:
    """198 photos are larger than their mask (same aspect): shrunk to it (`_write_pair`)."""
    images, masks = _dirs(raw, "humanseg")
    n = 0
    for ip in sorted((src / "Training_Images").glob("*.jpg")):
        mp = src / "Ground_Truth" / f"{ip.stem}.png"
        if mp.exists():
            _write_pair(ip, mp, images, masks)
            n += 1
    return n


def build_davis(src: Path, raw: Path) -> int:
    """Stem <sequence>_<frame>, so training.split can group a clip's frames."""
    images, masks = _dirs(raw, "davis")
    root = src / "DAVIS"
    n = 0
    for seq in sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir()):
        for ip in sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg")):
            mp = root / "Annotations" / "480p" / seq / f"{ip.stem}.png"
            if not mp.exists():
                continue
            (images / f"{seq}_{ip.stem}.jpg").write_bytes(ip.read_bytes())
            with Image.open(mp) as mk:
                _binary(mk).save(masks / f"{seq}_{ip.stem}.png")
            n += 1
    return n


def build_horse(src: Path, raw: Path) -> int:
    """The larger of image and mask is shrunk to the smaller (`_write_pair`)."""
    images, masks = _dirs(raw, "horse")
    root = src / "weizmann_horse_db"
    n = 0
    for ip in sorted((root / "rgb").glob("*.jpg")):
        mp = root / "figure_ground" / ip.name
        if mp.exists():
            _write_pair(ip, mp, images, masks)
            n += 1
    return n


CAT_NAME = re.compile(r"^(.+?)_[a-z]+\.rf\.([0-9a-f]{32})$")


def cat_mask(label_text: str, size: tuple[int, int]) -> Image.Image | None:
    """Union of a YOLOv8 label file's polygons (normalised x y pairs) at `size`; None when it has none."""
    w, h = size
    polygons = []
    for line in label_text.splitlines():
        v = line.split()
        if len(v) >= 7:  # class + at least three points
            polygons.append(np.asarray(v[1:], np.float64).reshape(-1, 2) * (w, h))
    if not polygons:
        return None
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for p in polygons:
        draw.polygon([(float(x), float(y)) for x, y in p], fill=255)
    return mask


def build_cats(src: Path, raw: Path) -> int:
    """Stem <source id>_<8 hex of Roboflow's hash>; photos whose label file holds no polygon are left out."""
    images, masks = _dirs(raw, "cats")
    root = src / "feral-cat-segmentation.v1i.yolov8"
    pairs = [(f"train/images_{k}", f"train/labels_{k}") for k in ("1st_500", "2nd_500", "3rd_500", "4th_500",
                                                                    "remainder")]
    pairs += [("valid/images", "valid/labels"), ("test/images", "test/labels")]
    n = 0
    for idir, ldir in pairs:
        for ip in sorted((root / idir).glob("*.jpg")):
            m = CAT_NAME.match(ip.stem)
            if m is None:
                raise MosError(f"{ip}: not a Roboflow export name (<id>_<ext>.rf.<hash>)")
            label = root / ldir / f"{ip.stem}.txt"
            with Image.open(ip) as im:
                size = im.size
            mask = cat_mask(label.read_text(encoding="utf-8"), size) if label.exists() else None
            if mask is None:
                continue
            stem = f"{m.group(1)}_{m.group(2)[:8]}"
            (images / f"{stem}.jpg").write_bytes(ip.read_bytes())
            mask.save(masks / f"{stem}.png")
            n += 1
    return n


BUILDERS = {"humanseg": build_humanseg, "davis": build_davis, "horse": build_horse, "cats": build_cats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.rebuild", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool", help="one photo-pool source from a fetched repository (bare git dir)")
    p.add_argument("git_dir", type=Path)
    p.add_argument("commit")
    p.add_argument("slug")
    p.add_argument("pattern", help="regular expression a repository path must match whole")
    p.add_argument("--exclude", help="leave out paths this expression finds")
    p.add_argument("--out", type=Path, required=True, help="the pool folder")
    r = sub.add_parser("realsets", help="the four round-1 real-truth sets from their repositories' trees")
    r.add_argument("src", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--sets", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pool":
            stats = extract_pool_source(args.git_dir, args.commit, args.slug, args.pattern, args.out, args.exclude)
            print(args.slug, json.dumps(stats))
        else:
            for name in args.sets:
                if not (args.src / name).is_dir():
                    raise MosError(f"{args.src / name}: the {name} repository's tree is not there")
                print(name, BUILDERS[name](args.src / name, args.out), "pairs")
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
