"""L and H training samples, keyed only by (seed, global sample index) so any resume replays the same batches.

Sample i of a run is drawn with `np.random.default_rng([seed, i])`: which source (by weight), which item, and every
augmentation. Batch b of the run holds samples b·B … b·B+B−1 (split across DDP ranks), so the data a step sees
depends on (seed, step) alone — not on worker count, worker scheduling, or where the run was resumed.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mos_studio.core.cascade import object_bounds, worth_a_closer_look

from .perturb import perturb_mask
from .sources import Source


# ------------------------------------------------------------------------------------------------- augmentation
def colour_jitter(img: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float, saturation: float,
                  hue: float = 0.0, grayscale_p: float = 0.0) -> np.ndarray:
    """torchvision-like ColorJitter on float RGB in [0, 1]."""
    x = img
    x = x * rng.uniform(1 - brightness, 1 + brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = (x - grey) * rng.uniform(1 - saturation, 1 + saturation) + grey
    if hue > 0:
        hsv = cv2.cvtColor(np.clip(x, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue) * 360.0) % 360.0
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if grayscale_p > 0 and rng.random() < grayscale_p:
        x = np.repeat((x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=2)
    return np.clip(x, 0, 1).astype(np.float32)


def l_sample(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: int = 336,
             max_rotation: float = 15.0, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Flip, rotate (same warp for both), colour-jitter, resize to size² (paper §4.3: 'resized to 336').

    Rotation angles and jitter strengths are ours (MINet's are not given in the paper): ±15°, 0.2/0.2/0.2/0.02.
    """
    if not augment:
        img = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=cv2.INTER_LINEAR)
        return img.astype(np.float32) / 255.0, np.clip(mask, 0, 1).astype(np.float32)
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    img = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=cv2.INTER_LINEAR)
    angle = rng.uniform(-max_rotation, max_rotation)
    if abs(angle) > 0.5:
        m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x = colour_jitter(img.astype(np.float32) / 255.0, rng, 0.2, 0.2, 0.2, 0.02)
    return x, np.clip(mask, 0, 1).astype(np.float32)


