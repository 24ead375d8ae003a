"""The bridge (`python -m mos_studio.bridge`) driven by the plug-in's own client module, without GIMP; and
`mos install-gimp-plugin` / `mos uninstall-gimp-plugin` into a temporary GIMP folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mos_studio.bridge.protocol import EXIT_BAD_REQUEST, EXIT_CANCELLED, Request, RequestError, overall_fraction
from mos_studio.cli import gimp as gimp_cli
from mos_studio.cli.main import main as mos_main
from mos_studio.core.errors import MosError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugin_gimp" / "meticulous_select"))
import mos_client  # noqa: E402

W, H = 96, 72


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    from mos_studio.core.testing import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("models"), seed=6)


@pytest.fixture(scope="module")
def layer() -> np.ndarray:
    """RGBA layer: an object on a gradient, with the left 10 columns fully transparent."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:H, :W]
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 30 + xx
    rgba[..., 1] = 50 + yy
    obj = ((yy - 36) / 22) ** 2 + ((xx - 48) / 30) ** 2 < 1
    rgba[obj, :3] = (220, 160, 40)
    rgba[..., :3] = np.clip(rgba[..., :3] + rng.integers(0, 12, (H, W, 3)), 0, 255)
    rgba[..., 3] = 255
    rgba[:, :10, 3] = 0
    return rgba


def _config(models: Path, python: str = sys.executable) -> dict:
    return {"python": python, "models_dir": str(models), "device": "cpu"}


def test_request_validation_names_the_field():
    ok = Request.from_json(json.dumps({"mode": "select", "image": "a", "output": "b", "width": 4, "height": 3}))
    assert (ok.width, ok.height, ok.format) == (4, 3, "rgba8")
    assert Request.from_json(ok.to_json()) == ok
    bad = [
        ({"mode": "paint", "image": "a", "output": "b", "width": 1, "height": 1}, "mode"),
        ({"mode": "refine", "image": "a", "output": "b", "width": 1, "height": 1}, "mask"),
        ({"mode": "select", "image": "a", "output": "b", "width": 0, "height": 1}, "width"),
        ({"mode": "select", "output": "b", "width": 1, "height": 1}, "image"),
        ({"version": 99, "mode": "select", "image": "a", "output": "b", "width": 1, "height": 1}, "install-gimp"),
    ]
    for data, word in bad:
        with pytest.raises(RequestError, match=word):
            Request.from_json(json.dumps(data))
    with pytest.raises(RequestError, match="not JSON"):
        Request.from_json("{nope")


def test_overall_fraction_is_monotonic_over_the_stages():
    seq = [("L", 0), ("L", 1), ("H global", 0), ("H global", 1), ("H local", 0.5), ("H local", 1), ("done", 1)]
    values = [overall_fraction("select", s, f) for s, f in seq]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0


def test_select_equals_cascade_and_skips_transparent_pixels(tmp_path, models, layer):
    from mos_studio.core.cascade import Cascade

    (tmp_path / "layer.rgba").write_bytes(layer.tobytes())
    seen: list[tuple[str, float]] = []
    reply = mos_client.run_bridge(
        {"mode": "select", "image": str(tmp_path / "layer.rgba"), "format": "rgba8", "width": W, "height": H,
         "output": str(tmp_path / "mask.y8"), "output_png": str(tmp_path / "mask.png")},
        _config(models), lambda stage, f: seen.append((stage, f)), workdir=str(tmp_path),
    )
    assert reply["type"] == "done" and (reply["width"], reply["height"]) == (W, H)
    got = np.frombuffer(mos_client.read_file(str(tmp_path / "mask.y8"), W * H), np.uint8).reshape(H, W)
    assert set(np.unique(got)) <= {0, 255}
    assert not got[:, :10].any(), "transparent pixels can never be selected"
    expected = Cascade.from_pretrained(models, device="cpu")(np.ascontiguousarray(layer[..., :3])).mask
    expected[:, :10] = False
    agree = np.logical_and(got > 0, expected).sum() / max(np.logical_or(got > 0, expected).sum(), 1)
    assert agree >= 0.99
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "mask.png")), got)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"L", "H global"} <= {s for s, _ in seen}


