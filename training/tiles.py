"""The teacher at 1:1: sharpen its whole-photo labels of large photos with its answers on full-resolution tiles.

    python -m training.tiles PHOTOS LABELS --model TEACHER_DIR/isnet_medium.onnx --out SHARP [--min-side 1500]

The teacher sees every photo at 1024 × 1024, so on a 4K photo its edge is a ramp four pixels or more wide and a
cigarette or a strand of hair is gone: labels no sharper than that cannot teach H the full-resolution crops it runs
on (issue 13). On a 1024-px tile of the photo itself it draws such edges crisply, but a tile is a new photo to it:
where the object fills little of the tile it picks something else or nothing, and over dark-on-dark it goes grey.
A 2048-px tile (seen at half its resolution, still twice the whole-photo view of a 4K photo) holds more of the
object and agrees far more often; the finer tile wins where both are used.

So a tile's answer is used only where it can be trusted:
* only within `band` of the teacher's own pixels (1024-px units) of the whole-photo label's edge; parts taken or
  missed stay the whole-photo label's;
* only when, on the tile, the teacher agrees with its whole-photo answer away from the edge: the medians of its tile
  answer over the whole-photo label's sure object and sure background must lie at least `min_gap` apart (1 and 0
  when it agrees). The tile's answer is then stretched so those medians become 1 and 0;
* overlapping tiles are feathered into one another, and a tile's weight fades into the whole-photo label at its
  border, so no seam shows.

Seen on the walking man of the Canon sample (3888 px, held out; docs/DATA_ENGINE.md): the 1024-px tiles draw the
face's profile, the cigarette and the hair's outline crisply and are refused over the legs (the teacher takes
nothing of a leg at the tile's edge, or goes grey over the dark pavement), where the 2048-px tiles sharpen them.
A training-time tool, like the teacher itself: nothing of it runs in MOS Studio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from mos_studio.core.errors import MosError

from .teacher import (
    INPUT_SIZE,
    LICENCES,
    Teacher,
    check_same_teacher,
    list_photos,
    mask_path,
    parse_shard,
    write_manifest_file,
)

Labeller = Callable[[np.ndarray], np.ndarray]  # H×W×3 uint8 → H×W uint8 soft mask, as Teacher.__call__
# Tile sides, coarse to fine: a 2048-px tile is seen at half its resolution but holds enough of the object for the
# teacher to agree with itself far more often (stop 44: 12 of 17 tiles used on the 5 held-out large photos, against
# 10 of 42 at 1024); where a 1024-px tile agrees too, its 1:1 answer wins.
TILES = (2048, INPUT_SIZE)


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins covering [0, length) with a quarter of each tile overlapping the next."""
    if length <= tile:
        return [0]
    step = tile * 3 // 4
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _feather(h: int, w: int, reach: int) -> np.ndarray:
    """A tile's weight: 1 inside, falling linearly to 1/reach at its border."""
    ry = np.minimum(np.minimum(np.arange(h) + 1, np.arange(h)[::-1] + 1) / reach, 1.0)
    rx = np.minimum(np.minimum(np.arange(w) + 1, np.arange(w)[::-1] + 1) / reach, 1.0)
    return (ry[:, None] * rx[None, :]).astype(np.float32)