def zoom_crop(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, margin: tuple[float, float] = (0.05, 0.3),
              jitter: float = 0.05, max_area: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The crop L's second look (the cascade's l_zoom) sees: the box round the object widened by a margin of its long
    side, each side moved by up to `jitter` of the box (L's own box is not the teacher's). Photo and mask unchanged
    when there is no object or the box would cover more than `max_area` of the photo, as at inference."""
    h, w = mask.shape[:2]
    tight = object_bounds(mask > 0.5)
    if tight is None:
        return img, mask
    x0, y0, x1, y1 = tight
    long = max(y1 - y0, x1 - x0)
    pad = rng.uniform(*margin) * long
    moves = rng.uniform(-jitter, jitter, 4) * long
    x0 = int(round(max(0.0, x0 - pad + moves[0])))
    y0 = int(round(max(0.0, y0 - pad + moves[1])))
    x1 = int(round(min(float(w), x1 + pad + moves[2])))
    y1 = int(round(min(float(h), y1 + pad + moves[3])))
    if not worth_a_closer_look((x0, y0, x1, y1), h, w, max_area):
        return img, mask
    return img[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def boundary_crop(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, patch: int,
                  anywhere: bool = False) -> tuple:
    """A patch² crop centred near a random boundary pixel (reflect-padded when the image is smaller).

    `anywhere`: a crop at a uniformly random place instead, often all background or all object (a hard negative).
    """
    h, w = mask.shape
    if h < patch or w < patch:
        ph, pw = max(0, patch - h), max(0, patch - w)
        img = cv2.copyMakeBorder(np.ascontiguousarray(img), 0, ph, 0, pw, cv2.BORDER_REFLECT)
        mask = cv2.copyMakeBorder(np.ascontiguousarray(mask), 0, ph, 0, pw, cv2.BORDER_REFLECT)
        h, w = mask.shape
    ys: np.ndarray | tuple = ()
    if not anywhere:
        edge = cv2.morphologyEx((mask > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(edge)
    if len(ys):
        j = int(rng.integers(len(ys)))
        cy = ys[j] + int(rng.integers(-patch // 4, patch // 4 + 1))
        cx = xs[j] + int(rng.integers(-patch // 4, patch // 4 + 1))
        y0 = int(np.clip(cy - patch // 2, 0, h - patch))
        x0 = int(np.clip(cx - patch // 2, 0, w - patch))
    else:
        y0, x0 = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    return img[y0 : y0 + patch, x0 : x0 + patch], mask[y0 : y0 + patch, x0 : x0 + patch]


def h_sample(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, patch: int = 224,
             iou_range: tuple[float, float] = (0.8, 1.0), augment: bool = True,
             scales: tuple[float, ...] = (1.0,), keep_p: float = 0.0, soft_p: float = 0.0,
             faint_p: float = 0.0, anywhere_p: float = 0.0, given: np.ndarray | None = None,
             given_p: float = 0.0) -> tuple[np.ndarray, ...]:
    """Boundary patch + flip + CascadePSP colour jitter; the input mask is the truth perturbed to IoU in range.

    H meets three kinds of input in use, so a sample can be drawn like each of them:
    - `scales`: the photo is first resized by a factor drawn from this list, so a patch at 0.25 looks like a piece
      of the 1024 px global pass over a 4K photo, a patch at 1.0 like a full-resolution crop, and one above 1 like
      the enlarged pass over a small photo (never enlarged past 1024 px, where a cut does not enlarge);
    - `keep_p`: the input is the truth itself (a user's right selection, the teacher's mask), and the target is the
      same mask, so H learns to leave a right edge where it is;
    - `soft_p`: the perturbed mask is shrunk 8× and blown back up, like L's upsampled probability map.
    - `faint_p`: smooth blobs of the input are pulled towards a faint level (0.1-0.6), like L's half-sure mistakes:
      a ghost over background that H must drop, or a hesitant part of the object that H must fill from the photo.
      Without it H learnt to make every faint mark solid (a sneaker, a chair's fabric; docs/MODELS.md).
    - `anywhere_p`: the patch is taken anywhere, not at the edge, so H also sees background and inside patches.
    - `given_p`: the input is `given`, L's own answer on this photo (same size as `mask`), warped with the photo:
      the blobs, ghosts and missed parts H meets in a real cut, which the perturbations above only imitate.
    """
    use_given = False
    if given_p > 0:  # drawn whether or not this photo has L's answer, so other samples' draws never shift
        use_given = rng.random() < given_p and given is not None
    if use_given:
        if given.shape != mask.shape:
            given = cv2.resize(np.ascontiguousarray(given, dtype=np.float32), (mask.shape[1], mask.shape[0]),
                               interpolation=cv2.INTER_LINEAR)
        # One array, so every resize, crop and flip below moves L's answer exactly as it moves the photo.
        img = np.dstack([img, np.clip(np.rint(given * 255), 0, 255).astype(np.uint8)])
    s = float(scales[int(rng.integers(len(scales)))]) if len(scales) > 1 else float(scales[0])
    if s < 1.0 and min(mask.shape) * s >= patch // 2:
        size = (max(1, round(mask.shape[1] * s)), max(1, round(mask.shape[0] * s)))
        img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(np.ascontiguousarray(mask), size, interpolation=cv2.INTER_AREA)
    elif s > 1.0 and max(mask.shape) * s <= 1024:
        # A cut of a small photo also runs H on it enlarged (bicubic photo, linear mask): learn that view too.
        size = (max(1, round(mask.shape[1] * s)), max(1, round(mask.shape[0] * s)))
        big = cv2.resize(np.ascontiguousarray(img[..., :3]), size, interpolation=cv2.INTER_CUBIC)
        if use_given:  # L's answer is a mask: enlarged like one
            big = np.dstack([big, cv2.resize(np.ascontiguousarray(img[..., 3]), size, interpolation=cv2.INTER_LINEAR)])
        img = big
        mask = np.clip(cv2.resize(np.ascontiguousarray(mask), size, interpolation=cv2.INTER_LINEAR), 0, 1)
    img, mask = boundary_crop(img, mask, rng, patch, anywhere=anywhere_p > 0 and rng.random() < anywhere_p)
    if augment and rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    img, mask = np.ascontiguousarray(img), np.ascontiguousarray(mask, dtype=np.float32)
    x = img[..., :3].astype(np.float32) / 255.0
    if augment:
        x = colour_jitter(x, rng, 0.2, 0.05, 0.05, 0.0, grayscale_p=0.1)
    if use_given:
        coarse = img[..., 3].astype(np.float32) / 255.0
    elif keep_p > 0 and rng.random() < keep_p:
        coarse = mask.copy() if rng.random() < 0.5 else (mask > 0.5).astype(np.float32)
    else:
        coarse = perturb_mask(mask, rng, iou_range)
        if soft_p > 0 and rng.random() < soft_p:
            small = cv2.resize(coarse, (max(1, patch // 8), max(1, patch // 8)), interpolation=cv2.INTER_AREA)
            coarse = np.clip(cv2.resize(small, (patch, patch), interpolation=cv2.INTER_LINEAR), 0, 1)
        if faint_p > 0 and rng.random() < faint_p:
            coarse = faint_blobs(coarse, rng)
    return x, mask, coarse.astype(np.float32)


def faint_blobs(coarse: np.ndarray, rng: np.random.Generator, count: tuple[int, int] = (1, 3)) -> np.ndarray:
    """`coarse` with 1-3 soft elliptic blobs pulled towards a faint level, as L's half-sure answers look."""
    h, w = coarse.shape
    out = coarse.astype(np.float32, copy=True)
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        blob = np.zeros((h, w), np.float32)
        axes = (int(rng.integers(max(2, w // 10), max(3, w // 2))), int(rng.integers(max(2, h // 10), max(3, h // 2))))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        sigma = 0.25 * min(axes)
        blob = cv2.GaussianBlur(blob, (0, 0), sigma) * float(rng.uniform(0.5, 1.0))
        out += blob * (float(rng.uniform(0.1, 0.6)) - out)
    return np.clip(out, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------------ datasets
class SampleDataset(Dataset):
    """Map-style dataset over global sample indices. L items: {image, gt}; H items: {image, gt, coarse}."""

    def __init__(self, sources: list[Source], weights: list[float] | None, stage: str, seed: int = 0,
                 size: int = 336, patch: int = 224, iou_range: tuple[float, float] = (0.8, 1.0),
                 fixed_samples: int = 0, length: int = 2**62, augment: bool = True,
                 scales: tuple[float, ...] = (1.0,), keep_p: float = 0.0, soft_p: float = 0.0,
                 faint_p: float = 0.0, anywhere_p: float = 0.0, given_p: float = 0.0, zoom_p: float = 0.0) -> None:
        if stage not in ("L", "H"):
            raise ValueError("stage must be L or H")
        if not sources:
            raise ValueError("no data sources configured")
        w = np.asarray(weights if weights is not None else [1.0] * len(sources), np.float64)
        self.sources, self.p = sources, w / w.sum()
        self.stage, self.seed, self.size, self.patch = stage, int(seed), int(size), int(patch)
        self.iou_range = tuple(iou_range)
        self.fixed_samples, self.length, self.augment = int(fixed_samples), int(length), augment
        self.scales, self.keep_p, self.soft_p = tuple(float(v) for v in scales), float(keep_p), float(soft_p)
        self.faint_p, self.anywhere_p, self.given_p = float(faint_p), float(anywhere_p), float(given_p)
        self.zoom_p = float(zoom_p)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        key = i % self.fixed_samples if self.fixed_samples else i
        rng = np.random.default_rng([self.seed, int(key)])
        src = self.sources[int(rng.choice(len(self.sources), p=self.p))]
        return self._item(src, int(rng.integers(len(src))), rng)

    def each_photo(self, limit: int = 0) -> list[dict[str, torch.Tensor]]:
        """Every photo of every source once, in order (at most `limit`, 0 = all): drawn samples repeat the photos of
        small sources (stop 42: 48 draws held 36 photos), and a best point chosen on repeats does not carry over."""
        items: list[dict[str, torch.Tensor]] = []
        for si, src in enumerate(self.sources):
            for k in range(len(src)):
                if limit and len(items) >= limit:
                    return items
                items.append(self._item(src, k, np.random.default_rng([self.seed, si, k])))
        return items

    def _item(self, src: Source, key_item: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        img, mask = src.load(key_item, rng)
        if self.stage == "L":
            # no draw at all when zoom_p is 0, so runs from before it replay the same samples
            if self.zoom_p > 0 and rng.random() < self.zoom_p:
                img, mask = zoom_crop(img, mask, rng)
            x, gt = l_sample(img, mask, rng, self.size, augment=self.augment)
            return {"image": _chw(x), "gt": torch.from_numpy(gt)[None]}
        given = src.load_coarse(key_item) if self.given_p > 0 else None
        x, gt, coarse = h_sample(img, mask, rng, self.patch, self.iou_range, self.augment, self.scales,
                                 self.keep_p, self.soft_p, self.faint_p, self.anywhere_p, given, self.given_p)
        return {"image": _chw(x), "gt": torch.from_numpy(gt)[None], "coarse": torch.from_numpy(coarse)[None]}


def _chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class StepSampler(Sampler[int]):
    """Yields this rank's sample indices for steps start_step … total_steps−1 (global batch split across ranks)."""

    def __init__(self, start_step: int, total_steps: int, batch: int, rank: int = 0, world: int = 1) -> None:
        if batch % world:
            raise ValueError(f"batch {batch} is not divisible by the {world} processes")
        self.start, self.total, self.batch, self.rank, self.world = start_step, total_steps, batch, rank, world

    def __iter__(self):
        local = self.batch // self.world
        for step in range(self.start, self.total):
            base = step * self.batch + self.rank * local
            yield from range(base, base + local)

    def __len__(self) -> int:
        return max(0, self.total - self.start) * (self.batch // self.world)
