"""Write L's own answers for a folder of training photos, for H to train on (`coarse_dir` of a folder source).

H meets L's upsampled probability in every cut: blobs that swallow dark background between leaves, half-sure
ghosts, parts of the object L missed. The mask perturbations of `h_sample` only imitate those; with these files and
`data.given_p` H also learns from the real thing. Each answer is L as the cascade runs it (the card's input size,
mirror averaging and so on), at the photo's own size, as an 8-bit PNG named after the photo. Files already written
are kept, so an interrupted run resumes.

    python -m training.lpred data/small3/train/bsds500 --out data/lpred/bsds500 [--models-dir models]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mos_studio.cli.progress import ProgressBar
from mos_studio.core import Cascade
from mos_studio.core.errors import MosError

from .data.sources import _files, read_rgb


def write_answers(root: Path, out: Path, cascade: Cascade, image_dir: str = "images") -> tuple[int, int]:
    """L's answer for every photo under root/image_dir into out/<stem>.png; (written, kept) counts."""
    images = root / image_dir
    if not images.is_dir():
        raise MosError(f"{images}: folder of training photos not found")
    photos = list(_files(images).values())  # the photos a folder source reads, by the same rule
    if not photos:
        raise MosError(f"{images}: no photos in it")
    out.mkdir(parents=True, exist_ok=True)
    written = kept = 0
    bar = ProgressBar(len(photos), root.name)  # a large folder takes minutes
    for i, p in enumerate(photos):
        dest = out / f"{p.stem}.png"
        bar.update(i, p.name)
        if dest.is_file():
            kept += 1
            continue
        prob = cascade.run_low(read_rgb(p))[0]
        tmp = dest.with_suffix(".tmp.png")
        if not cv2.imwrite(str(tmp), np.clip(np.rint(prob * 255), 0, 255).astype(np.uint8)):
            raise MosError(f"{dest}: could not be written")
        tmp.replace(dest)  # whole files only, so a resumed run never reads half of one
        written += 1
    bar.update(len(photos))
    bar.close()
    return written, kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", type=Path, nargs="+", help="folder sources (each with images/)")
    ap.add_argument("--out", type=Path, required=True,
                    help="output folder; with several roots, one sub-folder per root's name")
    ap.add_argument("--models-dir", type=Path, default=None, help="weights folder (default: the shipped models/)")
    ap.add_argument("--encoder", default="default")
    ap.add_argument("--image-dir", default="images")
    args = ap.parse_args(argv)
    try:
        cascade = Cascade.from_pretrained(args.models_dir, encoder=args.encoder, stages="L")
        cascade.config.stage_maps = False
        for root in args.roots:
            out = args.out / root.name if len(args.roots) > 1 else args.out
            t0 = time.perf_counter()
            written, kept = write_answers(root, out, cascade, args.image_dir)
            print(f"{root}: {written} written, {kept} kept, {time.perf_counter() - t0:.0f} s -> {out}")
    except MosError as err:
        print(f"lpred: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
