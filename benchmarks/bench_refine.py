"""Does `mos refine` (H alone) keep a good mask good? IoU and mBA before and after, at full resolution.

    python benchmarks/bench_refine.py SPLIT_VAL_DIR [--min-side 1500] [--max-images 30] [--seed 0]
                                      [--models-dir DIR] [--guard KEY=VALUE ...] [--soft] [--rough-inputs]
                                      [--rough-amount 0.006] [--no-free]

SPLIT_VAL_DIR holds `<source>/{images,masks}` (e.g. the held-out side of `training.pool split`: teacher masks,
used here as the truth). For every photo whose long side is at least --min-side, H refines two inputs:
the truth itself (what a user with a good selection hands to Refine Selection: its 0.5 cut, or with --soft the
teacher's soft mask as it is, like a feathered selection; scores are against the 0.5 cut) and the truth perturbed
to IoU 0.95-0.99 (CascadePSP's perturbation, training/data/perturb.py). Each input runs twice in the same process: with
the refine guards (CascadeConfig.refine_band and refine_confidence, the defaults: "band") and without them (H may
change every pixel: "free"), so the two are compared on the same photos and machine state. Prints one line per
photo and the means; no timing assertions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mos_studio.core import Cascade  # noqa: E402
from mos_studio.core.cascade import object_bounds  # noqa: E402
from mos_studio.core.io import load_image  # noqa: E402
from mos_studio.core.metrics import iou, mba  # noqa: E402
from training.data.perturb import perturb_mask  # noqa: E402
from training.data.sources import read_gray  # noqa: E402

# The CascadeConfig fields --guard may change: the refine guards, and the H passes they act on.
GUARDS = ("refine_band", "refine_confidence", "refine_local_passes", "refine_min_change", "h_flip", "local_passes",
          "global_size", "refine_flip", "refine_skip",
          "refine_soft_confidence", "refine_rough", "refine_rough_cut", "refine_rough_band", "refine_rough_pad",
          "refine_rough_mix", "refine_rough_clear", "refine_rough_min_keep", "refine_rough_box_fill")


def set_config_field(config: object, key: str, text: str) -> None:
    """Set one CascadeConfig field from command-line text: "None", a bool ("1", "true", "yes"), or the field's type
    (float where the default is None). Raises ValueError for an unknown field."""
    if not hasattr(config, key):
        raise ValueError(f"CascadeConfig has no field {key!r}")
    old = getattr(config, key)
    value = (None if text == "None" else text.lower() in ("1", "true", "yes") if isinstance(old, bool)
             else type(old if old is not None else 0.0)(text))
    setattr(config, key, value)


def pairs(root: Path, min_side: int) -> list[tuple[Path, Path]]:
    from PIL import Image

    out = []
    for masks in sorted(root.glob("*/masks")):
        for m in sorted(masks.glob("*.png")):
            imgs = sorted((masks.parent / "images").glob(m.stem + ".*"))
            if not imgs:
                continue
            with Image.open(imgs[0]) as im:
                if max(im.size) >= min_side:
                    out.append((imgs[0], m))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--min-side", type=int, default=1500)
    ap.add_argument("--max-images", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--guard", action="append", default=[], metavar="KEY=VALUE",
                    help="change a guard of the banded run, e.g. refine_confidence=0.97 or refine_band=None")
    ap.add_argument("--rough-inputs", action="store_true",
                    help="also hand H the truth grown and shrunk by --rough-amount of the long side, closed over "
                         "3 %% of it then grown (quick lassos), and its bounding box widened by 2 %% (a rectangle)")
    ap.add_argument("--rough-amount", type=float, default=0.006, metavar="SHARE",
                    help="how far --rough-inputs grows and shrinks the truth, as a share of the long side (0.006)")
    ap.add_argument("--soft", action="store_true",
                    help="hand H the teacher's soft mask as the right one (a feathered selection), not its 0.5 cut")
    ap.add_argument("--no-free", action="store_true", help="skip the unguarded run (it runs H's crops: slow)")
    args = ap.parse_args()
    todo = pairs(args.root, args.min_side)[: args.max_images]
    if not todo:
        print(f"no photos of {args.min_side} px or more under {args.root}", file=sys.stderr)
        return 2
    banded = Cascade.from_pretrained(args.models_dir, stages="H")
    for spec in args.guard:
        key, _, text = spec.partition("=")
        if key not in GUARDS:
            ap.error(f"--guard {spec}: expected one of {', '.join(GUARDS)}")
        set_config_field(banded.config, key, text)
    if banded.config.refine_rough and banded.config.refine_rough_cut:  # a rough refine cuts again: L is needed
        banded = Cascade.from_pretrained(args.models_dir, config=banded.config)
    free = Cascade.from_pretrained(args.models_dir, stages="H")
    free.config.refine_band = None
    free.config.refine_confidence = None
    free.config.refine_local_passes = True
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    print(f"{len(todo)} photos ≥ {args.min_side} px; device {banded.device_name}")
    print(f"{'photo':44s} {'input':9s} {'IoU in':>7s} {'mBA in':>7s} | {'band IoU':>8s} {'mBA':>6s} | "
          f"{'free IoU':>8s} {'mBA':>6s} | {'s':>5s}")
    for img_path, mask_path in todo:
        rgb = load_image(img_path).rgb
        soft = read_gray(mask_path).astype(np.float32)
        truth = soft > 0.5
        inputs = {"teacher": soft if args.soft else truth.astype(np.float32),
                  "perturbed": perturb_mask(truth.astype(np.float32), rng, (0.95, 0.99))}
        if args.rough_inputs:  # a lasso drawn a little outside or inside the object all round
            r = max(4, round(args.rough_amount * max(truth.shape)))
            disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            inputs["grown"] = cv2.dilate(truth.astype(np.uint8), disc).astype(np.float32)
            inputs["shrunk"] = cv2.erode(truth.astype(np.uint8), disc).astype(np.float32)
            # ... and one drawn round the object's gaps too: closed over 3 % of the long side, then grown.
            r3 = max(4, round(0.03 * max(truth.shape)))
            wide = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r3 + 1, 2 * r3 + 1))
            inputs["lasso"] = cv2.dilate(cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_CLOSE, wide),
                                         disc).astype(np.float32)
            # ... and a rectangle 2 % of the long side outside the object's bounding box.
            bounds = object_bounds(truth)
            if bounds is not None:
                pad = round(0.02 * max(truth.shape))
                x0, y0, x1, y1 = bounds
                rect = np.zeros(truth.shape, np.float32)
                rect[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = 1.0
                inputs["rect"] = rect
        for kind, given in inputs.items():
            t0 = time.perf_counter()
            a = banded(rgb, mask=given).probability
            dt = time.perf_counter() - t0
            b = a if args.no_free else free(rgb, mask=given).probability
            row = (iou(given, truth), mba(given, truth), iou(a, truth), mba(a, truth), iou(b, truth), mba(b, truth))
            rows.setdefault(kind, []).append(row)
            name = f"{mask_path.parent.parent.name}/{img_path.name}"[:44]
            print(f"{name:44s} {kind:9s} {row[0]:7.4f} {row[1]:7.4f} | {row[2]:8.4f} {row[3]:6.4f} | "
                  f"{row[4]:8.4f} {row[5]:6.4f} | {dt:5.1f}", flush=True)
    print()
    for kind, r in rows.items():
        a = np.array(r)
        drop_band = (a[:, 0] - a[:, 2]).max()
        drop_free = (a[:, 0] - a[:, 4]).max()
        print(f"{kind:9s} n={len(r):3d}  mean IoU {a[:, 0].mean():.4f} → band {a[:, 2].mean():.4f} / free "
              f"{a[:, 4].mean():.4f}   mean mBA {a[:, 1].mean():.4f} → band {a[:, 3].mean():.4f} / free "
              f"{a[:, 5].mean():.4f}   worst IoU drop: band {drop_band:.4f}, free {drop_free:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
