"""How close do L and L+H come to the teacher on photos no training step saw? Full resolution, one or more weight sets.

    python benchmarks/eval_teacher.py SPLIT_VAL_DIR [--models-dir A --models-dir B ...] [--max-images 60]
                                      [--min-side 0] [--seed 0] [--save DIR] [--global-only-too] [--error-split]
                                      [--stage-split] [--teacher-as-l] [--box-margin 0.1]

SPLIT_VAL_DIR holds `<source>/{images,masks}`: the held-out side of `training.pool split`, whose masks are the
IS-Net teacher's (the truth here, binarised at 0.5). Photos are drawn at random with --seed, from those whose long
side is at least --min-side, so two runs with the same arguments see the same photos. Every weight set runs on the
same photos in the same process: L bilinearly upsampled (what H must beat) and the whole cascade (L+H). Prints one
line per photo, then means overall and per source; `--save DIR` writes each L+H mask for a look at 1:1.
`--error-split` also says how much of L+H's lost IoU and mBA lies in thin errors (an edge a pixel or two off) and how
much in thick ones (a part taken or missed): `mos_studio.core.metrics.error_split`. `--stage-split` says how much of
it is L's (both stages wrong) and how much H's (H overruling a right L), and what L+H would score with H's wrong
overrulings undone: `mos_studio.core.metrics.stage_split`. `--teacher-as-l` runs every run once more with L's
answer replaced by the teacher's own soft mask seen at L's resolution (`teacher_as_l`): what H and the edge snap make
of a perfect L, so a lost point can be laid at L's door or at H's. `--box-margin M` runs every run once more as a
box prompt (the app's X, `mos cut --box`) around the teacher's object, its box grown by M of its long side on each
side: what a user gets who drags a loose box around the subject, so a photo lost to L taking another subject can be
told from one lost at the edge.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_refine import pairs, set_config_field  # noqa: E402  (this folder is on sys.path when run as a script)

from mos_studio.core import Cascade  # noqa: E402
from mos_studio.core.io import load_image  # noqa: E402
from mos_studio.core.metrics import error_split, iou, mba, stage_split  # noqa: E402
from training.data.sources import read_gray  # noqa: E402


def pick(root: Path, n: int, min_side: int, seed: int) -> list[tuple[Path, Path]]:
    """n of bench_refine's held-out pairs (long side ≥ min_side), drawn with `seed`, kept in name order."""
    found = pairs(root, min_side)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(found))[:n] if n and n < len(found) else np.arange(len(found))
    return [found[i] for i in sorted(order)]


