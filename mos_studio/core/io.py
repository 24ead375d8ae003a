"""Images in and out. Every odd file becomes RGB uint8 or a one-line `ImageError`; every write is atomic.

Loading applies EXIF orientation and converts 16-bit, CMYK, palette, RGBA, grey and float images to RGB uint8,
keeping the file's own alpha and its (RGB) ICC profile for export. Sizes are checked from the header before any
pixel is decoded. Writers never replace an existing file unless told to, and never replace the input image at all.
"""

from __future__ import annotations

import io as _io
import os
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

from .errors import ExportError, ImageError, MaskError

MIN_SIDE = 8
MAX_PIXELS = 100_000_000

PathLike = str | os.PathLike

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# EXIF orientation → numpy view that shows the pixels upright (same as ImageOps.exif_transpose)
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def max_pixels() -> int:
    """The pixel limit: `$MOS_MAX_PIXELS` when set to a number, else MAX_PIXELS (read per call, so tests can set it)."""
    try:
        return int(os.environ.get("MOS_MAX_PIXELS", MAX_PIXELS))
    except ValueError:
        return MAX_PIXELS


def _mp(n: int) -> str:
    return f"{n / 1e6:.0f} MP" if n >= 10_000_000 else f"{n / 1e6:.1f} MP" if n >= 100_000 else f"{n} pixels"


@dataclass
class LoadedImage:
    """A decoded photo: upright RGB pixels plus what export needs from the file (alpha, ICC profile)."""

    rgb: np.ndarray  # H×W×3 uint8, C-contiguous, writable
    path: Path
    icc_profile: bytes | None = None  # an RGB profile describing `rgb`; None when absent or not RGB
    mode: str = "RGB"  # the file's own PIL mode
    alpha: np.ndarray | None = None  # H×W uint8 when the file had transparency (straight, not premultiplied)
    depth: int = 8  # bits per colour channel in the file: 16 for a 16-bit PNG or TIFF (`load_colours16` reads them)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # noqa: ANN001 - numpy protocol
        return self.rgb if dtype is None else self.rgb.astype(dtype)


# --------------------------------------------------------------------------------------------------------- opening
def _open_without_bomb_check(path: Path) -> Image.Image | None:
    """Open a header the way `Image.open` does, minus Pillow's own pixel limit (ours replaces it).

    Used only after Pillow raised DecompressionBombError: to name the size in our message, or to honour a
    MOS_MAX_PIXELS above Pillow's limit. Never changes Pillow's global limit, which other threads may rely on.
    """
    with open(path, "rb") as fp:
        prefix = fp.read(16)
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        result = accept(prefix) if accept is not None else True
        if isinstance(result, str) or not result:
            continue
        try:
            return factory(str(path), str(path))
        except (SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError):
            continue
    return None


