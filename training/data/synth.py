"""Procedural high-resolution training pairs with meticulous boundaries (seeded, reproducible).

Each pair is a random object made of a smooth body plus thin structures (branching twigs, hair-like strands, lattices,
holes), textured with a crop of a real photo from scikit-image's bundled `skimage/data/` and composited over a
defocused crop of another photo, then noised. The mask is anti-aliased (rendered at 2× and downsampled), so 1-px
strands are soft in the truth just as they are in the image.

What it can teach: following a colour/texture edge down to one pixel, keeping thin strands and holes the coarse mask
lost, and ignoring defocused background texture — the H network's local boundary job. What it cannot teach: what an
*object* is (shapes are random, not salient things), real hair/fur statistics, shadows, motion blur, transparent or
reflective matter, or semantic context. L trained only on it learns "the sharp textured blob in front", nothing more.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np

# Colour photographs shipped with scikit-image (licences in that folder's README.txt). `coffee` and `chelsea` are
# left out since stop 25: they are the app's samples (resources/samples), judged by eye, so no crop of them may be
# a training texture (earlier runs used both, as object and as background texture).
PHOTO_NAMES = (
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "grass.png",
    "gravel.png",
    "brick.png",
    "hubble_deep_field.jpg",
    "color.png",
    "retina.jpg",
    "camera.png",
    "moon.png",
    "page.png",
)


def photo_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    """The texture library (≈15 small photos, a few MB) — loaded once per worker process."""
    from PIL import Image

    out = []
    for name in PHOTO_NAMES:
        try:
            with Image.open(photo_dir() / name) as im:
                out.append(np.asarray(im.convert("RGB")).copy())
        except OSError:
            continue
    if len(out) < 2:
        raise RuntimeError(f"{photo_dir()}: fewer than 2 photos readable; install scikit-image")
    return tuple(out)


def _photo_crop(rng: np.random.Generator, size: int) -> np.ndarray:
    lib = photos()
    img = lib[int(rng.integers(len(lib)))]
    h, w = img.shape[:2]
    scale = rng.uniform(0.4, 1.0) * min(h, w)
    side = max(16, int(scale))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = img[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_LINEAR)
    # random colour cast so the same photo yields many textures
    gain = rng.uniform(0.6, 1.4, size=3)
    return np.clip(crop.astype(np.float32) * gain, 0, 255)


def _blob(canvas: np.ndarray, rng: np.random.Generator, s: int) -> None:
    """A smooth star-shaped body: radius = sum of a few random harmonics."""
    cx, cy = rng.uniform(0.3, 0.7, size=2) * s
    r0 = rng.uniform(0.15, 0.3) * s
    t = np.linspace(0, 2 * math.pi, 360, endpoint=False)
    r = np.full_like(t, r0)
    for k in range(2, 7):
        r += r0 * rng.uniform(0, 0.25 / k * 2) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 255)


def _branch(canvas: np.ndarray, rng: np.random.Generator, x: float, y: float, angle: float, length: float,
            width: float, depth: int) -> None:
    """A twig: a wandering polyline that tapers and forks recursively."""
    steps = max(3, int(length / 6))
    pts = [(x, y)]
    for _ in range(steps):
        angle += rng.normal(0, 0.25)
        x += math.cos(angle) * length / steps
        y += math.sin(angle) * length / steps
        pts.append((x, y))
    cv2.polylines(canvas, [np.round(np.array(pts)).astype(np.int32)], False, 255, max(1, int(round(width))),
                  cv2.LINE_AA)
    if depth > 0:
        for _ in range(int(rng.integers(1, 3))):
            i = int(rng.integers(1, len(pts)))
            _branch(canvas, rng, *pts[i], angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1), length * 0.6,
                    width * 0.6, depth - 1)


def _strands(canvas: np.ndarray, rng: np.random.Generator, s: int) -> None:
    """Hair-like strands: thin quadratic Béziers fanning out from a common root region."""
    cx, cy = rng.uniform(0.3, 0.7, size=2) * s
    base = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(15, 60))):
        a = base + rng.normal(0, 0.6)
        length = rng.uniform(0.15, 0.45) * s
        p0 = np.array([cx, cy]) + rng.normal(0, 0.03 * s, 2)
        p2 = p0 + length * np.array([math.cos(a), math.sin(a)])
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.08 * s, 2)
        t = np.linspace(0, 1, 40)[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        cv2.polylines(canvas, [np.round(curve).astype(np.int32)], False, 255, int(rng.integers(1, 3)), cv2.LINE_AA)


def _lattice(canvas: np.ndarray, rng: np.random.Generator, s: int) -> None:
    """A fence / mesh: a rotated grid of thin bars inside a rectangle."""
    cx, cy = rng.uniform(0.3, 0.7, size=2) * s
    half = rng.uniform(0.15, 0.3) * s
    step = rng.uniform(0.04, 0.1) * s
    width = int(rng.integers(1, 5))
    ang = rng.uniform(0, math.pi)
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    lines = []
    for v in np.arange(-half, half + 1e-6, step):
        lines.append([[v, -half], [v, half]])
        lines.append([[-half, v], [half, v]])
    for seg in lines:
        p = np.array(seg) @ rot.T + [cx, cy]
        cv2.line(canvas, tuple(np.round(p[0]).astype(int)), tuple(np.round(p[1]).astype(int)), 255, width,
                 cv2.LINE_AA)


def _holes(canvas: np.ndarray, rng: np.random.Generator, s: int) -> None:
    for _ in range(int(rng.integers(1, 6))):
        c = tuple(int(v) for v in rng.uniform(0.2, 0.8, size=2) * s)
        axes = tuple(int(v) for v in rng.uniform(0.01, 0.05, size=2) * s)
        cv2.ellipse(canvas, c, axes, float(rng.uniform(0, 180)), 0, 360, 0, -1, cv2.LINE_AA)


def render_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float32 soft mask in [0, 1] at `size`² (drawn at 2× and area-downsampled)."""
    s = 2 * size
    canvas = np.zeros((s, s), np.uint8)
    _blob(canvas, rng, s)
    kinds = rng.permutation(["branch", "strands", "lattice"])[: int(rng.integers(1, 4))]
    for kind in kinds:
        if kind == "branch":
            for _ in range(int(rng.integers(1, 4))):
                x, y = rng.uniform(0.35, 0.65, size=2) * s
                _branch(canvas, rng, x, y, rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.45) * s,
                        rng.uniform(2, 8), int(rng.integers(2, 4)))
        elif kind == "strands":
            _strands(canvas, rng, s)
        else:
            _lattice(canvas, rng, s)
    if rng.random() < 0.7:
        _holes(canvas, rng, s)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def generate_pair(seed: int, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 size×size×3, float32 mask size×size in [0, 1]) — the same for the same (seed, size)."""
    rng = np.random.default_rng([0x5EED, int(seed)])
    alpha = render_mask(rng, size)
    fg = _photo_crop(rng, size)
    bg = _photo_crop(rng, size)
    sigma = rng.uniform(0.0, 6.0)  # defocus of the background
    if sigma > 0.3:
        bg = cv2.GaussianBlur(bg, (0, 0), sigma)
    a = alpha[..., None]
    img = fg * a + bg * (1 - a)
    if rng.random() < 0.3:  # slight whole-image softness, like a lens
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8))
    img = img + rng.normal(0, rng.uniform(0, 6), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), alpha
