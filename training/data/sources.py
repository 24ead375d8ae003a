"""Where (image, mask) pairs come from. A source lists file paths only; pixels are decoded on demand.

* `FolderSource`: `root/images/<stem>.*` + `root/masks/<stem>.*` (folder names configurable, e.g. DUTS's
  `DUTS-TR-Image` / `DUTS-TR-Mask`), or `layout = "pairs"`: `x.jpg` beside `x.png` anywhere under root (FSS-1000).
* `MatteSource`: `root/fg/` + `root/alpha/` foregrounds composited on random backgrounds (a folder of photos, or
  scikit-image's photos), the alpha binarised at a threshold drawn from [0.1, 0.5] (paper §4.3, DIM). With
  `colour_match = p`, a share p of the backgrounds is first shifted to the object's own mean colour: an object on a
  surface of its own colour (a brown saucer on a brown table) is where L learnt to cut by colour and fails.
* `SynthSource`: the procedural generator (`synth.py`), item k = seed offset + k.

Folder and matte sources take a folder or a list of them (`root`, `backgrounds`); with `missing_ok = true` a missing
one is skipped and named in the run's description, as long as one is there (the parts of a training pack, some of
which may not have reached a device machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mos_studio.core.errors import ImageError, MaskError

from . import synth

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ImageError(folder, "training data folder not found")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS}


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(path, "not a readable image")
    return np.ascontiguousarray(img[..., ::-1])


def read_gray(path: Path) -> np.ndarray:
    """Float32 [0, 1]; 16-bit and 8-bit masks alike."""
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise MaskError(path, "not a readable mask")
    if m.ndim == 3:
        m = m[..., -1] if m.shape[2] == 4 else m[..., 0]
    scale = 65535.0 if m.dtype == np.uint16 else 255.0 if m.dtype == np.uint8 else 1.0
    return np.clip(m.astype(np.float32) / scale, 0, 1)


def _roots(root: str | Path | list, missing_ok: bool) -> tuple[list[Path], list[Path]]:
    """The folders a source reads and those it skipped. `missing_ok`: a pack's part that did not reach the machine
    (a device call's staging went cold) is skipped rather than fatal, as long as some folder is there."""
    roots = [Path(r) for r in (root if isinstance(root, list) else [root])]
    if not roots:
        raise ValueError("root names no folder")
    missing = [r for r in roots if not r.is_dir()]
    if missing and (not missing_ok or len(missing) == len(roots)):
        raise ImageError(missing[0], "training data folder not found")
    return [r for r in roots if r.is_dir()], missing


def _pairs_in(roots: list[Path], layout: str, first: str, second: str) -> list[tuple[Path, Path]]:
    """`x.jpg` beside `x.png` anywhere under each root ("pairs"), or same-stem files in root/first and root/second."""
    pairs: list[tuple[Path, Path]] = []
    for r in roots:
        if layout == "pairs":
            pairs += [(p, p.with_suffix(".png")) for p in sorted(r.rglob("*.jpg")) if p.with_suffix(".png").is_file()]
        else:
            a, b = _files(r / first), _files(r / second)
            pairs += [(a[stem], b[stem]) for stem in sorted(a) if stem in b]
    return pairs


def _name(roots: list[Path]) -> Path:
    return roots[0] if len(roots) == 1 else Path(os.path.commonpath([str(r) for r in roots]))


class Source:
    name = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 H×W×3, float32 mask H×W in [0, 1]) of item k; `rng` for sources that randomise."""
        raise NotImplementedError

    def load_coarse(self, k: int) -> np.ndarray | None:
        """L's own answer for item k (float32 H×W in [0, 1]), where the source has one (`coarse_dir`)."""
        return None

    def describe(self) -> str:
        return self.name


class FolderSource(Source):
    def __init__(self, root: str | Path | list, image_dir: str = "images", mask_dir: str = "masks",
                 layout: str = "split", coarse_dir: str | Path | None = None, missing_ok: bool = False):
        roots, self.missing = _roots(root, missing_ok)
        self.root = _name(roots)
        # A folder of L's answers on these photos (`python -m training.lpred`), so H can learn from the masks the
        # cascade really hands it; photos without one fall back to the perturbed truth.
        self.coarse: dict[str, Path] = {}
        if coarse_dir is not None:
            cdir = Path(coarse_dir)
            if not cdir.is_dir():
                raise ImageError(cdir, "coarse_dir (L's answers) not found")
            self.coarse = _files(cdir)
        self.pairs = _pairs_in(roots, layout, image_dir, mask_dir)
        if not self.pairs:
            raise ImageError(self.root, "no image/mask pairs with matching names found")
        self.name = f"folder:{self.root}"

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        ip, mp = self.pairs[k % len(self.pairs)]
        img, mask = read_rgb(ip), read_gray(mp)
        if mask.shape != img.shape[:2]:
            raise MaskError(mp, f"mask is {mask.shape[1]}×{mask.shape[0]} but {ip.name} is "
                                f"{img.shape[1]}×{img.shape[0]}")
        return img, mask

    def load_coarse(self, k: int) -> np.ndarray | None:
        if not self.coarse:
            return None
        path = self.coarse.get(self.pairs[k % len(self.pairs)][0].stem)
        return None if path is None else read_gray(path)

    def describe(self) -> str:
        extra = f", L's answers for {len(self.coarse)}" if self.coarse else ""
        extra += f", {len(self.missing)} folder(s) missing: {', '.join(map(str, self.missing))}" if self.missing else ""
        return f"{self.root} ({len(self)} image/mask pairs{extra})"