def test_select_snap_off_equals_the_cascade_without_the_snap(tmp_path, layer):
    """The dialog's "Snap edges" off: the shipped H's snap (on in its card) is not run; on (the default) it is."""
    from mos_studio.core.cascade import Cascade

    rgb = np.ascontiguousarray(layer[..., :3])
    models = Path(__file__).resolve().parents[1] / "models"
    (tmp_path / "layer.rgb").write_bytes(rgb.tobytes())
    got = {}
    for snap in (True, False):
        out = tmp_path / f"out_{snap}.y8"
        mos_client.run_bridge(
            {"mode": "select", "image": str(tmp_path / "layer.rgb"), "format": "rgb8", "width": W, "height": H,
             "output": str(out), "snap": snap},
            _config(models), workdir=str(tmp_path),
        )
        got[snap] = np.frombuffer(out.read_bytes(), np.uint8).reshape(H, W) > 0
    cascade = Cascade.from_pretrained(models, device="cpu")
    assert cascade.config.edge_radius, "the shipped H's card turns the snap on"
    assert np.array_equal(got[True], cascade(rgb).mask)
    cascade.config.edge_radius = None
    assert np.array_equal(got[False], cascade(rgb).mask)
    assert not np.array_equal(got[True], got[False])
    with pytest.raises(RequestError, match="'snap' must be true or false"):
        Request.from_json(json.dumps({"mode": "select", "image": "a", "output": "b", "width": 1, "height": 1,
                                      "snap": "no"}))
    # "soft" too: a string such as "false" was once taken as true and solved a matte nobody asked for.
    with pytest.raises(RequestError, match="'soft' must be true or false, got 'false'"):
        Request.from_json(json.dumps({"mode": "select", "image": "a", "output": "b", "width": 1, "height": 1,
                                      "soft": "false"}))


def _refine_files(tmp_path: Path, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray, Path]:
    """The layer's RGB and a rough rectangle written as the bridge reads them; the shipped models' folder."""
    rgb = np.ascontiguousarray(layer[..., :3])
    coarse = np.zeros((H, W), np.uint8)
    coarse[15:60, 20:80] = 255
    (tmp_path / "layer.rgb").write_bytes(rgb.tobytes())
    (tmp_path / "coarse.y8").write_bytes(coarse.tobytes())
    return rgb, coarse, Path(__file__).resolve().parents[1] / "models"


def test_refine_soft_equals_h_only_cascade_matte(tmp_path, layer):
    """soft: the matte solved where H was unsure (the same as the Python API's), not a hard mask.

    With the shipped H: random tiny weights doubt everywhere, which (rightly) leaves no band to solve.
    """
    from mos_studio.core.cascade import Cascade
    from mos_studio.core.matting import matte_result

    rgb, coarse, models = _refine_files(tmp_path, layer)
    mos_client.run_bridge(
        {"mode": "refine", "image": str(tmp_path / "layer.rgb"), "format": "rgb8", "width": W, "height": H,
         "mask": str(tmp_path / "coarse.y8"), "output": str(tmp_path / "out.y8"), "soft": True},
        _config(models), workdir=str(tmp_path),
    )
    got = np.frombuffer((tmp_path / "out.y8").read_bytes(), np.uint8).reshape(H, W).astype(int)
    res = Cascade.from_pretrained(models, device="cpu", stages="H")(rgb, mask=coarse)
    matte = matte_result(rgb, res)
    assert matte.soft and np.array_equal(got, matte.alpha_u8)
    assert ((got > 0) & (got < 255)).sum() > 100


