"""`mos cut`, `mos refine`, `mos info` on real files, including every bad input the issue lists."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mos_studio.cli.main import main
from mos_studio.core.testing import write_tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


def _photo(path, w=96, h=80):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_cut_writes_all_exports(tmp_path, models, capsys):
    img = _photo(tmp_path / "cat.jpg")
    out = tmp_path / "out"
    code = main(["cut", str(img), "-o", str(out), "--models-dir", str(models),
                 "--export", "cutout", "--export", "mask", "--export", "composite"])
    assert code == 0
    cut = Image.open(out / "cat_cutout.png")
    mask = np.array(Image.open(out / "cat_mask.png"))
    assert cut.mode == "RGBA" and cut.size == (96, 80)
    assert mask.shape == (80, 96) and set(np.unique(mask)) <= {0, 255}
    assert (out / "cat_composite.png").is_file()
    # A second run refuses to overwrite, and --overwrite replaces.
    assert main(["cut", str(img), "-o", str(out), "--models-dir", str(models)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["cut", str(img), "-o", str(out), "--models-dir", str(models), "--overwrite"]) == 0


def test_folder_run_continues_past_bad_files(tmp_path, models, capsys):
    src = tmp_path / "shoot"
    src.mkdir()
    _photo(src / "a.png")
    _photo(src / "c.jpg")
    (src / "b.jpg").write_text("this is not a picture")
    (src / "empty.jpg").write_bytes(b"")
    good = src / "c.jpg"
    data = good.read_bytes()
    (src / "trunc.jpg").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (1, 1)).save(src / "tiny.png")
    code = main(["cut", str(src), "-o", str(tmp_path / "o"), "--models-dir", str(models)])
    err = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "o" / "a_cutout.png").is_file() and (tmp_path / "o" / "c_cutout.png").is_file()
    for name in ("b.jpg", "empty.jpg", "trunc.jpg", "tiny.png"):
        lines = [ln for ln in err.splitlines() if name in ln]
        assert len(lines) == 1, (name, err)
    assert "4 of 6 image(s) failed" in err


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_text("hello"), p)[1], "not an image"),
        (lambda p: (Image.new("RGB", (1, 1)).save(p, format="PNG"), p)[1], "too small"),
        (lambda p: (Image.new("1", (20000, 20000)).save(p, format="PNG"), p)[1], "too large"),
    ],
    ids=["missing", "zero-byte", "text", "1x1", "20000x20000"],
)
def test_bad_single_inputs_exit_nonzero_with_one_line(tmp_path, models, make, expect):
    path = make(tmp_path / "input.jpg")
    proc = subprocess.run(
        [sys.executable, "-m", "mos_studio.cli.main", "cut", str(path), "-o", str(tmp_path / "o"),
         "--models-dir", str(models)],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mos: error:")]
    assert errors and str(path) in errors[0] and expect in errors[0].lower(), proc.stderr
    assert "Traceback" not in proc.stderr


def test_refine_and_wrong_size_mask(tmp_path, models, capsys):
    img = _photo(tmp_path / "p.png", 64, 48)
    m = np.zeros((48, 64), np.uint8)
    m[10:40, 10:50] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    Image.fromarray(m[:40]).save(tmp_path / "bad.png")
    assert main(["refine", str(img), str(tmp_path / "m.png"), "-o", str(tmp_path / "r.png"),
                 "--models-dir", str(models)]) == 0
    out = np.array(Image.open(tmp_path / "r.png"))
    assert out.shape == (48, 64)
    # The summary says how many pixels crossed the mask's edge, and what to try when none did.
    moved = int(((out >= 128) != (m >= 128)).sum())
    said = capsys.readouterr().out
    assert f"{moved} pixels changed" in said
    assert ("try --rough" in said) == (moved == 0)
    assert main(["refine", str(img), str(tmp_path / "bad.png"), "-o", str(tmp_path / "r2.png"),
                 "--models-dir", str(models)]) == 1
    err = capsys.readouterr().err
    assert "bad.png" in err and "64×40" in err and "64×48" in err
    assert not (tmp_path / "r2.png").exists()


def test_refine_rough_lets_h_move_the_mask(tmp_path, models, monkeypatch):
    """`mos refine --rough` sets CascadeConfig.refine_rough for that run and loads L too (a rough mask is cut out
    again inside its box), and takes --colour-assist; without the flag it stays off and only H is loaded."""
    from mos_studio.core.cascade import Cascade

    img = _photo(tmp_path / "p.png", 64, 48)
    m = np.zeros((48, 64), np.uint8)
    m[10:40, 10:50] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    seen: list[tuple[bool, bool, float]] = []
    orig = Cascade.__call__

    def spy(self, *a, **k):
        seen.append((self.config.refine_rough, self.l_model is not None, self.config.l_colour_mix))
        return orig(self, *a, **k)

    monkeypatch.setattr(Cascade, "__call__", spy)
    for k, flag in enumerate(([], ["--rough"], ["--rough", "--colour-assist"])):
        assert main(["refine", str(img), str(tmp_path / "m.png"), "-o", str(tmp_path / f"r{k}.png"),
                     "--models-dir", str(models), *flag]) == 0
    assert seen == [(False, False, 0.0), (True, True, 0.0), (True, True, 0.5)]
    # colour assist acts where L runs: a plain refine refuses it and writes nothing
    assert main(["refine", str(img), str(tmp_path / "m.png"), "-o", str(tmp_path / "r9.png"),
                 "--models-dir", str(models), "--colour-assist"]) == 1
    assert not (tmp_path / "r9.png").exists()


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    img = _photo(tmp_path / "x.png")
    assert main(["cut", str(img), "-o", str(tmp_path / "o"), "--models-dir", str(tmp_path / "none")]) == 1
    assert "weights file missing" in capsys.readouterr().err


def test_info_lists_weights(models, capsys):
    assert main(["info", "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "meticulousnet_mobile_L.safetensors  (default): ok" in out and "sha256" in out
    assert "default pair: L mobilenetv3, H mobilenetv3" in out  # no default.json: MobileNetV3 for both
    assert "meticulousnet_r50_H.safetensors: missing" in out


def test_cut_alpha_soft_and_hard(tmp_path, capsys):
    """--alpha soft (default) writes the matte solved where H is unsure; --alpha hard the 0/255 mask.

    With the shipped weights (random tiny ones doubt everywhere, which rightly leaves no band to solve), on the
    bundled photo shrunk to 160 px: round 2's H erases a flat synthetic disc of 80×96 px altogether (docs/MODELS.md),
    so a real photo it is.
    """
    from pathlib import Path

    import cv2

    models = Path(__file__).resolve().parents[1] / "models"
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.io import load_image
    from mos_studio.core.matting import matte_result

    photo = load_image(Path(__file__).resolve().parents[1] / "resources" / "samples" / "sample.jpg").rgb
    img = tmp_path / "cup.png"
    Image.fromarray(cv2.resize(photo, (160, 107), interpolation=cv2.INTER_AREA)).save(img)
    kinds = ["--export", "cutout", "--export", "mask", "--export", "alpha", "--export", "composite"]
    assert main(["cut", str(img), "-o", str(tmp_path / "soft"), "--models-dir", str(models), *kinds]) == 0
    assert main(["cut", str(img), "-o", str(tmp_path / "hard"), "--models-dir", str(models), "--alpha", "hard",
                 *kinds]) == 0
    out = capsys.readouterr().out
    assert "soft edges" in out
    hard_cut = np.array(Image.open(tmp_path / "hard" / "cup_cutout.png"))
    hard_mask = np.array(Image.open(tmp_path / "hard" / "cup_mask.png"))
    assert set(np.unique(hard_cut[..., 3])) <= {0, 255}
    assert np.array_equal(hard_cut[..., 3], hard_mask)
    assert np.array_equal(np.array(Image.open(tmp_path / "hard" / "cup_alpha.png")), hard_mask)
    # soft: the same matte the Python API gives for the same cascade output; the mask export stays hard
    res = Cascade.from_pretrained(models, device="cpu")(load_image(img))
    matte = matte_result(load_image(img).rgb, res)
    soft_cut = np.array(Image.open(tmp_path / "soft" / "cup_cutout.png"))
    assert np.array_equal(soft_cut[..., 3], matte.alpha_u8)
    assert np.array_equal(soft_cut[..., :3][soft_cut[..., 3] > 0], matte.foreground[soft_cut[..., 3] > 0])
    assert np.array_equal(np.array(Image.open(tmp_path / "soft" / "cup_alpha.png")), matte.alpha_u8)
    assert np.array_equal(np.array(Image.open(tmp_path / "soft" / "cup_mask.png")), hard_mask)
    assert matte.soft and ((matte.alpha_u8 > 0) & (matte.alpha_u8 < 255)).sum() > 100
    assert not np.array_equal(matte.alpha_u8, hard_mask)
    # refine offers the matte too
    assert main(["refine", str(img), str(tmp_path / "hard" / "cup_mask.png"), "-o", str(tmp_path / "r.png"),
                 "--models-dir", str(models), "--alpha", "soft"]) == 0
    assert np.array(Image.open(tmp_path / "r.png")).shape == (107, 160)


def test_cut_edge_snap_switch(tmp_path, models):
    """--edge-snap turns the snap on where the card leaves it off (the tiny models' cards), --no-edge-snap keeps it
    off; the default follows the card."""
    rng = np.random.default_rng(3)
    img = np.zeros((80, 96, 3), np.uint8)
    img[:, 40:] = (200, 180, 120)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "two.png")
    masks = {}
    for flag in ("default", "--edge-snap", "--no-edge-snap"):
        out = tmp_path / flag.strip("-")
        args = ["cut", str(tmp_path / "two.png"), "-o", str(out), "--models-dir", str(models), "--export", "mask"]
        assert main(args + ([] if flag == "default" else [flag])) == 0
        masks[flag] = np.array(Image.open(out / "two_mask.png"))
    assert np.array_equal(masks["default"], masks["--no-edge-snap"])
    assert not np.array_equal(masks["default"], masks["--edge-snap"])


def test_cut_colour_assist_switch_on_the_sample_cup(tmp_path):
    """--colour-assist runs the cut with L's unsure band re-decided by colour (the shipped L's card leaves it off):
    on `make run`'s cup it is the cascade's cut with l_colour_mix 0.5, and differs from the default; the default and
    --no-colour-assist are the card's plain cut."""
    from mos_studio.core.cascade import Cascade

    root = Path(__file__).resolve().parents[1]
    cup = root / "resources" / "samples" / "sample.jpg"
    masks = {}
    for flag in ("default", "--colour-assist", "--no-colour-assist"):
        out = tmp_path / flag.strip("-")
        assert main(["cut", str(cup), "-o", str(out), "--export", "mask", "--alpha", "hard", "--device", "cpu"]
                    + ([] if flag == "default" else [flag])) == 0
        masks[flag] = np.array(Image.open(out / "sample_mask.png")) > 127
    assert np.array_equal(masks["default"], masks["--no-colour-assist"])
    rgb = np.array(Image.open(cup).convert("RGB"))
    cascade = Cascade.from_pretrained(root / "models", device="cpu")
    cascade.config.l_colour_mix = 0.5
    want = cascade(rgb).mask > 0
    assert np.array_equal(masks["--colour-assist"], want)
    assert (masks["--colour-assist"] != masks["default"]).sum() > 1000  # the saucer and the table wedge move


