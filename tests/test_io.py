"""Image loading and writing on real files: odd formats, bad inputs, size guards, atomic and protected writes."""

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from mos_studio.core import io as mio
from mos_studio.core.errors import ExportError, ImageError, MaskError
from mos_studio.core.io import image_info, load_image, load_mask, save_composite, save_cutout, save_mask


def _png_header_only(path, w, h):
    """A PNG whose IHDR says w×h (1-bit grey) with a tiny, incomplete IDAT: a few hundred bytes, never decodable."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _srgb_icc():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _fake_icc(space: bytes) -> bytes:
    """An ICC header naming a colour space; only the header matters to the loader's RGB-profile check."""
    head = bytearray(128)
    head[0:4] = struct.pack(">I", 128)
    head[12:16] = b"mntr"
    head[16:20] = space
    head[36:40] = b"acsp"
    return bytes(head)


# ----------------------------------------------------------------------------------------------------- orientation
def test_exif_orientation_applied_to_jpeg(tmp_path):
    a = np.zeros((40, 60, 3), np.uint8)
    a[0:5, 0:5] = (255, 0, 0)  # red marker top-left of the stored pixels
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    loaded = load_image(tmp_path / "o.jpg")
    assert loaded.rgb.shape == (60, 40, 3) and (loaded.width, loaded.height) == (40, 60)
    assert loaded.rgb[2, -3, 0] > 200 and loaded.rgb[2, -3, 1] < 60  # marker now top-right
    assert loaded.rgb[2, 2, 0] < 60
    assert image_info(tmp_path / "o.jpg") == (40, 60, "JPEG")  # header-only size is the upright size too


@pytest.mark.parametrize("orientation", range(1, 9))
def test_numpy_orientation_matches_pillow(tmp_path, orientation):
    """The OpenCV fallback orients with numpy; it must agree with Pillow's exif_transpose for all eight values."""
    a = np.arange(12 * 20 * 3, dtype=np.uint32).reshape(12, 20, 3).astype(np.uint8)
    a[0, 0] = (255, 0, 0)
    a[0, -1] = (0, 255, 0)
    a[-1, 0] = (0, 0, 255)
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    ours = mio._ORIENT[orientation](a) if orientation in mio._ORIENT else a
    assert np.array_equal(ours, expected)
    assert np.array_equal(load_image(tmp_path / "o.png").rgb, expected)


# ---------------------------------------------------------------------------------------------- modes and depths
def test_16bit_grey_png_scaled(tmp_path):
    grey = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    grey[0, 1], grey[0, 2], grey[0, 3] = 257, 32896, 200  # → 1, 128, 1 (a dark 16-bit value is not read as 8-bit)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    loaded = load_image(tmp_path / "g16.png")
    g = loaded.rgb
    assert g.shape == (32, 64, 3) and g.dtype == np.uint8 and g.flags.c_contiguous
    assert tuple(g[0, :4, 0]) == (0, 1, 128, 1) and g[-1, -1, 0] == 255
    assert np.array_equal(g[..., 0], g[..., 2])
    assert loaded.mode.startswith("I;16")