def _tiff_header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, orientation) of a TIFF that Pillow cannot open (e.g. float RGB), from the first IFD only."""
    try:
        with open(path, "rb") as fp:
            ifh = fp.read(16)
            if ifh[:4] not in _TIFF_MAGIC:
                return None
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh if ifh[2:4] in (b"+\x00", b"\x00+") else ifh[:8])
            fp.seek(ifd.next)
            ifd.load(fp)
            return int(ifd[256]), int(ifd[257]), int(ifd.get(274, 1))
    except (OSError, KeyError, ValueError, SyntaxError, struct.error):
        return None


def _check_size(path: Path, w: int, h: int, kind: type[ImageError]) -> None:
    if w < MIN_SIDE or h < MIN_SIDE:
        raise kind(path, f"image too small ({w}×{h}); MOS needs at least {MIN_SIDE}×{MIN_SIDE}")
    limit = max_pixels()
    if w * h > limit:
        raise kind(
            path,
            f"image too large ({w}×{h} = {_mp(w * h)}; limit {_mp(limit)}); set MOS_MAX_PIXELS to raise the limit",
        )


def _check_file(path: Path, kind: type[ImageError]) -> None:
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


def _open_checked(path: Path, kind: type[ImageError] = ImageError) -> Image.Image:
    """Open lazily and check the size from the header, so a 20000×20000 PNG is refused without being decoded.

    Raises `UnidentifiedImageError` (for the caller's fallback) when Pillow does not know the format.
    """
    _check_file(path, kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            img = Image.open(path)
    except Image.DecompressionBombError as err:
        opened = _open_without_bomb_check(path)
        if opened is None:
            raise kind(path, f"image too large ({err}); limit {_mp(max_pixels())}") from err
        img = opened
    except PermissionError as err:
        raise kind(path, "cannot be read (permission denied)") from err
    except UnidentifiedImageError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise kind(path, f"cannot be read as an image ({err})") from err
    # before anything reads EXIF: a PNG's eXIf may follow its pixels, so Pillow decodes them, and the raw mode is gone
    img.mos_sixteen_bit = _sixteen_bit(img)
    try:
        _check_size(path, *_upright_size(img), kind)
    except ImageError:
        img.close()
        raise
    return img


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(0x0112, 1))
    except (ValueError, TypeError, OSError, SyntaxError, struct.error):
        return 1
    return value if value in _ORIENT else 1


def _upright_size(img: Image.Image) -> tuple[int, int]:
    w, h = img.size
    return (h, w) if _orientation(img) in (5, 6, 7, 8) else (w, h)


def _decode(img: Image.Image, path: Path, kind: type[ImageError] = ImageError) -> Image.Image:
    """Force the full decode here, so a truncated file fails now with a clear message, not later in the model."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    except MemoryError as err:
        raise kind(path, f"not enough memory to decode {img.size[0]}×{img.size[1]} pixels") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        text = str(err)
        broken = any(word in text.lower() for word in ("truncated", "broken", "premature", "unexpected end"))
        raise kind(path, "file is truncated or corrupt" if broken else f"file is corrupt ({text})") from err
    return img


# --------------------------------------------------------------------------------------------------- conversion
def _to_uint8(a: np.ndarray, bits16: bool = False) -> np.ndarray:
    """Scale any integer/float pixel array to uint8 (16-bit: round(v / 257), so 65535 → 255 and 32896 → 128)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16 or bits16:
        return ((np.clip(a, 0, 65535).astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        top = 65535 if a.max(initial=0) > 255 else 255
        return (np.clip(a, 0, top).astype(np.float64) * (255.0 / top) + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(a.max(initial=0.0))
        top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
        return (np.clip(a, 0, top) * (255.0 / top) + 0.5).astype(np.uint8)
    return a.astype(np.uint8)


def _rgb_profile(icc: bytes | None) -> bytes | None:
    """Keep a profile only if it describes RGB data: a grey or CMYK profile is wrong for the RGB pixels we return."""
    if not icc or len(icc) < 20:
        return None
    return icc if icc[16:20] == b"RGB " else None


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to Pillow's naive conversion
    return img.convert("RGB")


def _load_with_cv2(path: Path) -> LoadedImage | None:
    """Fallback for TIFFs Pillow cannot open (float or unusual sample layouts); size checked from the header first."""
    header = _tiff_header(path)
    if header is None:
        return None
    w, h, orientation = header
    _check_size(path, *((h, w) if orientation in (5, 6, 7, 8) else (w, h)), ImageError)
    import cv2  # lazy: only this rare path needs OpenCV

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # ignores EXIF orientation; applied below
    if arr is None:
        return None
    alpha = None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        rgb = np.repeat(_to_uint8(arr)[..., None], 3, axis=2)
    else:
        if arr.shape[2] == 4:
            alpha = _to_uint8(arr[..., 3])
        rgb = _to_uint8(arr[..., 2::-1])  # BGR → RGB
    if orientation in _ORIENT:
        rgb = _ORIENT[orientation](rgb)
        alpha = None if alpha is None else np.ascontiguousarray(_ORIENT[orientation](alpha))
    mode = f"{'L' if arr.ndim == 2 else 'RGBA' if alpha is not None else 'RGB'};{arr.dtype}"  # no PIL mode exists
    return LoadedImage(np.ascontiguousarray(rgb), path, None, mode, alpha)


def load_image(path: PathLike) -> LoadedImage:
    """Read an image as upright RGB uint8; `ImageError` naming the file and the problem otherwise."""
    path = Path(path)
    try:
        img = _open_checked(path)
    except UnidentifiedImageError as err:
        loaded = _load_with_cv2(path)
        if loaded is None:
            raise ImageError(path, "not an image file (or a format MOS Studio cannot read)") from err
        return loaded
    with img:
        mode = img.mode
        icc = img.info.get("icc_profile")
        depth = 16 if getattr(img, "mos_sixteen_bit", False) else 8
        img = _decode(img, path)
        try:
            if _orientation(img) != 1:  # exif_transpose would otherwise still copy every pixel
                img = ImageOps.exif_transpose(img)
            if mode == "CMYK":
                img = _cmyk_to_rgb(img, icc)
            elif mode in _HIGH_DEPTH_MODES:
                img = Image.fromarray(_to_uint8(np.asarray(img), bits16=mode.startswith("I;16")), "L")
            elif mode == "P":
                img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
            elif mode in ("RGBa", "La"):  # premultiplied: store straight colours
                img = img.convert(mode.upper())
            alpha = np.array(img.getchannel("A")) if img.mode in ("RGBA", "LA", "PA") else None
            rgb = np.array(img if img.mode == "RGB" else img.convert("RGB"))  # writable: callers may write into it
        except MemoryError as err:
            raise ImageError(path, f"not enough memory for {img.size[0]}×{img.size[1]} pixels") from err
        except ValueError as err:
            raise ImageError(path, f"colour mode {mode} cannot be converted to RGB ({err})") from err
    return LoadedImage(np.ascontiguousarray(rgb), path, _rgb_profile(icc), mode, alpha, depth)


def _sixteen_bit(img: Image.Image) -> bool:
    """A 16-bit colour PNG or TIFF: Pillow reads it as 8-bit RGB(A), and only its raw mode says what the file holds."""
    if img.mode not in ("RGB", "RGBA") or not img.tile:
        return False
    args = img.tile[0][3]
    raw = args[0] if isinstance(args, tuple) and args else args
    return isinstance(raw, str) and ";16" in raw


def load_colours16(path: PathLike, size: tuple[int, int] | None = None) -> np.ndarray | None:
    """The photo's colours at 16 bits, upright RGB uint16, for a cut-out that keeps a 16-bit photo's depth; None
    when the file holds 8-bit colour, cannot be read this way, or is not `size` (w, h) upright (it changed)."""
    import cv2  # lazy: only 16-bit exports need OpenCV here

    path = Path(path)
    try:
        with _open_checked(path) as img:
            if not getattr(img, "mos_sixteen_bit", False):
                return None
            orientation = _orientation(img)
    except (ImageError, UnidentifiedImageError, OSError):
        return None
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # ignores EXIF orientation; applied below
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return None
    rgb = arr[..., 2::-1]  # BGR(A) → RGB
    if orientation in _ORIENT:
        rgb = _ORIENT[orientation](rgb)
    if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
        return None
    return np.ascontiguousarray(rgb)


def image_info(path: PathLike) -> tuple[int, int, str]:
    """(width, height, format) as `load_image` would return it (EXIF orientation applied), from the header only."""
    path = Path(path)
    try:
        with _open_checked(path) as img:
            w, h = _upright_size(img)
            return w, h, str(img.format)
    except UnidentifiedImageError as err:
        header = _tiff_header(path)
        if header is None:
            raise ImageError(path, "not an image file (or a format MOS Studio cannot read)") from err
        w, h, orientation = header
        w, h = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        _check_size(path, w, h, ImageError)
        return w, h, "TIFF"


def load_mask(path: PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask file as float32 H×W in [0, 1] (upright); uses the alpha channel when the file has a non-constant one."""
    path = Path(path)
    try:
        img = _open_checked(path, MaskError)
    except UnidentifiedImageError as err:
        raise MaskError(path, "not an image file (or a format MOS Studio cannot read)") from err
    with img:
        if size is not None and _upright_size(img) != tuple(size):
            w, h = _upright_size(img)
            raise MaskError(path, f"mask is {w}×{h} but the image is {size[0]}×{size[1]}")
        mode = img.mode
        img = _decode(img, path, MaskError)
        if _orientation(img) != 1:
            img = ImageOps.exif_transpose(img)
        if mode.startswith("I;16"):
            return np.asarray(img).astype(np.float32) / 65535.0
        if mode in ("I", "F"):
            a = np.asarray(img).astype(np.float32)
            top = 1.0 if a.max(initial=0) <= 1.0 else 255.0 if a.max(initial=0) <= 255.0 else 65535.0
            return np.clip(np.nan_to_num(a) / top, 0.0, 1.0)
        if mode == "P":
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA", "PA"):
            a = np.asarray(img.getchannel("A"))
            if a.min() != a.max():
                return a.astype(np.float32) / 255.0
        try:
            return np.asarray(img.convert("L")).astype(np.float32) / 255.0
        except ValueError as err:
            raise MaskError(path, f"colour mode {mode} cannot be read as a mask ({err})") from err


# --------------------------------------------------------------------------------------------------------- writing
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def _alpha_u8(alpha: np.ndarray) -> np.ndarray:
    """bool → 0/255, uint8 as is, float in [0, 1] → rounded 0–255 (NaN → 0)."""
    a = np.asarray(alpha)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"a mask must be H×W, got shape {a.shape}")
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    a = np.nan_to_num(a.astype(np.float32), nan=0.0)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def _rgb_u8(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != alpha.shape:
        raise ValueError(f"rgb must be H×W×3 matching the mask {alpha.shape}, got {rgb.shape}")
    return rgb if rgb.dtype == np.uint8 else _to_uint8(rgb)


def _check_target(path: Path, overwrite: bool, protect: Iterable[PathLike]) -> None:
    for p in protect:
        p = Path(p)
        try:
            same = p.exists() and path.exists() and os.path.samefile(p, path)
        except OSError:
            same = False
        if same or path.resolve() == p.resolve():
            raise ExportError(f"{path}: would overwrite the input image; choose another name or folder")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise ExportError(f"{path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ExportError(f"{path}: folder {path.parent} is not writable")
    if path.exists() and not overwrite:
        raise ExportError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")


def current_umask() -> int:
    """The process umask; os has no getter, so it is set and put back."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_save(img: Image.Image, path: Path, overwrite: bool, protect: Iterable[PathLike], **params) -> Path:
    """Write beside the target, then rename over it: a crash or a full disk never leaves a half-written file."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(f"{path}: unknown file type {path.suffix!r}; use .png, .jpg, .webp or .tif")
    if fmt == "JPEG" and img.mode == "RGBA":
        raise ExportError(f"{path}: JPEG has no transparency; save the cut-out as .png")
    _check_target(path, overwrite, protect)
    if fmt == "PNG":
        params.setdefault("compress_level", 1)  # big PNGs: level 1 is much faster for a slightly larger file
    elif fmt == "JPEG":
        params.setdefault("quality", 95)
    elif fmt == "WEBP":
        params.setdefault("quality", 95)
    elif fmt == "TIFF":
        params.setdefault("compression", "tiff_lzw")
    params = {k: v for k, v in params.items() if v is not None}
    return write_atomic(path, lambda fp: img.save(fp, format=fmt, **params))


def write_atomic(path: Path, write: Callable[[BinaryIO], object], fsync: bool = False) -> Path:
    """`write(fp)` into a temporary file beside `path`, then rename it over `path`: a crash or a full disk never
    leaves a half-written file. The caller checks the target first (`_check_target`). `fsync`: the bytes reach the
    disk before the rename, so a power cut keeps the old file or the new one (the app's recovery copies)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".part")
    except OSError as err:
        raise ExportError(f"{path}: cannot write in {path.parent} ({err.strerror or err})") from err
    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            if fsync:
                fp.flush()
                os.fsync(fp.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; an export should get the user's usual permissions
        os.replace(tmp, path)
    except (OSError, ValueError) as err:
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
    colours16: np.ndarray | None = None,
) -> Path:
    """RGBA PNG (or WebP/TIFF) with straight (not premultiplied) alpha and the source's ICC profile.

    With `colours16` (the photo's upright RGB uint16, `load_colours16`) a PNG is written at 16 bits per channel: the
    photo's own 16-bit colours wherever the alpha is whole or nothing, `rgb` (the soft edges' colours, 8-bit)
    scaled up where it is partial, and the alpha at 16 bits (a float alpha keeps its precision)."""
    if colours16 is not None and Path(path).suffix.lower() == ".png":
        return _save_cutout16(rgb, alpha, Path(path), colours16, icc_profile, overwrite, protect)
    a = _alpha_u8(alpha)
    rgba = np.dstack([_rgb_u8(rgb, a), a])
    return _atomic_save(Image.fromarray(rgba, "RGBA"), Path(path), overwrite, protect, icc_profile=icc_profile)


def _alpha_u16(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype == bool:
        return a.astype(np.uint16) * 65535
    if a.dtype == np.uint8:
        return a.astype(np.uint16) * 257
    a = np.nan_to_num(a.astype(np.float32), nan=0.0)
    return np.rint(np.clip(a, 0, 1) * 65535).astype(np.uint16)


def _png_with_icc(png: bytes, icc: bytes | None) -> bytes:
    """OpenCV's PNG with an iCCP chunk after IHDR (OpenCV writes no colour profile; Pillow writes no 16-bit RGBA)."""
    if not icc:
        return png
    import zlib

    data = b"ICC profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(data)) + b"iCCP" + data + struct.pack(">I", zlib.crc32(b"iCCP" + data))
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR's length and type, its 13 bytes, its CRC
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def _save_cutout16(rgb: np.ndarray, alpha: np.ndarray, path: Path, colours16: np.ndarray, icc: bytes | None,
                   overwrite: bool, protect: Iterable[PathLike]) -> Path:
    import cv2

    a16 = _alpha_u16(alpha)
    c16 = np.asarray(colours16)
    if a16.ndim != 2 or c16.shape != (*a16.shape, 3) or c16.dtype != np.uint16:
        raise ValueError(f"16-bit colours must be H×W×3 uint16 matching the mask {a16.shape}, got {c16.shape} "
                         f"{c16.dtype}")
    rgb8 = _rgb_u8(rgb, a16)
    partial = (a16 > 0) & (a16 < 65535)
    bgra = np.empty((*a16.shape, 4), np.uint16)
    bgra[..., 2::-1] = c16
    bgra[partial, 2::-1] = rgb8[partial].astype(np.uint16) * 257  # the soft edge's own colours
    bgra[..., 3] = a16
    _check_target(path, overwrite, protect)
    ok, buf = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ExportError(f"{path}: the 16-bit PNG could not be encoded")
    png = _png_with_icc(buf.tobytes(), icc)
    return write_atomic(path, lambda fp: fp.write(png))


def composite(rgb: np.ndarray, alpha: np.ndarray, color: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """rgb·a + colour·(1 − a), rounded to uint8; integer arithmetic keeps a 12 MP composite fast and small."""
    a8 = _alpha_u8(alpha)
    rgb = _rgb_u8(rgb, a8)
    a = a8.astype(np.uint16)[..., None]
    bg = np.clip(np.rint(np.asarray(color, np.float64)), 0, 255).astype(np.uint16).reshape(1, 1, 3)
    out = rgb.astype(np.uint16)
    out *= a
    out += bg * (255 - a)  # rgb·a + bg·(255 − a) ≤ 255·255: fits in uint16
    out += 127
    out //= 255
    return out.astype(np.uint8)


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
