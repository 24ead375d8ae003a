"""Images in and out. Every odd file becomes RGB uint8 or a one-line `ImageError`; every write is atomic.

Loading applies EXIF orientation and converts 16-bit, CMYK, palette, RGBA, grey and float images to RGB uint8,
keeping the file's own alpha and its ICC profile (for export). Writers never replace an existing file unless told to,
and never replace the input image at all.
"""

from __future__ import annotations

import io as _io
import os
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ExportError, ImageError, MaskError

MIN_SIDE = 8
MAX_PIXELS = 100_000_000

PathLike = str | os.PathLike


def max_pixels() -> int:
    try:
        return int(os.environ.get("MOS_MAX_PIXELS", MAX_PIXELS))
    except ValueError:
        return MAX_PIXELS


@dataclass
class LoadedImage:
    rgb: np.ndarray  # H×W×3 uint8, C-contiguous
    path: Path
    icc_profile: bytes | None = None
    mode: str = "RGB"  # the file's own PIL mode
    alpha: np.ndarray | None = None  # H×W uint8 when the file had transparency

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.rgb if dtype is None else self.rgb.astype(dtype)


def _open_checked(path: Path, kind: type[ImageError] = ImageError) -> Image.Image:
    """Open lazily and check size before decoding, so a 20000×20000 PNG is refused without being decoded."""
    if not path.exists():
        raise kind(path, "file does not exist")
    if path.is_dir():
        raise kind(path, "is a folder, not an image file")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise kind(path, f"cannot be read ({err.strerror})") from err
    if size == 0:
        raise kind(path, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own limit below names the file and the numbers
            img = Image.open(path)
    except PermissionError as err:
        raise kind(path, "cannot be read (permission denied)") from err
    except UnidentifiedImageError as err:
        raise kind(path, "not an image file (or a format MOS Studio cannot read)") from err
    except OSError as err:
        raise kind(path, f"cannot be read ({err})") from err
    w, h = img.size
    if w < MIN_SIDE or h < MIN_SIDE:
        img.close()
        raise kind(path, f"image too small ({w}×{h}); MOS needs at least {MIN_SIDE}×{MIN_SIDE}")
    limit = max_pixels()
    if w * h > limit:
        img.close()
        raise kind(
            path, f"image too large ({w}×{h} = {w * h / 1e6:.0f} MP; limit {limit / 1e6:.0f} MP, set MOS_MAX_PIXELS)"
        )
    return img


def _decode(img: Image.Image, path: Path, kind: type[ImageError] = ImageError) -> Image.Image:
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        text = str(err)
        problem = "file is truncated or corrupt" if "truncated" in text.lower() or "broken" in text.lower() else (
            f"file is corrupt ({text})"
        )
        raise kind(path, problem) from err
    return img


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if a.dtype in (np.int32, np.int64):
        top = 65535 if a.max(initial=0) > 255 else 255
        return (np.clip(a, 0, top).astype(np.float64) * 255.0 / top + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        top = 1.0 if float(np.nanmax(a, initial=0.0)) <= 1.0 else 255.0
        return (np.clip(np.nan_to_num(a), 0, top) * (255.0 / top) + 0.5).astype(np.uint8)
    return a.astype(np.uint8)


def _high_depth_with_cv2(path: Path) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Pillow reads 16-bit colour PNG/TIFF as 8-bit or not at all; OpenCV keeps the full depth."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None or arr.dtype == np.uint8:
        return None
    alpha = None
    if arr.ndim == 2:
        rgb = np.repeat(_to_uint8(arr)[..., None], 3, axis=2)
    else:
        if arr.shape[2] == 4:
            alpha = _to_uint8(arr[..., 3])
        rgb = cv2.cvtColor(_to_uint8(arr[..., :3]), cv2.COLOR_BGR2RGB)
    return rgb, alpha


def load_image(path: PathLike) -> LoadedImage:
    """Read an image as RGB uint8 (EXIF orientation applied); `ImageError` naming the file otherwise."""
    path = Path(path)
    img = _open_checked(path)
    with img:
        mode = img.mode
        fmt = img.format
        icc = img.info.get("icc_profile")
        exif_orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
        img = _decode(img, path)
        alpha: np.ndarray | None = None
        if mode in ("I;16", "I;16B", "I;16L", "I", "F") or (fmt in ("PNG", "TIFF") and mode in ("RGB", "RGBA")
                                                              and img.info.get("bits", 8) == 16):
            hd = _high_depth_with_cv2(path) if fmt in ("PNG", "TIFF") else None
            if hd is not None:
                rgb, alpha = hd
                if exif_orientation != 1:
                    rgb = np.asarray(ImageOps.exif_transpose(Image.fromarray(rgb)))
                return LoadedImage(np.ascontiguousarray(rgb), path, icc, mode, alpha)
        img = ImageOps.exif_transpose(img)
        if mode == "CMYK":
            if icc:
                try:
                    src = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
                    img = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                except (ImageCms.PyCMSError, OSError):
                    img = img.convert("RGB")
            else:
                img = img.convert("RGB")
            icc = None  # pixels are sRGB now; the CMYK profile no longer describes them
        elif mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            grey = _to_uint8(np.asarray(img))
            img = Image.fromarray(grey, "L")
        if img.mode == "P":
            img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            alpha = np.asarray(img.getchannel("A")).copy()
        rgb = np.array(img.convert("RGB"))  # a writable copy: callers (and torch) may write into it
    return LoadedImage(np.ascontiguousarray(rgb), path, icc, mode, alpha)


def image_info(path: PathLike) -> tuple[int, int, str]:
    """(width, height, format) from the header only."""
    path = Path(path)
    with _open_checked(path) as img:
        return img.size[0], img.size[1], str(img.format)


def load_mask(path: PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask file as float32 in [0, 1]; uses the alpha channel when the file has a non-constant one."""
    path = Path(path)
    img = _open_checked(path, MaskError)
    with img:
        img = _decode(img, path, MaskError)
        if size is not None and img.size != tuple(size):
            w, h = img.size
            raise MaskError(path, f"mask is {w}×{h} but the image is {size[0]}×{size[1]}")
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(img).astype(np.float32)
            return np.clip(a / (65535.0 if a.max(initial=0) > 255 else 255.0), 0, 1)
        if img.mode == "F":
            return np.clip(np.asarray(img, np.float32), 0, 1)
        if img.mode == "P":
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA"):
            a = np.asarray(img.getchannel("A"))
            if a.min() != a.max():
                return a.astype(np.float32) / 255.0
        return np.asarray(img.convert("L")).astype(np.float32) / 255.0


# --------------------------------------------------------------------------------------------------------- writing
def _alpha_u8(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    return (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


def _check_target(path: Path, overwrite: bool, protect: Iterable[PathLike]) -> None:
    for p in protect:
        p = Path(p)
        try:
            same = p.exists() and path.exists() and os.path.samefile(p, path)
        except OSError:
            same = False
        if same or path.resolve() == p.resolve():
            raise ExportError(f"{path}: would overwrite the input image; choose another name or folder")
    if not path.parent.is_dir():
        raise ExportError(f"{path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ExportError(f"{path}: folder {path.parent} is not writable")
    if path.exists() and not overwrite:
        raise ExportError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")


def _atomic_save(img: Image.Image, path: Path, overwrite: bool, protect: Iterable[PathLike], **params) -> Path:
    _check_target(path, overwrite, protect)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower()
    )
    if fmt is None:
        raise ExportError(f"{path}: unknown file type {path.suffix!r}; use .png, .jpg, .webp or .tif")
    if fmt == "PNG":
        params.setdefault("compress_level", 1)
    if fmt == "JPEG":
        params.setdefault("quality", 95)
        if img.mode == "RGBA":
            raise ExportError(f"{path}: JPEG has no transparency; save the cut-out as .png")
    params = {k: v for k, v in params.items() if v is not None}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".part")
    os.close(fd)
    try:
        img.save(tmp, format=fmt, **params)
        os.replace(tmp, path)
    except OSError as err:
        raise ExportError(f"{path}: could not be written ({err})") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_mask(mask: np.ndarray, path: PathLike, *, overwrite: bool = False, protect: Iterable[PathLike] = ()) -> Path:
    """8-bit grey PNG: 0/255 for a bool mask, rounded 0–255 for a probability map."""
    return _atomic_save(Image.fromarray(_alpha_u8(mask), "L"), Path(path), overwrite, protect)


def save_cutout(
    rgb: np.ndarray,
    alpha: np.ndarray,
    path: PathLike,
    *,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
    protect: Iterable[PathLike] = (),
) -> Path:
    """RGBA PNG with straight (not premultiplied) alpha and the source's ICC profile."""
    rgba = np.dstack([np.asarray(rgb, np.uint8), _alpha_u8(alpha)])
    return _atomic_save(Image.fromarray(rgba, "RGBA"), Path(path), overwrite, protect, icc_profile=icc_profile)


def composite(rgb: np.ndarray, alpha: np.ndarray, color: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """rgb·a + colour·(1 − a), in uint8."""
    a = _alpha_u8(alpha).astype(np.float32)[..., None] / 255.0
    bg = np.asarray(color, np.float32).reshape(1, 1, 3)
    return (np.asarray(rgb, np.float32) * a + bg * (1.0 - a) + 0.5).astype(np.uint8)


def save_composite(
    rgb: np.ndarray,
    alpha: np.ndarray,
    path: PathLike,
    color: tuple[int, int, int] = (0, 255, 0),
    *,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
    protect: Iterable[PathLike] = (),
) -> Path:
    """The object on a plain colour (green by default, as the paper's figures); format from the suffix."""
    out = Image.fromarray(composite(rgb, alpha, color), "RGB")
    return _atomic_save(out, Path(path), overwrite, protect, icc_profile=icc_profile)