@pytest.mark.parametrize("name", ["c16.png", "c16.tif"])
def test_16bit_rgb_scaled(tmp_path, name):
    rgb16 = np.zeros((32, 48, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 32896  # 128 in 8 bits
    rgb16[..., 2] = 257 * 7
    assert cv2.imwrite(str(tmp_path / name), rgb16[..., ::-1])  # OpenCV writes BGR
    c = load_image(tmp_path / name)
    assert c.rgb.dtype == np.uint8 and tuple(c.rgb[5, 5]) == (255, 128, 7) and c.alpha is None


def test_16bit_rgba_tiff_keeps_alpha(tmp_path):
    bgra = np.zeros((16, 24, 4), np.uint16)
    bgra[..., 0] = 65535  # blue
    bgra[:, :12, 3] = 65535
    assert cv2.imwrite(str(tmp_path / "a16.tif"), bgra)
    c = load_image(tmp_path / "a16.tif")
    assert tuple(c.rgb[0, 20]) == (0, 0, 255)  # straight colour under zero alpha
    assert c.alpha[0, 0] == 255 and c.alpha[0, 20] == 0


def test_float_tiffs(tmp_path):
    """Float RGB TIFF: Pillow cannot open it, the OpenCV fallback does (values in [0, 1])."""
    f = np.zeros((16, 24, 3), np.float32)
    f[..., 2] = 1.0  # red in BGR order
    f[..., 1] = 0.5
    assert cv2.imwrite(str(tmp_path / "f32.tif"), f)
    c = load_image(tmp_path / "f32.tif")
    assert c.rgb.shape == (16, 24, 3) and tuple(c.rgb[3, 3]) == (255, 128, 0)
    assert image_info(tmp_path / "f32.tif") == (24, 16, "TIFF")
    Image.fromarray(np.full((16, 20), 0.25, np.float32), "F").save(tmp_path / "F.tif")
    assert tuple(load_image(tmp_path / "F.tif").rgb[0, 0]) == (64, 64, 64)


def test_cmyk_jpeg_to_rgb_drops_cmyk_profile(tmp_path):
    Image.new("CMYK", (20, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    c = load_image(tmp_path / "cmyk.jpg")
    assert c.mode == "CMYK" and c.rgb.shape == (16, 20, 3) and c.icc_profile is None
    assert c.rgb[8, 8, 0] > 200 and c.rgb[8, 8, 1] < 60 and c.rgb[8, 8, 2] < 60
    # a CMYK profile that cannot be used: naive conversion, and the profile is not passed on to RGB exports
    Image.new("CMYK", (20, 16), (0, 255, 255, 0)).save(tmp_path / "bad_icc.jpg", icc_profile=_fake_icc(b"CMYK"))
    b = load_image(tmp_path / "bad_icc.jpg")
    assert b.icc_profile is None and b.rgb[8, 8, 0] > 200 and b.rgb[8, 8, 1] < 60


def test_icc_profile_kept_only_when_rgb(tmp_path):
    icc = _srgb_icc()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / "p.jpg", icc_profile=icc, quality=95)
    assert load_image(tmp_path / "p.jpg").icc_profile == icc
    Image.new("L", (16, 16), 9).save(tmp_path / "grey.png", icc_profile=_fake_icc(b"GRAY"))
    assert load_image(tmp_path / "grey.png").icc_profile is None  # a grey profile does not describe RGB pixels


def test_palette_with_transparency(tmp_path):
    p = Image.new("P", (20, 16))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.paste(1, (0, 0, 10, 16))
    p.save(tmp_path / "pal.png", transparency=0)
    pl = load_image(tmp_path / "pal.png")
    assert pl.mode == "P" and tuple(pl.rgb[3, 3]) == (10, 200, 30)
    assert pl.alpha is not None and pl.alpha[3, 3] == 255 and pl.alpha[3, 15] == 0
    Image.new("P", (20, 16), 0).save(tmp_path / "opaque.png")
    assert load_image(tmp_path / "opaque.png").alpha is None


def test_rgba_la_grey_bilevel_webp(tmp_path):
    rgba = np.zeros((16, 20, 4), np.uint8)
    rgba[..., 2] = 200
    rgba[:, :10, 3] = 255
    rgba[:, 10:15, 3] = 100
    Image.fromarray(rgba).save(tmp_path / "a.png")
    ra = load_image(tmp_path / "a.png")
    assert ra.mode == "RGBA" and ra.rgb[0, 17, 2] == 200 and ra.rgb[0, 12, 2] == 200  # straight, not premultiplied
    assert (ra.alpha[0, 0], ra.alpha[0, 12], ra.alpha[0, 17]) == (255, 100, 0)
    la = np.zeros((16, 20, 2), np.uint8)
    la[..., 0] = 90
    la[:8, :, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    lo = load_image(tmp_path / "la.png")
    assert tuple(lo.rgb[12, 0]) == (90, 90, 90) and lo.alpha[0, 0] == 255 and lo.alpha[12, 0] == 0
    Image.new("L", (20, 16), 77).save(tmp_path / "l.png")
    grey = load_image(tmp_path / "l.png")
    assert tuple(grey.rgb[0, 0]) == (77, 77, 77) and grey.alpha is None
    one = Image.new("1", (20, 16), 0)
    one.paste(1, (0, 0, 5, 16))
    one.save(tmp_path / "one.png")
    b = load_image(tmp_path / "one.png").rgb
    assert tuple(b[0, 0]) == (255, 255, 255) and tuple(b[0, 10]) == (0, 0, 0)
    Image.new("RGB", (20, 16), (10, 120, 240)).save(tmp_path / "w.webp", lossless=True)
    assert tuple(load_image(tmp_path / "w.webp").rgb[4, 4]) == (10, 120, 240)


def test_loaded_image_as_array(tmp_path):
    Image.new("RGB", (20, 16), (5, 6, 7)).save(tmp_path / "x.png")
    loaded = load_image(tmp_path / "x.png")
    arr = np.asarray(loaded)
    assert arr is loaded.rgb and arr.flags.writeable and arr.flags.c_contiguous
    assert loaded.path == tmp_path / "x.png"


# ------------------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
        (lambda p: p.write_text("just text, not a photo\n"), "not an image file"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, "PNG"), "too small (1×1); MOS needs at least 8×8"),
        (lambda p: Image.new("RGB", (100, 7)).save(p, "PNG"), "too small (100×7)"),
        (lambda p: _png_header_only(p, 20000, 20000), "too large (20000×20000 = 400 MP; limit 100 MP)"),
    ],
    ids=["missing", "folder", "empty", "text", "1x1", "thin", "20000x20000"],
)
def test_bad_inputs(tmp_path, make, expect):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value).startswith(str(path)) and expect in str(info.value)
    assert "\n" not in str(info.value)
    if expect.startswith(("too small", "too large", "not an image", "empty")):
        with pytest.raises(ImageError, match=expect.split(" (")[0]):
            image_info(path)