def sharpen(labeller: Labeller, rgb: np.ndarray, soft: np.ndarray, tiles: Sequence[int] = TILES,
            band: float = 3.0, min_gap: float = 0.8, min_sure: int = 2000) -> tuple[np.ndarray, dict]:
    """`soft` (the whole-photo label, uint8 at the photo's size) with its edge band redrawn from `labeller`'s
    answers on tiles of `rgb`; returns the new uint8 label and a record of the tiles used and refused.

    `tiles` are the tile sides, coarse to fine; a tile side the photo does not exceed is skipped (that tile would
    be the whole photo again). Where a finer tile is used it wins, feathered into the coarser answer below it."""
    h, w = soft.shape
    if rgb.shape[:2] != (h, w):
        raise MosError(f"label {w}×{h} and photo {rgb.shape[1]}×{rgb.shape[0]} differ in size")
    g = soft.astype(np.float32) / 255.0
    obj = (g > 0.5).astype(np.uint8)
    px = band * max(h, w) / INPUT_SIZE  # `band` of the teacher's own pixels, in the photo's
    inside = cv2.distanceTransform(obj, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - obj, cv2.DIST_L2, 5)
    # Redrawn: the edge band and wherever the whole-photo label itself hedges (its ramp can be wider than the
    # band; a band that stopped inside the ramp left a grey ring round the object, stop 44), faded in over a
    # teacher pixel so the border of what was redrawn does not show.
    unsure = (g > 0.02) & (g < 0.98)
    k = 2 * max(1, round(px / 2)) + 1
    near = cv2.blur(((np.maximum(inside, outside) <= px) | unsure).astype(np.float32), (k, k))
    # Sure: far from the edge and sure of itself (a label that hedges everywhere, a facade at 0.5, has no such part)
    sure_obj, sure_bg = (inside > 2 * px) & (g > 0.9), (outside > 2 * px) & (g < 0.1)
    record: dict = {"tiles": [], "used": 0, "refused": 0}
    out = g.copy()
    for tile in sorted({int(t) for t in tiles}, reverse=True):
        if tile >= max(h, w):
            continue
        acc = np.zeros((h, w), np.float32)
        weight = np.zeros((h, w), np.float32)
        for y in _starts(h, tile):
            for x in _starts(w, tile):
                sl = np.s_[y:y + tile, x:x + tile]
                if not (near[sl] > 0).any():
                    continue
                rec: dict = {"size": tile, "x": x, "y": y}
                f, b = sure_obj[sl], sure_bg[sl]
                if f.sum() < min_sure or b.sum() < min_sure:
                    rec["refused"] = "object or background too small on this tile"
                else:
                    t = labeller(np.ascontiguousarray(rgb[sl])).astype(np.float32) / 255.0
                    m_obj, m_bg = float(np.median(t[f])), float(np.median(t[b]))
                    rec.update(object=round(m_obj, 3), background=round(m_bg, 3))
                    if m_obj - m_bg < min_gap:
                        rec["refused"] = "disagrees with the whole-photo label away from the edge"
                    else:
                        fe = _feather(t.shape[0], t.shape[1], max(1, tile // 8))
                        acc[sl] += np.clip((t - m_bg) / (m_obj - m_bg), 0.0, 1.0) * fe
                        weight[sl] += fe
                record["refused" if "refused" in rec else "used"] += 1
                record["tiles"].append(rec)
        cover = np.minimum(weight, 1.0) * near
        answer = np.divide(acc, weight, out=out.copy(), where=weight > 0)
        out = cover * answer + (1.0 - cover) * out
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), record


def sharpen_folder(photos: Path, labels: Path, model: Path, out: Path, min_side: int = 1500, threads: int = 1,
                   limit: int | None = None, shard: tuple[int, int] = (0, 1), **options: object) -> dict:
    """Sharpen the label of every photo under `photos` of `min_side` px or more whose label is in `labels` and not
    yet in `out` (resumable); returns the run's summary, also written to out/manifest.json."""
    from PIL import Image

    from mos_studio.core.io import load_image

    if not labels.is_dir():
        raise MosError(f"{labels}: no folder of teacher labels here (run `python -m training.teacher label` first)")
    teacher = Teacher(model, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    manifest, log = out / "manifest.json", out / "tiles.jsonl"
    check_same_teacher(manifest, teacher, "sharpened")
    done = small = missing = failed = 0
    with open(log, "a") as logf:
        for photo in list_photos(photos)[shard[0]::shard[1]]:  # shard K of N: every N-th photo from K
            if limit is not None and done >= limit:
                break
            target, given = mask_path(photo, photos, out), mask_path(photo, photos, labels)
            rel = target.relative_to(out)
            if target.is_file():
                continue
            if not given.is_file():
                missing += 1
                continue
            t0 = time.perf_counter()
            try:
                with Image.open(photo) as im:  # the header only: most of a pool is small
                    if max(im.size) < min_side:
                        small += 1
                        continue
                rgb = load_image(photo).rgb
                soft = np.array(Image.open(given).convert("L"))
                if soft.shape != rgb.shape[:2]:
                    raise MosError(f"{given}: label is {soft.shape[1]}×{soft.shape[0]}, the photo "
                                   f"{rgb.shape[1]}×{rgb.shape[0]}")
                sharp, rec = sharpen(teacher, rgb, soft, **options)
            except (MosError, OSError, ValueError) as e:
                failed += 1
                logf.write(json.dumps({"photo": str(rel), "error": str(e)}) + "\n")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.stem + ".part.png")
            Image.fromarray(sharp).save(tmp, compress_level=3)
            os.replace(tmp, target)
            done += 1
            logf.write(json.dumps({"photo": str(rel), "size": [int(rgb.shape[1]), int(rgb.shape[0])],
                                   "seconds": round(time.perf_counter() - t0, 2), **rec}) + "\n")
            logf.flush()
    summary = {"teacher": model.name, "teacher_sha256": teacher.sha256, "licences": LICENCES,
               "photos_root": str(photos.resolve()), "labels": str(labels.resolve()), "min_side": min_side,
               "options": options, "sharpened_now": done, "smaller_than_min_side": small,
               "without_a_label": missing, "failed_now": failed}
    write_manifest_file(manifest, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.tiles", description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", type=Path, help="a photo or a folder of photos (searched recursively)")
    ap.add_argument("labels", type=Path, help="the teacher's whole-photo labels (training.teacher label's --out)")
    ap.add_argument("--model", type=Path, required=True, help="the teacher's ONNX file")
    ap.add_argument("--out", type=Path, required=True, help="folder for the sharpened labels (same relative paths)")
    ap.add_argument("--min-side", type=int, default=1500, help="only photos whose long side is at least this")
    ap.add_argument("--band", type=float, default=3.0, help="redraw within this many teacher pixels of the edge")
    ap.add_argument("--min-gap", type=float, default=0.8, help="refuse a tile whose sure object and background "
                                                               "medians lie closer than this")
    ap.add_argument("--tiles", default=",".join(str(t) for t in TILES),
                    help="tile sides in px, coarse to fine (default %(default)s; the teacher sees each at 1024)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, help="sharpen at most this many photos in this run")
    ap.add_argument("--shard", default="0/1", help="K/N: only every N-th photo starting at K (parallel runs)")
    args = ap.parse_args(argv)
    try:
        if not 0.0 < args.min_gap <= 1.0 or args.band <= 0:
            raise MosError(f"--min-gap must be in (0, 1] and --band above 0, not {args.min_gap} and {args.band}")
        try:
            sides = [int(t) for t in args.tiles.split(",")]
            assert sides and min(sides) >= 64
        except (ValueError, AssertionError):
            raise MosError(f"--tiles must be tile sides of 64 px or more, comma-separated, not {args.tiles!r}") \
                from None
        s = sharpen_folder(args.photos, args.labels, args.model, args.out, args.min_side, args.threads, args.limit,
                           parse_shard(args.shard), band=args.band, min_gap=args.min_gap, tiles=sides)
    except MosError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {s['sharpened_now']} sharpened now, {s['smaller_than_min_side']} smaller than "
          f"{args.min_side} px, {s['without_a_label']} without a label, {s['failed_now']} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
