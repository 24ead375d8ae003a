"""Image loading and writing on real files: odd formats, bad inputs, atomic and protected writes."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from mos_studio.core.errors import ExportError, ImageError, MaskError
from mos_studio.core.io import load_image, load_mask, save_composite, save_cutout, save_mask


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((40, 60, 3), np.uint8)
    a[0:5, 0:5] = (255, 0, 0)  # red marker top-left of the stored pixels
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    loaded = load_image(tmp_path / "o.jpg")
    assert loaded.rgb.shape == (60, 40, 3)
    assert loaded.rgb[2, -3, 0] > 200 and loaded.rgb[2, -3, 1] < 60  # marker now top-right


def test_16bit_grey_and_rgb(tmp_path):
    grey = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    g = load_image(tmp_path / "g16.png").rgb
    assert g.shape == (32, 64, 3) and g[0, 0, 0] == 0 and g[-1, -1, 0] == 255
    rgb16 = np.zeros((32, 48, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 32896  # ≈ 128 in 8 bits
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb16[..., ::-1])
    for name in ("c16.png", "c16.tif"):
        c = load_image(tmp_path / name).rgb
        assert c.dtype == np.uint8 and tuple(c[5, 5]) == (255, 128, 0), name


def test_cmyk_palette_rgba_grey(tmp_path):
    Image.new("CMYK", (20, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    c = load_image(tmp_path / "cmyk.jpg")
    assert c.rgb.shape == (16, 20, 3) and c.rgb[8, 8, 0] > 200 and c.rgb[8, 8, 1] < 60 and c.icc_profile is None
    p = Image.new("P", (20, 16))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.paste(1, (0, 0, 10, 16))
    p.info["transparency"] = 0
    p.save(tmp_path / "pal.png", transparency=0)
    pl = load_image(tmp_path / "pal.png")
    assert tuple(pl.rgb[3, 3]) == (10, 200, 30) and pl.alpha is not None and pl.alpha[3, 15] == 0
    rgba = np.zeros((16, 20, 4), np.uint8)
    rgba[..., 2] = 200
    rgba[:, :10, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    ra = load_image(tmp_path / "a.png")
    assert ra.rgb[0, 15, 2] == 200 and ra.alpha[0, 0] == 255 and ra.alpha[0, 15] == 0  # straight, not premultiplied
    Image.new("L", (20, 16), 77).save(tmp_path / "l.png")
    assert tuple(load_image(tmp_path / "l.png").rgb[0, 0]) == (77, 77, 77)


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("just text"), "not an image"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, "PNG"), "too small (1×1)"),
        (lambda p: Image.new("1", (20000, 20000)).save(p, "PNG"), "too large (20000×20000"),
    ],
)
def test_bad_inputs(tmp_path, make, expect):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and expect in str(info.value)


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((200, 200, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "t.jpg")


def test_mask_wrong_size_and_alpha_mask(tmp_path):
    Image.new("L", (30, 20), 255).save(tmp_path / "m.png")
    with pytest.raises(MaskError, match="mask is 30×20 but the image is 40×20"):
        load_mask(tmp_path / "m.png", size=(40, 20))
    assert load_mask(tmp_path / "m.png", size=(30, 20)).min() == 1.0
    a = np.zeros((20, 30, 4), np.uint8)
    a[:, :15, 3] = 255
    Image.fromarray(a).save(tmp_path / "am.png")
    m = load_mask(tmp_path / "am.png")
    assert m[0, 0] == 1.0 and m[0, 20] == 0.0


def test_writers_round_trip_and_protection(tmp_path):
    rng = np.random.default_rng(1)
    rgb = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    mask = rng.random((24, 32)) > 0.5
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    save_mask(mask, tmp_path / "m.png")
    assert np.array_equal(np.array(Image.open(tmp_path / "m.png")) > 127, mask)
    save_cutout(rgb, mask, tmp_path / "c.png", icc_profile=icc)
    cut = Image.open(tmp_path / "c.png")
    arr = np.array(cut)
    assert np.array_equal(arr[..., 3], mask.astype(np.uint8) * 255)
    assert np.array_equal(arr[..., :3], rgb)  # straight alpha: colours untouched
    assert cut.info.get("icc_profile") == icc
    save_composite(rgb, mask, tmp_path / "k.png", (0, 255, 0))
    k = np.array(Image.open(tmp_path / "k.png"))
    assert (k[~mask] == (0, 255, 0)).all() and np.array_equal(k[mask], rgb[mask])
    with pytest.raises(ExportError, match="exists"):
        save_mask(mask, tmp_path / "m.png")
    save_mask(~mask, tmp_path / "m.png", overwrite=True)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    with pytest.raises(ExportError, match="input image"):
        save_cutout(rgb, mask, tmp_path / "in.png", overwrite=True, protect=[tmp_path / "in.png"])
    with pytest.raises(ExportError, match="does not exist"):
        save_mask(mask, tmp_path / "nope" / "m.png")
    with pytest.raises(ExportError, match="transparency"):
        save_cutout(rgb, mask, tmp_path / "c.jpg")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert leftovers == []