def test_huge_image_refused_from_header_without_touching_pillow_limit(tmp_path, monkeypatch):
    """Pillow's DecompressionBombError never escapes; its global limit is left alone; MOS_MAX_PIXELS rules."""
    before = Image.MAX_IMAGE_PIXELS
    big = _png_header_only(tmp_path / "big.png", 20000, 20000)  # 400 MP: past Pillow's own error threshold
    with pytest.raises(ImageError, match="too large"):
        load_image(big)
    with pytest.raises(MaskError, match="too large"):
        load_mask(big)
    monkeypatch.setenv("MOS_MAX_PIXELS", "500000000")
    assert image_info(big) == (20000, 20000, "PNG")  # header only: our limit allows it although Pillow's does not
    monkeypatch.setenv("MOS_MAX_PIXELS", "1000")
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match=r"too large \(40×30 = 1200 pixels; limit 1000 pixels\)"):
        load_image(tmp_path / "small.png")
    assert Image.MAX_IMAGE_PIXELS == before


def _noise(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated_files(tmp_path, fmt, suffix):
    buf = io.BytesIO()
    Image.fromarray(_noise(200, 200)).save(buf, fmt)
    path = tmp_path / f"t{suffix}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.png"
    Image.new("RGB", (16, 16)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            load_image(path)
    finally:
        path.chmod(0o644)


# ------------------------------------------------------------------------------------------------------------ masks
def test_mask_wrong_size_and_missing(tmp_path):
    Image.new("L", (30, 20), 255).save(tmp_path / "m.png")
    with pytest.raises(MaskError, match="mask is 30×20 but the image is 40×20") as info:
        load_mask(tmp_path / "m.png", size=(40, 20))
    assert str(tmp_path / "m.png") in str(info.value)
    m = load_mask(tmp_path / "m.png", size=(30, 20))
    assert m.dtype == np.float32 and m.shape == (20, 30) and m.min() == 1.0
    with pytest.raises(MaskError, match="does not exist"):
        load_mask(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("no")
    with pytest.raises(MaskError, match="not an image"):
        load_mask(tmp_path / "text.png")


def test_mask_kinds(tmp_path):
    a = np.zeros((20, 30, 4), np.uint8)
    a[:, :15, 3] = 255
    Image.fromarray(a).save(tmp_path / "alpha.png")  # RGB constant, alpha carries the mask
    m = load_mask(tmp_path / "alpha.png")
    assert m[0, 0] == 1.0 and m[0, 20] == 0.0
    g16 = np.zeros((20, 30), np.uint16)
    g16[:, 10:] = 65535
    g16[0, 0] = 32768
    Image.fromarray(g16).save(tmp_path / "m16.png")
    m16 = load_mask(tmp_path / "m16.png")
    assert m16[0, 20] == 1.0 and m16[5, 5] == 0.0 and abs(m16[0, 0] - 32768 / 65535) < 1e-6
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, 5:] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert load_mask(tmp_path / "rgb.png")[0, 10] == 1.0 and load_mask(tmp_path / "rgb.png")[0, 0] == 0.0


def test_mask_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    mask = rng.random((24, 32)) > 0.5
    save_mask(mask, tmp_path / "b.png")
    back = load_mask(tmp_path / "b.png", size=(32, 24))
    assert np.array_equal(back == 1.0, mask) and set(np.unique(back)) <= {0.0, 1.0}
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "L"
    prob = rng.random((24, 32)).astype(np.float32)
    save_mask(prob, tmp_path / "p.png")
    assert np.abs(load_mask(tmp_path / "p.png") - prob).max() <= 0.5 / 255 + 1e-6  # rounded, not truncated
    u8 = (rng.random((24, 32)) * 255).astype(np.uint8)
    save_mask(u8, tmp_path / "u.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "u.png")), u8)


# ---------------------------------------------------------------------------------------------------------- writers
def test_cutout_alpha_colours_and_icc(tmp_path):
    rgb = _noise(24, 32, 1)
    mask = np.random.default_rng(2).random((24, 32)) > 0.5
    icc = _srgb_icc()
    save_cutout(rgb, mask, tmp_path / "c.png", icc_profile=icc)
    with Image.open(tmp_path / "c.png") as cut:
        arr = np.array(cut)
        assert cut.mode == "RGBA" and cut.info.get("icc_profile") == icc
    assert np.array_equal(arr[..., 3], mask.astype(np.uint8) * 255)  # alpha equals the mask exactly
    assert np.array_equal(arr[..., :3], rgb)  # straight alpha: colours untouched even where alpha is 0
    soft = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    save_cutout(rgb, soft, tmp_path / "soft.png")
    assert np.array_equal(np.array(Image.open(tmp_path / "soft.png"))[..., 3], np.round(soft * 255).astype(np.uint8))
    # the loader reads back the same straight RGBA and the profile
    back = load_image(tmp_path / "c.png")
    assert np.array_equal(back.rgb, rgb) and np.array_equal(back.alpha, arr[..., 3]) and back.icc_profile == icc
    with pytest.raises(ExportError, match="JPEG has no transparency"):
        save_cutout(rgb, mask, tmp_path / "c.jpg")
    assert not (tmp_path / "c.jpg").exists()


def test_composite_on_colour(tmp_path):
    rgb = _noise(24, 32, 4)
    alpha = np.zeros((24, 32), np.uint8)
    alpha[:, 16:] = 255
    alpha[:, 10] = 128
    save_composite(rgb, alpha, tmp_path / "k.png", (0, 255, 0))
    k = np.array(Image.open(tmp_path / "k.png"))
    assert (k[:, :10] == (0, 255, 0)).all() and np.array_equal(k[:, 16:], rgb[:, 16:])
    a = 128 / 255
    expected = np.round(rgb[:, 10].astype(np.float32) * a + np.array([0, 255, 0]) * (1 - a)).astype(np.uint8)
    assert np.abs(k[:, 10].astype(int) - expected).max() <= 1
    icc = _srgb_icc()
    save_composite(rgb, alpha > 0, tmp_path / "k.jpg", (255, 255, 255), icc_profile=icc)
    with Image.open(tmp_path / "k.jpg") as jpg:
        assert jpg.format == "JPEG" and jpg.info.get("icc_profile") == icc
        assert (np.asarray(jpg)[2:-2, 2:7].astype(int) > 245).all()  # white where alpha is 0 (JPEG-lossy)
    for suffix, fmt in ((".webp", "WEBP"), (".tif", "TIFF")):
        save_composite(rgb, alpha, tmp_path / f"k{suffix}")
        with Image.open(tmp_path / f"k{suffix}") as im:
            assert im.format == fmt and im.size == (32, 24)
    with pytest.raises(ExportError, match="unknown file type"):
        save_composite(rgb, alpha, tmp_path / "k.bmpx")


def test_overwrite_and_protection(tmp_path):
    rgb = _noise(24, 32, 5)
    mask = np.ones((24, 32), bool)
    save_mask(mask, tmp_path / "m.png")
    with pytest.raises(ExportError, match=r"exists; pass overwrite=True \(--overwrite\) to replace it") as info:
        save_mask(~mask, tmp_path / "m.png")
    assert str(tmp_path / "m.png") in str(info.value)
    assert np.asarray(Image.open(tmp_path / "m.png")).min() == 255  # untouched
    save_mask(~mask, tmp_path / "m.png", overwrite=True)
    assert np.asarray(Image.open(tmp_path / "m.png")).max() == 0
    Image.fromarray(rgb).save(tmp_path / "in.png")
    original = (tmp_path / "in.png").read_bytes()
    for target in (tmp_path / "in.png", tmp_path / "sub" / ".." / "in.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ExportError, match="would overwrite the input image"):
            save_cutout(rgb, mask, target, overwrite=True, protect=[tmp_path / "in.png"])
    (tmp_path / "link.png").symlink_to(tmp_path / "in.png")
    with pytest.raises(ExportError, match="would overwrite the input image"):
        save_composite(rgb, mask, tmp_path / "link.png", overwrite=True, protect=[str(tmp_path / "in.png")])
    assert (tmp_path / "in.png").read_bytes() == original
    with pytest.raises(ExportError, match="does not exist"):
        save_mask(mask, tmp_path / "nope" / "m.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        save_mask(mask, tmp_path / "dir.png", overwrite=True)


def test_writes_are_atomic_and_leave_nothing_behind(tmp_path, monkeypatch):
    rgb = _noise(24, 32, 6)
    mask = np.zeros((24, 32), np.uint8)
    save_cutout(rgb, mask, tmp_path / "c.png")
    save_composite(rgb, mask, tmp_path / "k.jpg")
    save_mask(mask, tmp_path / "m.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "k.jpg", "m.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "c.png").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    before = (tmp_path / "m.png").read_bytes()

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(ExportError, match="could not be written.*No space left") as info:
        save_mask(np.ones((24, 32), bool), tmp_path / "m.png", overwrite=True)
    assert str(tmp_path / "m.png") in str(info.value)
    with pytest.raises(ExportError, match="could not be written"):
        save_cutout(rgb, mask, tmp_path / "new.png")
    assert (tmp_path / "m.png").read_bytes() == before  # the old file survives a failed overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "k.jpg", "m.png"]  # no temp files, no new.png


def _png16(path, rgb16, icc=None):
    import cv2

    from mos_studio.core.io import _png_with_icc

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb16[..., ::-1]))
    assert ok
    path.write_bytes(_png_with_icc(buf.tobytes(), icc))
    return path


def test_a_16_bit_photos_cutout_keeps_its_16_bits_and_profile(tmp_path):
    import cv2
    from PIL import ImageCms

    from mos_studio.core.io import load_colours16, save_cutout

    rng = np.random.default_rng(3)
    deep = (rng.random((48, 64, 3)) * 65535).astype(np.uint16)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = _png16(tmp_path / "deep.png", deep, icc)
    loaded = load_image(src)
    assert loaded.depth == 16 and loaded.rgb.dtype == np.uint8 and loaded.icc_profile == icc
    colours = load_colours16(src, (64, 48))
    assert colours is not None and np.array_equal(colours, deep)
    assert load_colours16(src, (48, 64)) is None  # not the size the photo had: it changed on disk
    alpha = np.zeros((48, 64), np.float32)
    alpha[8:40, 8:56] = 1.0
    alpha[20, 8:56] = 0.3  # a soft edge's row
    fg = loaded.rgb.copy()
    fg[20] = (10, 200, 30)  # the soft edge's own colours (8-bit, from the matte)
    out = save_cutout(fg, alpha, tmp_path / "cut.png", icc_profile=icc, colours16=colours)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (48, 64, 4)
    whole = alpha == 1.0
    assert np.array_equal(back[..., 2::-1][whole], deep[whole])  # the photo's own 16 bits
    assert back[20, 30, 3] == round(0.3 * 65535) and tuple(back[20, 30, 2::-1]) == (10 * 257, 200 * 257, 30 * 257)
    assert back[0, 0, 3] == 0
    assert Image.open(out).info.get("icc_profile") == icc and load_image(out).depth == 16
    # 8-bit photos and other formats: as before
    sample = Path(__file__).resolve().parents[1] / "resources" / "samples" / "sample.jpg"
    assert load_image(sample).depth == 8 and load_colours16(sample) is None
    webp = save_cutout(fg, alpha, tmp_path / "cut.webp", colours16=colours)
    assert Image.open(webp).mode == "RGBA"
    with pytest.raises(ValueError, match="16-bit colours"):
        save_cutout(fg, alpha, tmp_path / "bad.png", colours16=colours[:10])
    with pytest.raises(ExportError, match="exists"):
        save_cutout(fg, alpha, out, colours16=colours)
