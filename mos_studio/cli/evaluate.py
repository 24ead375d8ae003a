"""`mos eval` (score a model stage or existing predictions) and `mos complexity` (C_IPQ table)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from mos_studio.core.errors import MosError

from .cut import COLOUR_HELP, set_colour_assist, set_edge_snap
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a model stage or existing predictions (MAE, S-m, IoU, mBA, MQ)")
    p.add_argument("dataset", nargs="?", type=Path, help="folder with images/ and masks/")
    p.add_argument("--stage", nargs="+", default=["LH"], metavar="STAGE",
                   help="L (at L's input size, paper Tables 2-4), L-up (L bilinearly upsampled to full resolution: "
                        "the baseline H must beat), LH (full cascade, Table 5) or H-from MASK_DIR (Table 6)")
    p.add_argument("--pred", type=Path, help="folder of predicted masks to score without a model")
    p.add_argument("--gt", type=Path, help="folder of ground-truth masks (with --pred)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: eval-<name>-<stage>)")
    p.add_argument("--encoder", default="default", choices=("default", "mobilenetv3", "resnet50", "efficientnet_lite0"),
                   help="which trained pair (default: the pair the models folder's default.json names)")
    p.add_argument("--crops", "--fine-detail", dest="crops", action=argparse.BooleanOptionalAction, default=None,
                   help="run H's full-resolution crops, the app's fine detail (default: as H's card says)")
    p.add_argument("--edge-snap", action=argparse.BooleanOptionalAction, default=None,
                   help="snap a cut's edge onto the photo's edges (default: as H's card says); compare with and "
                        "without it (--stage LH only: L's mask and a given mask are never snapped)")
    p.add_argument("--colour-assist", "--color-assist", action=argparse.BooleanOptionalAction, default=None,
                   help=COLOUR_HELP + "; acts wherever L runs (not --stage H-from)")
    p.add_argument("--max-images", type=int, default=None, metavar="N",
                   help="score only N pairs, evenly spaced in name order (a quick, reproducible look at a big set)")
    p.add_argument("--error-split", action="store_true",
                   help="also say how much IoU and mBA is lost to thin errors (an edge a pixel or two off) and how "
                        "much to thick ones (a part taken or missed): extra columns, summary keys and a second table")
    p.add_argument("--device", default=None)
    p.add_argument("--models-dir", type=Path, default=None)
    p.set_defaults(func=run_eval)

    c = sub.add_parser("complexity", help="C_IPQ boundary complexity of a dataset's masks (paper Table 1)")
    c.add_argument("dataset", type=Path, help="folder with masks/ (or a folder of masks)")
    c.add_argument("--square", type=int, default=512, help="side of the square the object crop is resized to")
    c.set_defaults(func=run_complexity)


def _parse_stage(values: list[str]) -> tuple[str, Path | None]:
    if values in (["L"], ["L-up"], ["LH"]):
        return values[0], None
    if len(values) == 2 and values[0] == "H-from":
        return "H-from", Path(values[1])
    raise MosError(f"--stage {' '.join(values)}: expected L, L-up, LH or H-from MASK_DIR")


def _check_switches(stage: str, args: argparse.Namespace) -> None:
    """Refuse a switch the stage never reads, so a comparison cannot silently measure the same thing twice."""
    if args.edge_snap is not None and stage != "LH":
        raise MosError(f"--{'' if args.edge_snap else 'no-'}edge-snap applies to --stage LH only: the snap moves the "
                       f"cascade's own cut, never L's mask nor a given mask (H-from)")
    if args.colour_assist is not None and stage == "H-from":
        raise MosError(f"--{'' if args.colour_assist else 'no-'}colour-assist applies where L runs: stage H-from "
                       f"refines a given mask and never runs L")
    if args.crops is not None and stage in ("L", "L-up"):
        raise MosError(f"--{'' if args.crops else 'no-'}crops applies to --stage LH and H-from: stage {stage} "
                       f"does not run H")


def run_eval(args: argparse.Namespace) -> int:
    from mos_studio.core import evaluation as ev
    from mos_studio.core.io import load_image, load_mask

    if args.pred is not None or args.gt is not None:
        if args.pred is None or args.gt is None:
            raise MosError("--pred and --gt go together: mos eval --pred PRED_DIR --gt GT_DIR")
        pairs = ev.pair_folders(args.pred, args.gt, what="predictions")
        images_dir = args.gt.parent / "images"
        out = args.out or Path(f"eval-{args.pred.name}")
        title = args.pred.name

        def predict(pair: ev.Pair):
            gt = load_mask(pair.mask)
            pred = load_mask(pair.image, size=(gt.shape[1], gt.shape[0]))
            img = _image_for(images_dir, pair.name, gt.shape)
            return img, gt, pred

    else:
        if args.dataset is None:
            raise MosError("give a DATASET folder, or --pred DIR --gt DIR to score existing predictions")
        stage, from_dir = _parse_stage(args.stage)
        _check_switches(stage, args)
        pairs = ev.dataset_pairs(args.dataset)
        from mos_studio.core.cascade import Cascade

        stages = {"L": "L", "L-up": "L", "LH": "LH", "H-from": "H"}[stage]
        cascade = Cascade.from_pretrained(args.models_dir, encoder=args.encoder, device=args.device, stages=stages)
        if args.crops is not None:
            cascade.config.local_passes = args.crops
        set_edge_snap(cascade.config, args.edge_snap)
        set_colour_assist(cascade.config, args.colour_assist)
        print(f"device: {cascade.device_name}", file=sys.stderr)
        out = args.out or Path(f"eval-{args.dataset.name}-{stage}")
        title = f"{args.dataset.name} {stage} ({args.encoder})"
        if from_dir is not None and not from_dir.is_dir():
            raise MosError(f"{from_dir}: folder of masks to refine does not exist")

        def predict(pair: ev.Pair):
            img = load_image(pair.image)
            gt = load_mask(pair.mask, size=(img.width, img.height))
            if stage == "L":
                size = cascade.l_input_size(img.height, img.width)
                small = cv2.resize(img.rgb, size, interpolation=cv2.INTER_AREA)
                gt_s = cv2.resize(gt, size, interpolation=cv2.INTER_AREA)
                # Two inputs of different shapes, or a closer look at part of the full photo: L runs on the
                # photo itself and is scored at the first input's size.
                if cascade.config.l_blend or cascade.config.l_zoom:
                    prob = cv2.resize(cascade.run_low(img.rgb)[0], size, interpolation=cv2.INTER_AREA)
                else:
                    prob, _ = cascade.run_low(small)
                return small, gt_s, prob
            if stage == "L-up":
                return img.rgb, gt, cascade.run_low(img.rgb)[0]
            if stage == "LH":
                return img.rgb, gt, cascade(img).probability
            src = _find_mask(from_dir, pair.name)
            coarse = load_mask(src, size=(img.width, img.height))
            return img.rgb, gt, cascade(img, mask=coarse).probability

    pairs = subsample(pairs, args.max_images)
    bar = ProgressBar(len(pairs), "eval")
    summary, interrupted = ev.evaluate(pairs, predict, out, title, progress=lambda i, n, name: bar.update(i, name),
                                       error_split=args.error_split)
    bar.close()
    print((out / "table.md").read_text(encoding="utf-8"))
    print(f"per-image rows: {out / 'per_image.csv'}; summary: {out / 'summary.json'}; worst 8: {out / 'worst.png'}")
    if interrupted:
        print(f"mos: interrupted after {summary['n']} of {len(pairs)} images; rows so far are kept", file=sys.stderr)
        return 130
    return 0


def subsample(pairs: list, n: int | None) -> list:
    """`n` items evenly spaced over `pairs` (all of them when n is None or at least their number)."""
    if n is None or n >= len(pairs):
        return pairs
    if n < 1:
        raise MosError(f"--max-images {n}: give a positive number")
    return [pairs[int(i * len(pairs) / n)] for i in range(n)]


def _find_mask(folder: Path, stem: str) -> Path:
    for suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"):
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    raise MosError(f"{folder}: no mask named {stem}.* to refine")


def _image_for(folder: Path, stem: str, shape: tuple[int, ...]) -> np.ndarray:
    """The photo for the gallery when it sits beside the truth; a grey tile otherwise."""
    from mos_studio.core.io import load_image

    if folder.is_dir():
        for suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"):
            p = folder / f"{stem}{suffix}"
            if p.is_file():
                rgb = load_image(p).rgb
                if rgb.shape[:2] == shape[:2]:
                    return rgb
    return np.full((*shape[:2], 3), 128, np.uint8)


def run_complexity(args: argparse.Namespace) -> int:
    from mos_studio.core import evaluation as ev
    from mos_studio.core.io import load_mask
    from mos_studio.core.metrics import c_ipq

    folder = args.dataset / "masks" if (args.dataset / "masks").is_dir() else args.dataset
    pairs = ev.pair_folders(None, folder)
    if not pairs:
        raise MosError(f"{folder}: no mask files found")
    values = []
    print("| mask | C_IPQ (×10⁻³) |\n|---|---|")
    for pair in pairs:
        v = c_ipq(load_mask(pair.mask), square=args.square)
        values.append(v)
        print(f"| {pair.name} | {'empty' if math.isnan(v) else f'{1000 * v:.2f}'} |")
    valid = [v for v in values if not math.isnan(v)]
    mean = float(np.mean(valid)) if valid else float("nan")
    print(f"\n{args.dataset.name}: {len(valid)} masks, mean C_IPQ = {1000 * mean:.2f} ×10⁻³ "
          f"({len(values) - len(valid)} empty skipped; square {args.square} px)")
    return 0