def _seen_at(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`a` shrunk to size (w, h) and enlarged back: the detail a map of that size can hold."""
    h, w = a.shape[:2]
    small = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def teacher_as_l(c: Cascade, soft: np.ndarray) -> np.ndarray:
    """The teacher's soft mask with no more detail than L's answer can hold: the whole photo at L's input size and,
    where the cascade takes L's second look, the box around it at that size, mixed as `run_low` mixes them. Handed
    to H in place of L's answer it says what H makes of an L that is right but for its resolution."""
    soft = np.asarray(soft, np.float32)
    h, w = soft.shape
    prob = _seen_at(soft, c.l_input_size(h, w))
    box = c.zoom_box(prob) if c.config.l_zoom else None
    if box is not None:
        x0, y0, x1, y1 = box
        mix = float(np.clip(c.config.l_zoom_mix, 0.0, 1.0))
        near = _seen_at(soft[y0:y1, x0:x1], c.l_input_size(y1 - y0, x1 - x0))
        prob[y0:y1, x0:x1] = (1.0 - mix) * prob[y0:y1, x0:x1] + mix * near
    return prob


def user_box(truth: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """The box a user might drag around the teacher's object: its bounding box grown by `margin` of its long side
    on each side, clipped to the photo (the whole photo when the teacher found nothing)."""
    h, w = truth.shape
    ys, xs = np.nonzero(truth)
    if len(xs) == 0:
        return 0, 0, w, h
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    grow = int(round(margin * max(x1 - x0, y1 - y0)))
    return max(0, x0 - grow), max(0, y0 - grow), min(w, x1 + grow), min(h, y1 + grow)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--models-dir", type=Path, action="append", default=None,
                    help="a folder of weights and cards (repeat to compare; default: the shipped models/)")
    ap.add_argument("--max-images", type=int, default=60)
    ap.add_argument("--min-side", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--global-only-too", action="store_true",
                    help="also run each weight set with H's global pass only (no full-resolution crops)")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="also run each weight set with these CascadeConfig fields changed (e.g. cut_band=0.02)")
    ap.add_argument("--error-split", action="store_true",
                    help="also split L+H's lost IoU and mBA into thin (edge placement) and thick (missed part) errors")
    ap.add_argument("--stage-split", action="store_true",
                    help="also split L+H's lost IoU into L's errors that H kept and H's wrong overrulings of L")
    ap.add_argument("--teacher-as-l", action="store_true",
                    help="also run every run above with the teacher's mask at L's resolution as L's answer")
    ap.add_argument("--box-margin", type=float, default=None, metavar="M",
                    help="also run every run above (but --teacher-as-l's) as a box prompt around the teacher's object, "
                         "its box grown by M of its long side")
    ap.add_argument("--box-only", action="store_true",
                    help="with --box-margin: run only the box prompts, not the whole-photo cuts they repeat")
    args = ap.parse_args()
    todo = pick(args.root, args.max_images, args.min_side, args.seed)
    if not todo:
        print(f"no photos of {args.min_side} px or more under {args.root}", file=sys.stderr)
        return 2
    dirs = args.models_dir or [None]
    cascades = [Cascade.from_pretrained(d) for d in dirs]
    names = [str(d) if d else "models/ (shipped)" for d in dirs]
    origins = list(dirs)  # the weights folder each cascade was loaded from
    if args.global_only_too:
        for d in dirs:
            c = Cascade.from_pretrained(d)
            c.config.local_passes = False
            cascades.append(c)
            names.append(f"{d or 'models/ (shipped)'}, H's global pass only")
            origins.append(d)
    for spec in args.variant:
        changes = dict(kv.split("=", 1) for kv in spec.split(","))
        for d in dirs:
            c = Cascade.from_pretrained(d)
            for key, text in changes.items():
                try:
                    set_config_field(c.config, key, text)
                except ValueError as err:
                    ap.error(f"--variant {spec}: {err}")
            cascades.append(c)
            names.append(f"{d or 'models/ (shipped)'}, {spec}")
            origins.append(d)
    oracles: set[int] = set()
    if args.teacher_as_l:  # every run above once more, the teacher's mask in place of L's answer
        for c, name, d in list(zip(cascades, names, origins, strict=True)):
            twin = Cascade.from_pretrained(d)
            twin.config = dataclasses.replace(c.config)
            oracles.add(len(cascades))
            cascades.append(twin)
            names.append(f"{name}, the teacher's mask at L's resolution as L's answer")
            origins.append(d)
    boxed: set[int] = set()
    if args.box_margin is not None:
        if not 0.0 <= args.box_margin <= 1.0:
            ap.error(f"--box-margin {args.box_margin}: give a share of the box's long side, 0 to 1")
        for k, (c, name, d) in enumerate(list(zip(cascades, names, origins, strict=True))):
            if k in oracles:  # the teacher's answer is for the whole photo, not a box's crop
                continue
            twin = Cascade.from_pretrained(d)
            twin.config = dataclasses.replace(c.config)
            boxed.add(len(cascades))
            cascades.append(twin)
            names.append(f"{name}, a box prompt around the teacher's object (margin {args.box_margin:g})")
        if args.box_only:  # keep the box prompts alone, in their order
            keep = sorted(boxed)
            cascades, names = [cascades[k] for k in keep], [names[k] for k in keep]
            boxed = set(range(len(keep)))
    elif args.box_only:
        ap.error("--box-only goes with --box-margin")
    if args.box_only and args.teacher_as_l:
        ap.error("--box-only leaves no run for --teacher-as-l's answers")
    for c in cascades:
        c.config.stage_maps = False
    print(f"{len(todo)} held-out photos ≥ {args.min_side} px (seed {args.seed}); device {cascades[0].device_name}")
    for k, name in enumerate(names):
        print(f"  [{k}] {name}")
    rows: list[dict] = []
    for img_path, mask_path in todo:
        rgb = load_image(img_path).rgb
        soft = read_gray(mask_path)
        truth = soft > 0.5
        source = mask_path.parent.parent.name
        row: dict = {"source": source, "name": img_path.name, "size": max(rgb.shape[:2])}
        parts = []
        for k, c in enumerate(cascades):
            if k in oracles:  # the cascade calls run_low for L's answer: this instance gets the teacher's
                given = teacher_as_l(c, soft)
                c.run_low = lambda image, given=given: (given, [])  # type: ignore[method-assign]
            t0 = time.perf_counter()
            if k in boxed:  # L's answer inside the box, nothing outside it: what the box prompt hands H
                x0, y0, x1, y1 = user_box(truth, args.box_margin)
                low = np.zeros(truth.shape, np.float32)
                low[y0:y1, x0:x1] = c.look_at_box(rgb, (x0, y0, x1, y1))[0]
                full = c(rgb, box=(x0, y0, x1, y1)).probability
            else:
                low, _ = c.run_low(rgb)
                full = c(rgb).probability
            dt = time.perf_counter() - t0
            row[k] = (iou(low, truth), mba(low, truth), iou(full, truth), mba(full, truth), dt)
            if args.error_split:
                row[("split", k)] = error_split(full, truth)
            if args.stage_split:
                row[("stage", k)] = stage_split(low, full, truth)
            parts.append(f"[{k}] L-up {row[k][0]:.3f}/{row[k][1]:.3f} LH {row[k][2]:.3f}/{row[k][3]:.3f} {dt:5.1f}s")
            if args.save:
                from PIL import Image

                d = args.save / str(k) / source
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(((full > 0.5) * 255).astype(np.uint8)).save(d / f"{img_path.stem}.png")
        rows.append(row)
        print(f"{source[:14]:14s} {img_path.name[:34]:34s} {row['size']:5d}px  " + "  ".join(parts), flush=True)
    print("\nmeans (IoU / mBA against the teacher):")
    groups: dict[str, list[dict]] = {"all": rows}
    for r in rows:
        groups.setdefault(r["source"], []).append(r)
    for g, rs in groups.items():
        cells = []
        for k in range(len(cascades)):
            a = np.array([r[k] for r in rs])
            cells.append(f"[{k}] L-up {a[:, 0].mean():.3f}/{a[:, 1].mean():.3f} → LH {a[:, 2].mean():.3f}/"
                         f"{a[:, 3].mean():.3f} (H +{100 * (a[:, 3].mean() - a[:, 1].mean()):.1f} mBA pts, "
                         f"median {np.median(a[:, 4]):.1f} s)")
        print(f"{g[:30]:30s} n={len(rs):3d}  " + "  ".join(cells))
    if args.error_split:
        print_error_split(rows, len(cascades))
    if args.stage_split:
        print_stage_split(rows, len(cascades))
    return 0