def test_refine_rough_is_the_cascades_rough_refine(tmp_path, layer):
    """The dialog's "Rough selection" reaches the cascade as refine_rough, with L loaded (a rough selection is cut
    out again inside its box); off, the card's careful refine by H alone runs."""
    from mos_studio.core.cascade import Cascade

    rgb, coarse, models = _refine_files(tmp_path, layer)
    cascade = Cascade.from_pretrained(models, device="cpu")
    for rough in (False, True):
        out = tmp_path / f"out_{rough}.y8"
        reply = mos_client.run_bridge(
            {"mode": "refine", "image": str(tmp_path / "layer.rgb"), "format": "rgb8", "width": W, "height": H,
             "mask": str(tmp_path / "coarse.y8"), "output": str(out), "rough": rough},
            _config(models), workdir=str(tmp_path),
        )
        got = np.frombuffer(out.read_bytes(), np.uint8).reshape(H, W) > 0
        cascade.config.refine_rough = rough
        assert np.array_equal(got, cascade(rgb, mask=coarse).mask), rough
        # "changed": the pixels that crossed the given mask's 0.5 cut (the plug-in says so when there are none).
        assert reply["changed"] == int((got != (coarse > 0.5)).sum()), rough
    with pytest.raises(RequestError, match="'rough' must be true or false"):
        Request.from_json(json.dumps({"mode": "refine", "image": "a", "output": "b", "width": 1, "height": 1,
                                      "mask": "c", "rough": 1}))


