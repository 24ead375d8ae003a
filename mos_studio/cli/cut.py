"""`mos cut` (L + H on images or folders) and `mos refine` (H on a user mask)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mos_studio.core.errors import MosError

if TYPE_CHECKING:
    from mos_studio.core.cascade import CascadeConfig

from .progress import ProgressBar

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
EXPORTS = ("cutout", "mask", "composite", "alpha", "stages")
ALPHA_HELP = ("soft (default): alpha matting where H is unsure, with the object's own colours at the edge (no fringe "
              "of the old background); hard: the 0/255 mask. Applies to cutout, composite and the alpha export; "
              "the mask export is always the hard 0/255 mask, the alpha export (NAME_alpha.png) the 8-bit matte")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or mps (default: best available)")
    p.add_argument("--encoder", default="default", choices=("default", "mobilenetv3", "resnet50", "efficientnet_lite0"),
                   help="which trained pair (default: the pair the models folder's default.json names)")
    p.add_argument("--models-dir", type=Path, default=None, help="folder with the weights (default: $MOS_MODELS_DIR "
                   "or the project's models/)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--crops", "--fine-detail", dest="crops", action=argparse.BooleanOptionalAction, default=None,
                   help="fine detail: H looks again at 1:1 in 512 px tiles along the edge after its whole-photo "
                        "pass (default: as H's card says, off). Brings back whiskers and thin stems in photos over "
                        "~1000 px (the tiles change only thin patches), about 6x slower on a CPU (docs/MODELS.md, "
                        "stop 55)")


def set_edge_snap(config: CascadeConfig, on: bool | None) -> None:
    """--edge-snap / --no-edge-snap: None keeps the card's choice; on without a card radius takes the default."""
    from mos_studio.core.edges import DEFAULT_RADIUS

    if on is False:
        config.edge_radius = None
    elif on and not config.edge_radius:
        config.edge_radius = DEFAULT_RADIUS


COLOUR_HELP = ("colour assist: re-decide the band where L is unsure with a colour model of what it is sure of "
               "(GrabCut); helps where the object's colours plainly differ from the background's (make run's "
               "cup), hurts where they are shared (default: as L's card says, off for the shipped model; "
               "docs/MODELS.md stop 54)")


def set_colour_assist(config: CascadeConfig, on: bool | None) -> None:
    """--colour-assist / --no-colour-assist: None keeps L's card; on takes the card's amount or the default one."""
    from mos_studio.core.colour import assist_mix

    config.l_colour_mix = assist_mix(config.l_colour_mix, on)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cut", help="cut objects out of images (L + H cascade)")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--export", action="append", choices=EXPORTS,
                   help="what to write (repeatable; default cutout). stages: the 7 HierPR blocks' uncertainty and "
                        "prediction maps of L and H as a sheet (NAME_stages.png, as the paper's Figure 6) and as "
                        "float arrays at each block's resolution (NAME_stages.npz, keys NET/BLOCK/KIND)")
    p.add_argument("--color", default="0,255,0", help="composite background as R,G,B (default green)")
    p.add_argument("--alpha", choices=("soft", "hard"), default="soft", help=ALPHA_HELP)
    _add_model_options(p)
    p.add_argument("--edge-snap", action=argparse.BooleanOptionalAction, default=None,
                   help="snap the cut's edge onto the photo's own edges with a guided filter (default: as H's card "
                        "says; the shipped card turns it on, docs/MODELS.md)")
    p.add_argument("--colour-assist", "--color-assist", action=argparse.BooleanOptionalAction, default=None,
                   help=COLOUR_HELP)
    p.add_argument("--box", default=None, metavar="X0,Y0,X1,Y1",
                   help="cut out only the object inside this box (the app's box prompt): corners in pixels of the "
                        "photo as shown (EXIF orientation applied), or as shares of its width and height when "
                        "written with a decimal point (0.1,0.2,0.9,1.0, the same box on photos of any size); "
                        "clipped to the photo, everything outside it is background. For a photo where the cut "
                        "takes another subject than the one you want")
    p.set_defaults(func=run_cut)

    r = sub.add_parser("refine", help="refine an existing mask (H; with --rough, L and H cut it out again)")
    r.add_argument("image", type=Path)
    r.add_argument("mask", type=Path)
    r.add_argument("-o", "--out", type=Path, required=True, help="output mask PNG")
    r.add_argument("--alpha", choices=("soft", "hard"), default="hard",
                   help="hard (default): a 0/255 mask; soft: an 8-bit matte solved where H is unsure")
    r.add_argument("--rough", action="store_true",
                   help="the mask is a quick lasso or rectangle: cut the object out again inside its box (L and H) "
                        "and take the cut within 2 %% of the long side of the mask's edge and, inside the mask, "
                        "where it is sure of background (by default H keeps a mask unless it is sure it is wrong, "
                        "which leaves a right mask right; docs/MODELS.md)")
    _add_model_options(r)
    r.add_argument("--colour-assist", "--color-assist", action=argparse.BooleanOptionalAction, default=None,
                   help=COLOUR_HELP + "; with --rough only (a plain refine never runs L)")
    r.set_defaults(func=run_refine)


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        else:
            files.append(p)  # missing or odd files are reported per image by load_image
    return files


