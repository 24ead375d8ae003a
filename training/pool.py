"""Keep the teacher's good labels, show the rule to a person, and hold out a split that training never sees.

    python -m training.pool filter POOL LABELS --out FILTER.json
    python -m training.pool sheet POOL LABELS FILTER.json --out docs/teacher_filter_sheet.png
    python -m training.pool held-out POOL [--val-fraction 0.07] > first.txt   # label these first
    python -m training.pool split POOL LABELS FILTER.json --out SPLIT_DIR [--val-fraction 0.07]
    python -m training.pool shrink SPLIT_DIR/train --out SMALL_DIR [--max-side 512]   # L's copy: decode once

POOL holds one folder per photo source (`POOL/<source>/...`), LABELS the teacher's masks at the same relative paths
(`training.teacher label`). The teacher is wrong in recognisable ways: it returns nothing or everything when the
photo has no single subject, it hedges (a wide grey band along the edge) when it does not know where the object
ends, and it scatters blobs over busy scenes. `filter` measures those on each mask and drops the photo when one is
out of range; every decision and its reason are written down so a person can check the rule with `sheet`.

`split` puts each kept photo on the train or held-out side by a SHA-1 of its source and name: the side of a photo
never depends on which other photos exist, so labelling more photos later never moves a photo from train to
held-out (or back). Output: `SPLIT_DIR/{train,val}/<source>/{images,masks}` as symbolic links (the layout that
`training.train`'s folder sources read) and `SPLIT_DIR/split.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from mos_studio.core.errors import MosError

from .teacher import list_photos, mask_path


@dataclass(frozen=True)
class Rule:
    """Thresholds of the filter (measured on a mask shrunk to `work_side` px on its long side)."""

    work_side: int = 512
    min_foreground: float = 0.01  # share of the photo: below this the teacher found nothing
    max_foreground: float = 0.92  # above this it took the whole photo (no subject to cut out)
    max_band: float = 4.0  # grey pixels (0.1 < m < 0.9) per edge pixel: how wide the teacher hedges, in pixels
    min_main_part: float = 0.4  # share of the foreground in its largest connected part
    max_parts: int = 8  # connected parts bigger than 0.1 % of the photo
    max_border: float = 0.60  # share of the photo's border covered by foreground (a scene, not an object)


def mask_stats(mask: np.ndarray, rule: Rule = Rule()) -> dict[str, float]:
    """The measures the rule looks at, for a uint8 (0..255) or float (0..1) soft mask."""
    m = mask.astype(np.float32)
    if mask.dtype == np.uint8:
        m /= 255.0
    h, w = m.shape
    s = rule.work_side / max(h, w)
    if s < 1.0:
        m = cv2.resize(m, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    fg = m > 0.5
    n_fg = int(fg.sum())
    unsure = int(((m > 0.1) & (m < 0.9)).sum())
    # Edge length in pixels; grey pixels per edge pixel is the band's width, which thin strands do not inflate.
    edge = int((cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0).sum())
    n, _, cstats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    areas = np.sort(cstats[1:, cv2.CC_STAT_AREA])[::-1] if n > 1 else np.zeros(0, np.int64)
    border = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
    return {
        "foreground": n_fg / fg.size,
        "band": unsure / max(edge, 1),
        "main_part": float(areas[0]) / n_fg if n_fg else 0.0,
        "parts": int((areas > 0.001 * fg.size).sum()),
        "border": float(border.mean()),
    }


def judge(stats: dict[str, float], rule: Rule = Rule()) -> str | None:
    """None when the label is kept, else the first reason to drop it."""
    if stats["foreground"] < rule.min_foreground:
        return "empty"
    if stats["foreground"] > rule.max_foreground:
        return "full"
    if stats["band"] > rule.max_band:
        return "unsure"
    if stats["parts"] > rule.max_parts or stats["main_part"] < rule.min_main_part:
        return "fragmented"
    if stats["border"] > rule.max_border:
        return "scene"
    return None


def _source_of(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else "."


def run_filter(pool: Path, labels: Path, out: Path, rule: Rule = Rule()) -> dict:
    """Judge every labelled photo of the pool; writes and returns the record (photos without a mask are ignored)."""
    photos = list_photos(pool)
    if not labels.is_dir():
        raise MosError(f"{labels}: no such folder of teacher labels")
    record: dict = {"rule": asdict(rule), "pool": str(pool.resolve()), "labels": str(labels.resolve()),
                    "per_source": {}, "photos": {}}
    for p in photos:
        mp = mask_path(p, pool, labels)
        if not mp.is_file():
            continue
        mask = cv2.imread(str(mp), cv2.IMREAD_GRAYSCALE)
        rel = p.relative_to(pool)
        src = record["per_source"].setdefault(_source_of(rel), {"kept": 0, "dropped": 0, "reasons": {}})
        if mask is None:
            reason, stats = "unreadable", {}
        else:
            stats = mask_stats(mask, rule)
            reason = judge(stats, rule)
        if reason is None:
            src["kept"] += 1
        else:
            src["dropped"] += 1
            src["reasons"][reason] = src["reasons"].get(reason, 0) + 1
        record["photos"][rel.as_posix()] = {"kept": reason is None, "reason": reason,
                                            **{k: round(float(v), 4) for k, v in stats.items()}}
    record["kept"] = sum(s["kept"] for s in record["per_source"].values())
    record["dropped"] = sum(s["dropped"] for s in record["per_source"].values())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, out)
    return record


def _read_filter(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text())
        rec["photos"]  # noqa: B018 - checks the shape
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MosError(f"{path}: not a filter record written by `training.pool filter` ({e})") from e
    return rec


def _tile(photo: Path, mask_file: Path, side: int, caption: str) -> np.ndarray:
    """Photo with the mask's outside dimmed and its edge drawn, next to the soft mask; caption underneath."""
    from mos_studio.core.io import load_image

    rgb = load_image(photo).rgb
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    m = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    m = cv2.resize(m, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    shown = small * (0.4 + 0.6 * m[..., None])
    edge = cv2.morphologyEx((m > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    shown[edge] = (255, 40, 40)
    cell = np.full((side + 18, 2 * side + 4, 3), 255, np.uint8)
    cell[: size[1], : size[0]] = shown.astype(np.uint8)
    cell[: size[1], side + 4: side + 4 + size[0]] = (m[..., None] * 255).astype(np.uint8)
    cv2.putText(cell, caption[:48], (2, side + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def contact_sheet(pool: Path, labels: Path, filter_json: Path, out: Path, n_kept: int = 48, n_dropped: int = 24,
                  seed: int = 0, side: int = 120, columns: int = 6) -> dict:
    """A PNG of random kept and dropped photos with their masks, for a person to judge the rule."""
    rec = _read_filter(filter_json)
    rng = np.random.default_rng(seed)
    kept = sorted(k for k, v in rec["photos"].items() if v["kept"])
    dropped = sorted(k for k, v in rec["photos"].items() if not v["kept"])
    pick_k = [kept[i] for i in sorted(rng.choice(len(kept), min(n_kept, len(kept)), replace=False))] if kept else []
    pick_d = ([dropped[i] for i in sorted(rng.choice(len(dropped), min(n_dropped, len(dropped)), replace=False))]
              if dropped else [])
    if not pick_k and not pick_d:
        raise MosError(f"{filter_json}: no judged photos to show")
    rows = []
    for title, picks in (("KEPT", pick_k), ("DROPPED", pick_d)):
        if not picks:
            continue
        cells = []
        for rel in picks:
            v = rec["photos"][rel]
            cap = f"{rel.split('/')[0][:14]} " + (v["reason"] or f"fg {v['foreground']:.2f} band {v['band']:.1f}")
            cells.append(_tile(pool / rel, mask_path(pool / rel, pool, labels), side, cap))
        blank = np.full_like(cells[0], 255)
        cells += [blank] * (-len(cells) % columns)
        header = np.full((26, columns * (cells[0].shape[1] + 6), 3), 255, np.uint8)
        cv2.putText(header, f"{title}: {len(picks)} random of {len(kept) if title == 'KEPT' else len(dropped)}",
                    (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(header)
        for r in range(0, len(cells), columns):
            row = [np.pad(c, ((3, 3), (3, 3), (0, 0)), constant_values=255) for c in cells[r: r + columns]]
            rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                            for r in rows])
    out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    try:  # a 256-colour palette keeps the sheet small enough for docs/ (about a third of the RGB file)
        Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    except OSError as e:
        raise MosError(f"{out}: could not write the contact sheet ({e})") from e
    return {"kept_shown": len(pick_k), "dropped_shown": len(pick_d), "size": [sheet.shape[1], sheet.shape[0]]}


def held_out(source: str, name: str, fraction: float) -> bool:
    """Stable side of one photo: by a SHA-1 of source and name, independent of every other photo."""
    digest = hashlib.sha1(f"{source}/{name}".encode()).hexdigest()
    return int(digest[:12], 16) / float(1 << 48) < fraction


def held_out_photos(pool: Path, val_fraction: float) -> list[str]:
    """Relative paths of the pool's photos that fall on the held-out side (label these first)."""
    out = []
    for p in list_photos(pool):
        parts = p.relative_to(pool).parts
        source, name = (parts[0], "__".join(parts[1:])) if len(parts) > 1 else (".", parts[0])
        if held_out(source, name, val_fraction):
            out.append(p.relative_to(pool).as_posix())
    return out


def make_split(pool: Path, labels: Path, filter_json: Path, out: Path, val_fraction: float = 0.07) -> dict:
    """Link kept photos and masks into train/ and val/ per source; refuses to touch an existing split folder."""
    if not 0.0 < val_fraction < 1.0:
        raise MosError(f"--val-fraction must lie strictly between 0 and 1, not {val_fraction}")
    rec = _read_filter(filter_json)
    for side in ("train", "val"):
        if (out / side).exists():
            raise MosError(f"{out / side}: already exists; a split is never changed in place (use a new --out)")
    sides: dict[str, dict[str, list[str]]] = {"train": {}, "val": {}}
    for rel in sorted(k for k, v in rec["photos"].items() if v["kept"]):
        photo = pool / rel
        mask = mask_path(photo, pool, labels)
        if not (photo.is_file() and mask.is_file()):
            raise MosError(f"{photo}: kept in {filter_json} but the photo or its mask {mask} is missing")
        parts = Path(rel).parts
        source = parts[0] if len(parts) > 1 else "."
        name = "__".join(parts[1:]) if len(parts) > 1 else parts[0]
        side = "val" if held_out(source, name, val_fraction) else "train"
        stem = Path(name).stem
        for sub, src, suffix in (("images", photo, photo.suffix), ("masks", mask, ".png")):
            d = out / side / source / sub
            d.mkdir(parents=True, exist_ok=True)
            os.symlink(src.resolve(), d / f"{stem}{suffix}")
        sides[side].setdefault(source, []).append(rel)
    record = {"filter": str(filter_json.resolve()), "val_fraction": val_fraction,
              "rule": "held out iff SHA-1('<source>/<name>') / 2^160 < val_fraction (stable as the pool grows)",
              "counts": {s: {src: len(v) for src, v in d.items()} for s, d in sides.items()},
              "train": sides["train"], "val": sides["val"]}
    record["n_train"] = sum(record["counts"]["train"].values())
    record["n_val"] = sum(record["counts"]["val"].values())
    (out / "split.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def shrink(split_side: Path, out: Path, max_side: int = 512, min_side: int = 0) -> dict:
    """Copy a split side with every photo and mask shrunk to `max_side` px on the long side.

    `min_side` leaves out photos whose long side is shorter (H's copy: only photos big enough to crop from).

    L sees 336 px inputs, so decoding a 4K JPEG per sample would spend the CPU on pixels training never uses.
    Photos already small enough are copied as they are; existing outputs are kept (the copy is resumable).
    """
    if max_side < 64:
        raise MosError(f"--max-side must be at least 64 px, not {max_side}")
    if not split_side.is_dir():
        raise MosError(f"{split_side}: not a split folder (expected <source>/images and <source>/masks)")
    counts: dict[str, int] = {}
    for images in sorted(split_side.glob("*/images")):
        source = images.parent.name
        for photo in sorted(images.iterdir()):
            mask = images.parent / "masks" / f"{photo.stem}.png"
            if not mask.is_file():
                raise MosError(f"{photo}: no mask {mask}")
            dst_img = out / source / "images" / f"{photo.stem}.jpg"
            dst_mask = out / source / "masks" / f"{photo.stem}.png"
            if not (dst_img.is_file() and dst_mask.is_file()):
                img = cv2.imread(str(photo), cv2.IMREAD_COLOR)
                m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
                if img is None or m is None:
                    raise MosError(f"{photo if img is None else mask}: not a readable image")
                h, w = m.shape
                if max(h, w) < min_side:
                    continue
                s = min(1.0, max_side / max(h, w))
                size = (max(1, round(w * s)), max(1, round(h * s)))
                if s < 1.0:
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                    m = cv2.resize(m, size, interpolation=cv2.INTER_AREA)
                elif img.shape[:2] != m.shape:
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                dst_img.parent.mkdir(parents=True, exist_ok=True)
                dst_mask.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(dst_img), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(str(dst_mask), m)
            counts[source] = counts.get(source, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.pool", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    # filter, sheet and split all read the pool and its labels; sheet and split also the filter's record.
    pl = argparse.ArgumentParser(add_help=False)
    pl.add_argument("pool", type=Path)
    pl.add_argument("labels", type=Path)
    plf = argparse.ArgumentParser(add_help=False, parents=[pl])
    plf.add_argument("filter", type=Path)
    f = sub.add_parser("filter", parents=[pl], help="judge every teacher label; decisions and counts per source")
    f.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("sheet", parents=[plf], help="contact sheet of random kept and dropped photos with their masks")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--seed", type=int, default=0)
    sp = sub.add_parser("split", parents=[plf], help="held-out split of the kept photos, stable as the pool grows")
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--val-fraction", type=float, default=0.07)
    ho = sub.add_parser("held-out", help="list the pool's photos on the held-out side (for `label --first`)")
    ho.add_argument("pool", type=Path)
    ho.add_argument("--val-fraction", type=float, default=0.07)
    sh = sub.add_parser("shrink", help="copy a split side with photos and masks shrunk for L's training")
    sh.add_argument("split_side", type=Path)
    sh.add_argument("--out", type=Path, required=True)
    sh.add_argument("--max-side", type=int, default=512)
    sh.add_argument("--min-side", type=int, default=0, help="leave out photos with a shorter long side")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "held-out":
            if not 0.0 < args.val_fraction < 1.0:
                raise MosError(f"--val-fraction must lie strictly between 0 and 1, not {args.val_fraction}")
            print("\n".join(held_out_photos(args.pool, args.val_fraction)))
        elif args.cmd == "filter":
            rec = run_filter(args.pool, args.labels, args.out)
            for name, c in sorted(rec["per_source"].items()):
                print(f"{name:40s} kept {c['kept']:5d}  dropped {c['dropped']:5d}  {c['reasons']}")
            print(f"{'all':40s} kept {rec['kept']:5d}  dropped {rec['dropped']:5d}")
        elif args.cmd == "sheet":
            info = contact_sheet(args.pool, args.labels, args.filter, args.out, seed=args.seed)
            print(f"{args.out}: {info['kept_shown']} kept and {info['dropped_shown']} dropped photos")
        elif args.cmd == "shrink":
            counts = shrink(args.split_side, args.out, args.max_side, args.min_side)
            print(f"{args.out}: {sum(counts.values())} photos ({', '.join(f'{k} {v}' for k, v in counts.items())})")
        else:
            rec = make_split(args.pool, args.labels, args.filter, args.out, args.val_fraction)
            print(f"{args.out}: {rec['n_train']} train, {rec['n_val']} held out")
    except MosError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