def test_missing_weights_say_what_to_do(tmp_path, layer):
    (tmp_path / "layer.rgba").write_bytes(layer.tobytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(mos_client.BridgeError) as info:
        mos_client.run_bridge(
            {"mode": "select", "image": str(tmp_path / "layer.rgba"), "width": W, "height": H,
             "output": str(tmp_path / "m.y8")},
            _config(empty), workdir=str(tmp_path),
        )
    assert info.value.kind == "weights"
    assert str(empty) in info.value.message and "weights file missing" in info.value.message
    assert not (tmp_path / "m.y8").exists()


def test_missing_python_or_package_is_a_setup_error(tmp_path, models):
    with pytest.raises(mos_client.BridgeError, match="mos install-gimp-plugin") as info:
        mos_client.run_bridge({"mode": "select"}, _config(models, "/nonexistent/python"), workdir=str(tmp_path))
    assert info.value.kind == "setup"
    # A Python without mos_studio (the interpreter itself, isolated from the venv's site-packages).
    base = Path(sys.base_prefix) / "bin" / Path(sys.executable).name
    lacks_package = base.is_file() and subprocess.run(
        [str(base), "-c", "import mos_studio"], cwd=tmp_path, capture_output=True
    ).returncode != 0
    if lacks_package:
        with pytest.raises(mos_client.BridgeError, match="no mos_studio package"):
            mos_client.run_bridge({"mode": "select", "image": "x", "width": 1, "height": 1, "output": "y"},
                                  _config(models, str(base)), workdir=str(tmp_path))


def test_cancel_and_closed_stdin_stop_the_bridge(tmp_path, models, layer):
    (tmp_path / "layer.rgba").write_bytes(layer.tobytes())
    request = {"mode": "select", "image": str(tmp_path / "layer.rgba"), "width": W, "height": H,
               "output": str(tmp_path / "m.y8"), "models_dir": str(models), "device": "cpu"}
    # The plug-in died (or GIMP killed it): stdin closes right after the request.
    proc = subprocess.run([sys.executable, "-m", "mos_studio.bridge"], input=json.dumps(request) + "\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_CANCELLED
    assert json.loads(proc.stdout.strip().splitlines()[-1])["kind"] == "cancelled"
    assert not (tmp_path / "m.y8").exists()
    # The host asks to stop at the first progress report.
    with pytest.raises(mos_client.BridgeError) as info:
        mos_client.run_bridge(request, _config(models), lambda s, f: False, workdir=str(tmp_path))
    assert info.value.kind == "cancelled"


def test_bad_request_line_gets_an_error_reply():
    proc = subprocess.run([sys.executable, "-m", "mos_studio.bridge"], input='{"mode": "x"}\n',
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BAD_REQUEST
    reply = json.loads(proc.stdout)
    assert reply["type"] == "error" and "mode" in reply["message"]


def test_paste_rows_clips_to_the_canvas():
    mask = bytes(range(12))  # 4×3
    out = mos_client.paste_rows(mask, 4, 3, -1, 1, 5, 3)
    grid = np.frombuffer(out, np.uint8).reshape(3, 5)
    assert grid[0].tolist() == [0] * 5
    assert grid[1].tolist() == [1, 2, 3, 0, 0]
    assert grid[2].tolist() == [5, 6, 7, 0, 0]
    assert mos_client.paste_rows(mask, 4, 3, 10, 10, 5, 3) == bytes(15)


def test_install_and_uninstall(tmp_path, models, capsys):
    gimp_dir = tmp_path / "GIMP" / "3.0"
    assert mos_main(["install-gimp-plugin", "--gimp-dir", str(gimp_dir), "--models-dir", str(models)]) == 0
    target = gimp_dir / "plug-ins" / "meticulous_select"
    main = target / "meticulous_select.py"
    assert main.is_file() and os.access(main, os.X_OK) and (target / "mos_client.py").is_file()
    config = json.loads((target / "mos_gimp_config.json").read_text())
    assert config["python"] == sys.executable and Path(config["models_dir"]) == models.resolve()
    assert mos_client.load_config(str(target))["python"] == sys.executable
    # Reinstalling over our own install is fine; the user's own folder is never replaced without --force.
    assert mos_main(["install-gimp-plugin", "--gimp-dir", str(gimp_dir), "--models-dir", str(models)]) == 0
    assert mos_main(["uninstall-gimp-plugin", "--gimp-dir", str(gimp_dir)]) == 0
    assert not target.exists()
    assert mos_main(["uninstall-gimp-plugin", "--gimp-dir", str(gimp_dir)]) == 0
    assert "nothing to remove" in capsys.readouterr().out

    target.mkdir(parents=True)
    (target / "meticulous_select.py").write_text("# the user's own file\n")
    assert mos_main(["install-gimp-plugin", "--gimp-dir", str(gimp_dir), "--models-dir", str(models)]) == 1
    assert mos_main(["uninstall-gimp-plugin", "--gimp-dir", str(gimp_dir)]) == 1
    assert (target / "meticulous_select.py").read_text() == "# the user's own file\n"
    assert "--force" in capsys.readouterr().err


def test_load_config_missing_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("MOS_PYTHON", raising=False)
    with pytest.raises(mos_client.BridgeError, match="mos install-gimp-plugin"):
        mos_client.load_config(str(tmp_path))
    monkeypatch.setenv("MOS_PYTHON", sys.executable)
    monkeypatch.setenv("MOS_MODELS_DIR", "/somewhere")
    cfg = mos_client.load_config(str(tmp_path))
    assert cfg["python"] == sys.executable and cfg["models_dir"] == "/somewhere"


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {}, ".config/GIMP/3.0"),
        ("linux", {"XDG_CONFIG_HOME": "/x"}, "/x/GIMP/3.0"),
        ("win32", {"APPDATA": "C:/Users/u/AppData/Roaming"}, "C:/Users/u/AppData/Roaming/GIMP/3.0"),
        ("darwin", {}, "Library/Application Support/GIMP/3.0"),
        ("linux", {"GIMP3_DIRECTORY": "/custom"}, "/custom"),
    ],
)
def test_default_gimp_dir_per_platform(tmp_path, platform, env, expected):
    got = gimp_cli.default_gimp_dir(platform, env, home=tmp_path).as_posix()
    assert got.endswith(expected)


def test_install_refuses_missing_python(tmp_path, models):
    with pytest.raises(MosError, match="no such Python"):
        gimp_cli._run_install(
            type("A", (), {"gimp_dir": str(tmp_path), "models_dir": str(models), "python": "/nope/python",
                           "encoder": "mobilenetv3", "device": None, "force": False})()
        )