@pytest.mark.parametrize("text, says", [
    ("10,20,30", "expected four numbers"),
    ("10,20,x,40", "expected four numbers"),
    ("40,20,10,60", "X1 must be greater than X0"),
    ("0.1,0.1,1.5,0.9", "between 0 and 1"),
    ("5,0,40.5,40", "between 0 and 1"),
    ("nan,0,40,40", "expected four numbers"),
])
def test_cut_box_refuses_a_bad_box_before_loading_anything(tmp_path, capsys, text, says):
    img = _photo(tmp_path / "cat.jpg")
    # No models folder: a bad box is reported before the weights are looked for.
    assert main(["cut", str(img), "-o", str(tmp_path / "o"), "--models-dir", str(tmp_path / "none"),
                 f"--box={text}"]) == 1
    err = capsys.readouterr().err
    assert says in err and f"--box {text!r}" in err
    assert not (tmp_path / "o" / "cat_cutout.png").exists()


def test_cut_box_is_the_cascades_box_prompt_in_pixels_and_shares(tmp_path, models, capsys):
    """--box runs the app's box prompt: the same mask as the cascade given that box, nothing outside it; a box
    written as shares lands on the same pixels of photos of any size, and a photo the box misses is one error line
    while the others finish."""
    from mos_studio.core.cascade import Cascade

    src = tmp_path / "shoot"
    src.mkdir()
    a = _photo(src / "a.png", 96, 80)
    _photo(src / "b.png", 192, 160)
    rgb = np.array(Image.open(a).convert("RGB"))
    want = Cascade.from_pretrained(models, device="cpu")(rgb, box=(24, 16, 72, 64)).mask
    assert main(["cut", str(a), "-o", str(tmp_path / "px"), "--models-dir", str(models), "--export", "mask",
                 "--box", "24,16,72,64"]) == 0
    got = np.array(Image.open(tmp_path / "px" / "a_mask.png")) > 127
    assert np.array_equal(got, want)
    outside = np.ones_like(got)
    outside[16:64, 24:72] = False
    assert not got[outside].any()
    assert "box 24,16,72,64" in capsys.readouterr().out
    # Pixels reaching past the photo are clipped to it, on every side.
    assert main(["cut", str(a), "-o", str(tmp_path / "clip"), "--models-dir", str(models), "--export", "mask",
                 "--box=-30,-10,500,64"]) == 0
    clipped = Cascade.from_pretrained(models, device="cpu")(rgb, box=(0, 0, 96, 64)).mask
    assert np.array_equal(np.array(Image.open(tmp_path / "clip" / "a_mask.png")) > 127, clipped)
    assert "box 0,0,96,64" in capsys.readouterr().out
    # Shares: 0.25..0.75 of 96×80 is the box above; of 192×160 it is (48, 32, 144, 128).
    assert main(["cut", str(src), "-o", str(tmp_path / "sh"), "--models-dir", str(models), "--export", "mask",
                 "--box", "0.25,0.2,0.75,0.8"]) == 0
    assert np.array_equal(np.array(Image.open(tmp_path / "sh" / "a_mask.png")) > 127, want)
    big = np.array(Image.open(tmp_path / "sh" / "b_mask.png")) > 127
    assert big.shape == (160, 192) and not big[:32].any() and not big[:, :48].any() and not big[128:].any()
    # Pixels that lie outside the smaller photo: that photo fails with its name, the larger one is cut.
    capsys.readouterr()
    assert main(["cut", str(src), "-o", str(tmp_path / "off"), "--models-dir", str(models), "--export", "mask",
                 "--box", "100,90,180,150"]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'a.png'}: --box 100,90,180,150 covers 0×0 pixels of this 96×80 photo" in err
    assert "1 of 2 image(s) failed" in err
    assert not (tmp_path / "off" / "a_mask.png").exists() and (tmp_path / "off" / "b_mask.png").is_file()