def print_error_split(rows: list[dict], n_sets: int) -> None:
    """Per weight set: the IoU and mBA points L+H would win back with its thin errors put right, and with its thick
    ones, and the photos that lose the most to thick errors (where L or H took or missed a part)."""
    print("\nwhere L+H loses against the teacher (points won back if that kind of error were put right):")
    for k in range(n_sets):
        sp = [r[("split", k)] for r in rows]
        mean = {key: float(np.mean([d[key] for d in sp])) for key in sp[0]}
        thin_share = mean["thin_px"] / max(1.0, mean["thin_px"] + mean["thick_px"])
        print(f"  [{k}] IoU {mean['iou']:.3f}: thin +{100 * (mean['iou_without_thin'] - mean['iou']):.1f}, "
              f"thick +{100 * (mean['iou_without_thick'] - mean['iou']):.1f} pts;  mBA {mean['mba']:.3f}: "
              f"thin +{100 * (mean['mba_without_thin'] - mean['mba']):.1f}, "
              f"thick +{100 * (mean['mba_without_thick'] - mean['mba']):.1f} pts;  "
              f"{100 * thin_share:.0f} % of wrong pixels thin")
        worst = sorted(zip(rows, sp, strict=True), key=lambda rs: rs[1]["iou"] - rs[1]["iou_without_thick"])[:5]
        print("       most lost to thick errors: " + ", ".join(
            f"{r['name']} {d['iou']:.2f}→{d['iou_without_thick']:.2f}" for r, d in worst))


def print_stage_split(rows: list[dict], n_sets: int) -> None:
    """Per weight set: L+H's lost IoU split into L's errors H left alone and H's wrong overrulings, as mean shares of
    each photo's union; then H's right overrulings and the IoU with its wrong ones undone."""
    print("\nwho loses L+H's IoU (mean share of each photo's union of L+H and the teacher):")
    for k in range(n_sets):
        sp = [r[("stage", k)] for r in rows]
        m = {key: float(np.mean([d[key] for d in sp])) for key in sp[0]}
        print(f"  [{k}] IoU {m['iou']:.4f} (L alone {m['iou_low']:.4f}); lost where both are wrong "
              f"{m['both_missed'] + m['both_kept']:.4f} (missed {m['both_missed']:.4f}, kept "
              f"{m['both_kept']:.4f}); lost to H overruling a right L {m['h_dropped'] + m['h_added']:.4f} "
              f"(dropped {m['h_dropped']:.4f}, added {m['h_added']:.4f}); won by H overruling a wrong L "
              f"{m['h_found'] + m['h_cleared']:.4f}; with H's wrong overrulings undone IoU "
              f"{m['iou_if_h_right']:.4f}")


if __name__ == "__main__":
    sys.exit(main())