class MatteSource(Source):
    """`layout = "pairs"` reads `x.jpg` beside `x.png` under each of `root` (a folder or a list of them) and takes
    the backgrounds from every `.jpg` under `backgrounds` (likewise): a training pack (`training.pack`) stores each
    photo once and lets the folder and matte sources share it."""

    def __init__(self, root: str | Path | list, backgrounds: str | Path | list | None = None,
                 threshold: tuple = (0.1, 0.5), colour_match: float = 0.0, layout: str = "split",
                 missing_ok: bool = False):
        if isinstance(colour_match, bool) or not isinstance(colour_match, (int, float)) \
                or not 0.0 <= colour_match <= 1.0:
            raise ValueError(f"colour_match is a probability from 0 to 1, not {colour_match!r}")
        if layout not in ("split", "pairs"):
            raise ValueError(f"layout is split or pairs, not {layout!r}")
        self.colour_match = float(colour_match)
        roots, self.missing = _roots(root, missing_ok)
        self.root = _name(roots)
        self.pairs = _pairs_in(roots, layout, "fg", "alpha")
        if not self.pairs:
            raise ImageError(self.root, "no fg/alpha pairs with matching names found")
        self.backgrounds = None
        if backgrounds:
            folders, gone = _roots(backgrounds, missing_ok)
            self.missing += gone
            if layout == "pairs":
                self.backgrounds = sorted(p for b in folders for p in b.rglob("*.jpg"))
            else:
                self.backgrounds = sorted(p for b in folders for p in _files(b).values())
        self.threshold = tuple(threshold)
        self.name = f"matte:{self.root}"

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        fp, ap = self.pairs[k % len(self.pairs)]
        fg8, alpha = read_rgb(fp), read_gray(ap)
        fg = fg8.astype(np.float32)
        if alpha.shape != fg.shape[:2]:
            raise MaskError(ap, f"alpha is {alpha.shape[1]}×{alpha.shape[0]}, foreground {fg.shape[1]}×{fg.shape[0]}")
        h, w = alpha.shape
        if self.backgrounds:
            bg = read_rgb(self.backgrounds[int(rng.integers(len(self.backgrounds)))])
        else:
            lib = synth.photos()
            bg = lib[int(rng.integers(len(lib)))]
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.colour_match and rng.random() < self.colour_match:
            bg = match_colour(bg, fg8, alpha, strength=float(rng.uniform(0.6, 1.0)))
        bg = bg.astype(np.float32)
        a = alpha[..., None]
        img = np.clip(fg * a + bg * (1 - a), 0, 255).astype(np.uint8)
        t = rng.uniform(*self.threshold)
        return img, (alpha > t).astype(np.float32)

    def describe(self) -> str:
        bg = f"backgrounds from {len(self.backgrounds)} photos" if self.backgrounds else "scikit-image backgrounds"
        if self.colour_match:
            bg += f", {self.colour_match:.0%} shifted to the object's colour"
        gone = f", {len(self.missing)} folder(s) missing" if self.missing else ""
        return f"{self.root} ({len(self)} alpha mattes, {bg}, binarised at U{list(self.threshold)}{gone})"


def match_colour(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Shift a background's mean Lab colour toward the object's (alpha > 0.5), keeping its texture and contrast.

    strength 1 gives the background exactly the object's mean colour; the background's own variation is kept, so the
    object can only be told apart by shape, texture and shading, not by colour.
    """
    obj = alpha > 0.5
    if obj.sum() < 16:
        return bg
    lab_bg = cv2.cvtColor(bg, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_fg = cv2.cvtColor(fg, cv2.COLOR_RGB2LAB).astype(np.float32)
    shift = (lab_fg[obj].mean(axis=0) - lab_bg.reshape(-1, 3).mean(axis=0)) * strength
    return cv2.cvtColor(np.clip(lab_bg + shift, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


class SynthSource(Source):
    def __init__(self, size: int = 512, seed_offset: int = 0, count: int = 1_000_000):
        self.size, self.seed_offset, self.count = int(size), int(seed_offset), int(count)
        self.name = "synth"

    def __len__(self) -> int:
        return self.count

    def load(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return synth.generate_pair(self.seed_offset + k % self.count, self.size)

    def describe(self) -> str:
        return (f"procedural pairs (training/data/synth.py) at {self.size}px, seeds {self.seed_offset}.."
                f"{self.seed_offset + self.count - 1}, textures from scikit-image's bundled photos")


def build_source(spec: dict) -> Source:
    """One `[[data.sources]]` table of a training config → a Source (paths relative to the working directory)."""
    kind = spec.get("kind", "folder")
    if kind == "folder":
        return FolderSource(spec["root"], spec.get("image_dir", "images"), spec.get("mask_dir", "masks"),
                            spec.get("layout", "split"), spec.get("coarse_dir"), bool(spec.get("missing_ok", False)))
    if kind == "matte":
        return MatteSource(spec["root"], spec.get("backgrounds"), tuple(spec.get("threshold", (0.1, 0.5))),
                           spec.get("colour_match", 0.0), spec.get("layout", "split"),
                           bool(spec.get("missing_ok", False)))
    if kind == "synth":
        return SynthSource(spec.get("size", 512), spec.get("seed_offset", 0), spec.get("count", 1_000_000))
    raise ValueError(f"unknown data source kind {kind!r} (folder, matte or synth)")