def test_cut_export_stages_writes_the_sheet_and_the_block_maps(tmp_path, models, capsys):
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.io import load_image

    img = _photo(tmp_path / "ant.png", 120, 90)
    out = tmp_path / "out"
    assert main(["cut", str(img), "-o", str(out), "--models-dir", str(models), "--export", "stages"]) == 0
    assert "ant_stages.png" in capsys.readouterr().out
    assert not (out / "ant_cutout.png").exists()  # only what was asked
    sheet = np.asarray(Image.open(out / "ant_stages.png").convert("RGB"))
    assert sheet.ndim == 3 and sheet.std() > 5
    arrays = np.load(out / "ant_stages.npz")
    names = ["S8_0", "S8_1", "S8_2", "S4_2", "S8_3", "S4_3", "S2_3"]
    assert sorted(arrays.keys()) == sorted(f"{n}/{b}/{k}" for n in ("L", "H") for b in names
                                           for k in ("uncertainty", "prediction"))
    # the same maps as the Python API's (the same weights, the same photo)
    res = Cascade.from_pretrained(models)(load_image(img))
    for net in ("L", "H"):
        for m in res.stages[net]:
            assert np.allclose(arrays[f"{net}/{m.name}/prediction"], m.prediction, atol=1e-5)
            unsure = arrays[f"{net}/{m.name}/uncertainty"]
            assert 0.0 <= unsure.min() <= unsure.max() <= 1.0
    # the npz is guarded like every output: no overwrite without --overwrite, even when only it exists
    (out / "ant_stages.png").unlink()
    assert main(["cut", str(img), "-o", str(out), "--models-dir", str(models), "--export", "stages"]) == 1
    assert "ant_stages.npz: exists" in capsys.readouterr().err
    assert not (out / "ant_stages.png").exists()


def test_cut_of_a_16_bit_photo_writes_a_16_bit_cutout(tmp_path, models, capsys):
    import cv2

    rng = np.random.default_rng(5)
    deep = (rng.random((80, 96, 3)) * 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", deep[..., ::-1])
    src = tmp_path / "deep.png"
    src.write_bytes(buf.tobytes())
    out = tmp_path / "out"
    assert main(["cut", str(src), "-o", str(out), "--models-dir", str(models), "--export", "cutout",
                 "--export", "mask", "--alpha", "hard"]) == 0
    assert "16-bit cut-out" in capsys.readouterr().out
    cut = cv2.imread(str(out / "deep_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert cut.dtype == np.uint16 and cut.shape == (80, 96, 4)
    whole = cut[..., 3] == 65535
    assert np.array_equal(cut[..., 2::-1][whole], deep[whole])  # the photo's own 16-bit colours
    mask = np.asarray(Image.open(out / "deep_mask.png"))
    assert mask.dtype == np.uint8 and np.array_equal(mask == 255, whole)  # the mask stays 8-bit 0/255