def test_file_request_with_unreadable_image_names_the_file(tmp_path, models):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(mos_client.BridgeError) as info:
        mos_client.run_bridge({"mode": "select", "image": str(bad), "format": "file", "output": str(tmp_path / "o")},
                              _config(models), workdir=str(tmp_path))
    assert info.value.kind == "input" and str(bad) in info.value.message


def _bridge_select(tmp_path: Path, rgb: np.ndarray, models: Path, **fields) -> np.ndarray:
    """The bridge's select of an RGB array, as the plug-in sends it, with extra request fields; the mask as bool."""
    h, w = rgb.shape[:2]
    (tmp_path / "photo.rgb").write_bytes(np.ascontiguousarray(rgb).tobytes())
    out = tmp_path / "out.y8"
    mos_client.run_bridge(
        {"mode": "select", "image": str(tmp_path / "photo.rgb"), "format": "rgb8", "width": w, "height": h,
         "output": str(out), **fields},
        _config(models), workdir=str(tmp_path),
    )
    return np.frombuffer(out.read_bytes(), np.uint8).reshape(h, w) > 0


def test_select_colour_assist_is_the_cascade_with_the_colour_model(tmp_path):
    """The dialog's "Decide unsure edges by colour": on `make run`'s cup the bridge's cut is the shipped cascade's
    with l_colour_mix 0.5 (off in L's card), not the plain one; a plain refine refuses the field (it never runs L)."""
    from PIL import Image

    from mos_studio.core.cascade import Cascade

    models = REPO / "models"
    rgb = np.ascontiguousarray(np.array(Image.open(REPO / "resources" / "samples" / "sample.jpg").convert("RGB")))
    got = _bridge_select(tmp_path, rgb, models, colour=True)
    cascade = Cascade.from_pretrained(models, device="cpu")
    plain = cascade(rgb).mask > 0
    cascade.config.l_colour_mix = 0.5
    assert np.array_equal(got, cascade(rgb).mask > 0)
    assert (got != plain).sum() > 1000
    base = {"image": "a", "output": "b", "width": 1, "height": 1, "mask": "m"}
    with pytest.raises(RequestError, match="'colour' is for mode 'select' or a rough refine"):
        Request.from_json(json.dumps({**base, "mode": "refine", "colour": True}))
    assert Request.from_json(json.dumps({**base, "mode": "refine", "rough": True, "colour": True})).colour
    with pytest.raises(RequestError, match="'colour' must be true or false"):
        Request.from_json(json.dumps({**base, "mode": "select", "colour": 1}))


def test_select_fine_detail_is_the_cascade_with_hs_crops(tmp_path):
    """The dialog's "Fine detail": on `make run`'s cup enlarged to 1200 px the bridge's cut is the shipped cascade's
    with H's crops on (off in H's card), not the plain one; a plain refine refuses the field."""
    from PIL import Image

    from mos_studio.core.cascade import Cascade

    models = REPO / "models"
    rgb = np.ascontiguousarray(np.array(Image.open(REPO / "resources" / "samples" / "sample.jpg").convert("RGB")
                                        .resize((1200, 800), Image.LANCZOS)))
    got = _bridge_select(tmp_path, rgb, models, fine=True)
    cascade = Cascade.from_pretrained(models, device="cpu")
    plain = cascade(rgb).mask > 0
    cascade.config.local_passes = True
    fine = cascade(rgb)
    assert fine.crops and np.array_equal(got, fine.mask > 0)
    assert (got != plain).sum() > 1000
    base = {"image": "a", "output": "b", "width": 1, "height": 1, "mask": "m"}
    with pytest.raises(RequestError, match="'fine' is for mode 'select' or a rough refine"):
        Request.from_json(json.dumps({**base, "mode": "refine", "fine": True}))
    assert Request.from_json(json.dumps({**base, "mode": "refine", "rough": True, "fine": True})).fine
    with pytest.raises(RequestError, match="'fine' must be true or false"):
        Request.from_json(json.dumps({**base, "mode": "select", "fine": "yes"}))