def _parse_color(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
        raise MosError(f"--color {text!r}: expected R,G,B with values 0-255, e.g. 0,255,0")
    return parts  # type: ignore[return-value]


Box = tuple[float, float, float, float]


def parse_box(text: str) -> tuple[Box, bool]:
    """--box X0,Y0,X1,Y1: the four numbers and whether they are shares of the photo (written with a decimal point)
    rather than pixels, so one box can serve a folder of photos of different sizes."""
    parts = [v.strip() for v in text.split(",")]
    try:
        values = tuple(float(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(map(math.isfinite, values)):
        raise MosError(f"--box {text!r}: expected four numbers X0,Y0,X1,Y1, e.g. 120,80,900,700 (pixels) or "
                       f"0.1,0.1,0.9,0.9 (shares of the width and height)")
    shares = any("." in v or "e" in v.lower() for v in parts)
    x0, y0, x1, y1 = values
    if shares and not all(0.0 <= v <= 1.0 for v in values):
        raise MosError(f"--box {text!r}: numbers with a decimal point are shares of the photo's width and height "
                       f"and must lie between 0 and 1; write pixels without one")
    if x1 <= x0 or y1 <= y0:
        raise MosError(f"--box {text!r}: X1 must be greater than X0 and Y1 greater than Y0 (left, top, right, "
                       f"bottom)")
    return (x0, y0, x1, y1), shares


def box_in_photo(box: Box, shares: bool, width: int, height: int) -> tuple[int, int, int, int]:
    """The box in this photo's pixels, clipped to it."""
    x0, y0, x1, y1 = box
    if shares:
        x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
    return (max(0, min(width, round(x0))), max(0, min(height, round(y0))),
            max(0, min(width, round(x1))), max(0, min(height, round(y1))))


def output_paths(image: Path, out_dir: Path, exports: list[str]) -> dict[str, Path]:
    names = {"cutout": f"{image.stem}_cutout.png", "mask": f"{image.stem}_mask.png",
             "composite": f"{image.stem}_composite.png", "alpha": f"{image.stem}_alpha.png",
             "stages": f"{image.stem}_stages.png", "stages_arrays": f"{image.stem}_stages.npz"}
    if "stages" in exports:
        exports = [*exports, "stages_arrays"]
    return {e: out_dir / names[e] for e in exports}


def run_cut(args: argparse.Namespace) -> int:
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.io import load_colours16, load_image, save_composite, save_cutout, save_mask
    from mos_studio.core.matting import matte_result
    from mos_studio.core.stages import save_stages

    exports = args.export or ["cutout"]
    color = _parse_color(args.color)
    box = parse_box(args.box) if args.box is not None else None
    files = _collect(args.images)
    if not files:
        raise MosError(f"{', '.join(map(str, args.images))}: no images found (looked for {sorted(IMAGE_SUFFIXES)})")
    args.out.mkdir(parents=True, exist_ok=True)
    cascade = Cascade.from_pretrained(args.models_dir, encoder=args.encoder, device=args.device)
    if args.crops is not None:
        cascade.config.local_passes = args.crops
    set_edge_snap(cascade.config, args.edge_snap)
    set_colour_assist(cascade.config, args.colour_assist)
    print(f"device: {cascade.device_name}", file=sys.stderr)
    failures = 0
    bar = ProgressBar(len(files), "cut", enabled=None if len(files) > 1 else False)
    for i, path in enumerate(files):
        try:
            img = load_image(path)
            targets = output_paths(path, args.out, exports)
            if not args.overwrite:
                existing = [str(t) for t in targets.values() if t.exists()]
                if existing:
                    raise MosError(f"{existing[0]}: exists; pass --overwrite to replace it")
            soft = args.alpha == "soft" and any(k in ("cutout", "composite", "alpha") for k in targets)
            rect = None
            if box is not None:
                rect = box_in_photo(*box, img.width, img.height)
                if rect[2] - rect[0] < 8 or rect[3] - rect[1] < 8:
                    raise MosError(f"{path}: --box {args.box} covers {rect[2] - rect[0]}×{rect[3] - rect[1]} pixels "
                                   f"of this {img.width}×{img.height} photo; it needs at least 8×8 inside it")
            res = cascade(img, box=rect, progress=lambda stage, f, i=i, n=path.name, s=soft: bar.update(
                i + f * (0.8 if s else 0.99), f"{n}: {stage}"))
            colours, alpha, note = img.rgb, res.mask, ""
            if rect is not None:
                note = f", box {','.join(map(str, rect))}"
            if soft:
                matte = matte_result(img.rgb, res, progress=lambda stage, f, i=i, n=path.name: bar.update(
                    i + 0.8 + f * 0.19, f"{n}: {stage}"))
                colours, alpha = matte.foreground, matte.alpha
                note += (f", soft edges {matte.timings['total']:.1f} s" if matte.soft
                         else ", soft edges: H was sure everywhere, hard mask kept")
            protect = (path,)
            for kind, target in targets.items():
                if kind == "cutout":
                    # a 16-bit photo's cut-out keeps its depth (a PNG; other formats are written at 8 bits)
                    deep = (load_colours16(path, (img.width, img.height))
                            if img.depth == 16 and target.suffix.lower() == ".png" else None)
                    if deep is not None:
                        note += ", 16-bit cut-out"
                    save_cutout(colours, alpha, target, icc_profile=img.icc_profile,
                                overwrite=args.overwrite, protect=protect, colours16=deep)
                elif kind == "mask":
                    save_mask(res.mask, target, overwrite=args.overwrite, protect=protect)
                elif kind == "alpha":
                    save_mask(alpha, target, overwrite=args.overwrite, protect=protect)
                elif kind == "stages":
                    save_stages(res.stages, target, targets["stages_arrays"], regions={"H": res.region},
                                overwrite=args.overwrite, protect=protect)
                elif kind == "stages_arrays":
                    pass  # written with the sheet
                else:
                    save_composite(colours, alpha, target, color, icc_profile=img.icc_profile,
                                   overwrite=args.overwrite, protect=protect)
            bar.update(i + 1)
            if not bar.enabled:
                print(f"{path} -> {', '.join(str(t) for t in targets.values())} ({res.timings['total']:.1f} s{note})")
        except MosError as err:
            failures += 1
            bar.update(i + 1)
            print(f"\nmos: error: {err}" if bar.enabled else f"mos: error: {err}", file=sys.stderr)
    bar.close()
    if failures:
        print(f"mos: {failures} of {len(files)} image(s) failed", file=sys.stderr)
        return 1
    return 0


def run_refine(args: argparse.Namespace) -> int:
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.io import load_image, load_mask, save_mask

    if args.colour_assist is not None and not args.rough:
        raise MosError(f"--{'' if args.colour_assist else 'no-'}colour-assist goes with --rough: a plain refine "
                       f"keeps the mask where H is unsure and never runs L")
    img = load_image(args.image)
    mask = load_mask(args.mask, size=(img.width, img.height))
    if args.out.exists() and not args.overwrite:
        raise MosError(f"{args.out}: exists; pass --overwrite to replace it")
    # A rough mask is cut out again inside its box, which needs L too (CascadeConfig.refine_rough_cut).
    cascade = Cascade.from_pretrained(args.models_dir, encoder=args.encoder, device=args.device,
                                      stages="LH" if args.rough else "H")
    if args.crops is not None:  # refining a whole mask leaves crops off unless asked (CascadeConfig)
        cascade.config.local_passes = cascade.config.refine_local_passes = args.crops
    cascade.config.refine_rough = args.rough
    set_colour_assist(cascade.config, args.colour_assist)
    res = cascade(img, mask=mask)
    out = res.mask
    if args.alpha == "soft":
        from mos_studio.core.matting import matte_result

        out = matte_result(img.rgb, res).alpha
    save_mask(out, args.out, overwrite=args.overwrite, protect=(args.image, args.mask))
    moved = int((res.mask != (mask > 0.5)).sum())  # load_mask gives floats in [0, 1]
    note = "" if moved else "; no pixel crossed the mask's edge" + ("" if args.rough else ": H was sure of no change "
                                                                   "(for a quick lasso, try --rough)")
    print(f"{args.image} + {args.mask} -> {args.out} ({res.timings['total']:.1f} s on {res.device}; "
          f"{moved} pixels changed{note})")
    return 0
