"""Weights: safetensors + model card round trip; missing or corrupt files fail clearly, never random weights."""

import json

import numpy as np
import pytest
import torch

from mos_studio.core.cascade import Cascade
from mos_studio.core.errors import WeightsError
from mos_studio.core.testing import tiny_models, write_tiny_models
from mos_studio.core.weights import describe_models, load_model, save_weights, weights_path


def test_round_trip_identical_outputs(tmp_path):
    low, _ = tiny_models(3)
    path = save_weights(low, tmp_path / "m.safetensors", {"iterations": 7})
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["stage"] == "L" and card["iterations"] == 7 and len(card["sha256"]) == 64
    loaded = load_model(path)
    x = torch.rand(1, 3, 40, 48)
    with torch.inference_mode():
        assert torch.equal(low(x).logits, loaded(x).logits)


def test_saved_weights_get_the_usual_file_permissions(tmp_path):
    import os

    low, _ = tiny_models(3)
    old = os.umask(0o022)
    try:
        path = save_weights(low, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_fp16_storage_loads_as_float32(tmp_path):
    low, _ = tiny_models(0)
    path = save_weights(low, tmp_path / "h.safetensors", fp16=True)
    loaded = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(WeightsError, match="meticulousnet_mobile_L.safetensors: weights file missing"):
        Cascade.from_pretrained(tmp_path)


def test_corrupt_weights_fail_clearly(tmp_path):
    write_tiny_models(tmp_path)
    path = weights_path(tmp_path, "mobilenetv3", "H")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        Cascade.from_pretrained(tmp_path)
    path.write_bytes(b"not a safetensors file")
    card = json.loads(path.with_suffix(".json").read_text())
    import hashlib

    card["sha256"] = hashlib.sha256(b"not a safetensors file").hexdigest()
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(path)
    rows = {(r["encoder"], r["stage"]): r for r in describe_models(tmp_path)}
    assert rows[("mobilenetv3", "L")]["ok"] is True
    assert rows[("resnet50", "L")]["found"] is False


def test_tiny_models_deterministic(tmp_path):
    write_tiny_models(tmp_path / "a", seed=1)
    write_tiny_models(tmp_path / "b", seed=1)
    a = (tmp_path / "a" / "meticulousnet_mobile_H.safetensors").read_bytes()
    b = (tmp_path / "b" / "meticulousnet_mobile_H.safetensors").read_bytes()
    assert a == b
    c = Cascade.from_pretrained(tmp_path / "a", device="cpu")
    res = c(np.zeros((64, 64, 3), np.uint8))
    assert res.mask.shape == (64, 64)


def test_cascade_runs_l_at_the_size_its_card_names(tmp_path):
    """A card's `inference.l_size` (the L training size) sets the cascade's L input unless a config is given."""
    write_tiny_models(tmp_path)
    assert Cascade.from_pretrained(tmp_path, device="cpu").config.l_size == 336  # no entry: the paper's size
    lpath = weights_path(tmp_path, "mobilenetv3", "L")
    card_file = lpath.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["inference"] = {"l_size": 224, "l_flip": True}
    card_file.write_text(json.dumps(card))
    cascade = Cascade.from_pretrained(tmp_path, device="cpu")
    assert cascade.config.l_size == 224 and cascade.config.l_flip
    cascade.config.l_flip = False
    seen = []
    orig = cascade._forward
    cascade._forward = lambda model, x, mask=None: (seen.append(x.shape), orig(model, x, mask))[1]
    cascade.run_low(np.zeros((300, 400, 3), np.uint8))
    assert seen == [(224, 224, 3)]
    from mos_studio.core.cascade import CascadeConfig

    assert Cascade.from_pretrained(tmp_path, device="cpu", config=CascadeConfig(l_size=160)).config.l_size == 160
    # `inference.l_aspect`: L sees the photo at its own shape, long side l_size, both orientations.
    card["inference"] = {"l_size": 224, "l_aspect": True}
    card_file.write_text(json.dumps(card))
    cascade = Cascade.from_pretrained(tmp_path, device="cpu")
    assert cascade.config.l_aspect and not cascade.config.l_flip
    seen.clear()
    own = cascade._forward
    cascade._forward = lambda model, x, mask=None: (seen.append(x.shape), own(model, x, mask))[1]
    probs = [cascade.run_low(np.zeros(shape, np.uint8))[0] for shape in ((300, 400, 3), (400, 300, 3), (20, 900, 3))]
    assert seen == [(168, 224, 3), (224, 168, 3), (32, 224, 3)]  # a strip keeps a short side L can still read
    assert [p.shape for p in probs] == [(300, 400), (400, 300), (20, 900)]
    card["inference"] = {"l_aspect": "yes"}  # not a JSON bool: ignored, the paper's square input stays
    card_file.write_text(json.dumps(card))
    assert not Cascade.from_pretrained(tmp_path, device="cpu").config.l_aspect
    # `inference.l_blend`: L runs on the square input and on the photo's own shape (short side l_size, long side
    # at most 4/3 of it, multiples of 32), and the two probabilities are averaged at the photo's size.
    card["inference"] = {"l_size": 224, "l_blend": True}
    card_file.write_text(json.dumps(card))
    cascade = Cascade.from_pretrained(tmp_path, device="cpu")
    assert cascade.config.l_blend and not cascade.config.l_aspect
    seen.clear()
    got: list[np.ndarray] = []
    blend = cascade._forward

    def record(model, x, mask=None):
        prob, maps = blend(model, x, mask)
        seen.append(x.shape)
        got.append(prob)
        return prob, maps

    cascade._forward = record
    rng = np.random.default_rng(0)
    probs = [cascade.run_low(rng.integers(0, 256, shape, dtype=np.uint8))[0]
             for shape in ((300, 400, 3), (400, 300, 3), (20, 900, 3))]
    assert seen == [(224, 224, 3), (224, 288, 3), (224, 224, 3), (288, 224, 3), (224, 224, 3), (32, 288, 3)]
    assert [p.shape for p in probs] == [(300, 400), (400, 300), (20, 900)]
    # The answer is the mean of the two passes, each brought back to the photo's size.
    from mos_studio.core.cascade import _resize

    want = 0.5 * (_resize(got[0], (400, 300), shrink_ok=False) + _resize(got[1], (400, 300), shrink_ok=False))
    assert np.allclose(probs[0], want, atol=1e-6) and not np.allclose(got[0].mean(), got[1].mean(), atol=1e-6)


def test_h_card_decides_crops_and_cut_can_override(tmp_path, crops_seen):
    """`inference.local_passes` in H's card turns the full-resolution crops off; `mos cut --crops` (or its other
    name, `--fine-detail`, the app's switch) turns them on."""
    from PIL import Image

    from mos_studio.cli.main import main

    write_tiny_models(tmp_path / "m")
    assert Cascade.from_pretrained(tmp_path / "m", device="cpu").config.local_passes  # no entry: the paper's crops
    hpath = weights_path(tmp_path / "m", "mobilenetv3", "H")
    card = json.loads(hpath.with_suffix(".json").read_text())
    card["inference"] = {"local_passes": False}
    hpath.with_suffix(".json").write_text(json.dumps(card))
    cascade = Cascade.from_pretrained(tmp_path / "m", device="cpu")
    img = (np.random.default_rng(0).random((700, 900, 3)) * 255).astype(np.uint8)
    assert not cascade.config.local_passes and cascade(img).crops == []
    cascade.config.local_passes = True
    assert cascade(img).crops  # the same photo is big enough for crops when they are on
    Image.fromarray(img).save(tmp_path / "p.png")
    seen = crops_seen
    for flag, expect in (([], False), (["--crops"], True), (["--no-crops"], False), (["--fine-detail"], True),
                         (["--no-fine-detail"], False)):
        seen.clear()
        assert main(["cut", str(tmp_path / "p.png"), "-o", str(tmp_path / f"o{''.join(flag)}"),
                     "--models-dir", str(tmp_path / "m"), "--export", "mask", "--alpha", "hard", *flag]) == 0
        assert seen == [expect]


def test_small_photo_h_is_optional_verified_and_loaded_only_with_l(tmp_path):
    """A folder may ship H's small-photo weights (stage "Hs", H's encoder): loaded for "LH" when present, listed
    by `mos info` only then, and refused like any other weights file when it does not match its card."""
    write_tiny_models(tmp_path)
    assert Cascade.from_pretrained(tmp_path, device="cpu").h_small_model is None
    assert all(r["stage"] != "Hs" for r in describe_models(tmp_path))
    _, small_h = tiny_models(3)
    path = save_weights(small_h, weights_path(tmp_path, "default", "Hs"), {"stage": "Hs"})
    assert path.name == "meticulousnet_mobile_Hs.safetensors"
    c = Cascade.from_pretrained(tmp_path, device="cpu")
    assert c.h_small_model is not None and c.model_paths["Hs"] == path
    assert Cascade.from_pretrained(tmp_path, device="cpu", stages="H").h_small_model is None  # refine needs no Hs
    rows = {(r["encoder"], r["stage"]): r for r in describe_models(tmp_path)}
    assert rows[("mobilenetv3", "Hs")]["ok"] is True and rows[("mobilenetv3", "Hs")]["default"] is True
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="meticulousnet_mobile_Hs.safetensors: checksum mismatch"):
        Cascade.from_pretrained(tmp_path, device="cpu")
    with pytest.raises(WeightsError, match="unknown stage 'X'"):
        weights_path(tmp_path, "default", "X")


def test_l_zoom_takes_a_closer_second_look_at_its_own_answer(tmp_path):
    """`inference.l_zoom`: L runs again on the box around its first answer (widened by l_zoom_margin), and inside
    that box the two answers are mixed with l_zoom_mix; no second pass when the box is most of the photo."""
    from mos_studio.core.cascade import _resize

    write_tiny_models(tmp_path)
    card_file = weights_path(tmp_path, "mobilenetv3", "L").with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["inference"] = {"l_size": 64, "l_zoom": True, "l_zoom_margin": 0.25, "l_zoom_max": 0.5,
                         "l_zoom_mix": 0.5}
    card_file.write_text(json.dumps(card))
    cascade = Cascade.from_pretrained(tmp_path, device="cpu")
    cfg = cascade.config
    assert cfg.l_zoom and (cfg.l_zoom_margin, cfg.l_zoom_max, cfg.l_zoom_mix) == (0.25, 0.5, 0.5)
    # The box: the answer's bounding box, widened by a quarter of its long side, clipped to the photo.
    prob = np.zeros((200, 300), np.float32)
    prob[40:80, 100:180] = 0.9
    assert cascade.zoom_box(prob) == (80, 20, 200, 100)
    prob[:, :] = 0.9  # the whole photo: nothing to zoom into
    assert cascade.zoom_box(prob) is None
    assert cascade.zoom_box(np.zeros((200, 300), np.float32)) is None  # nothing found

    # The second pass sees the crop (squashed to L's square), and only the box changes.
    first = np.zeros((200, 300), np.float32)
    first[40:80, 100:180] = 0.9
    near = np.full((64, 64), 0.3, np.float32)
    seen = []

    def fake(model, x, mask=None, stages=True):
        seen.append(x.copy())
        return (_resize(first, (64, 64)) if len(seen) == 1 else near), []

    cascade._forward = fake
    rgb = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    out, _ = cascade.run_low(rgb)
    whole = _resize(_resize(first, (64, 64)), (300, 200), shrink_ok=False)
    x0, y0, x1, y1 = cascade.zoom_box(whole)
    assert abs(x0 - 80) + abs(y0 - 20) + abs(x1 - 200) + abs(y1 - 100) <= 12  # a pixel or so of upsampling blur
    assert len(seen) == 2 and seen[1].shape == (64, 64, 3) and cascade.last_zoom_box == (x0, y0, x1, y1)
    assert np.array_equal(seen[1], _resize(rgb[y0:y1, x0:x1], (64, 64)))
    assert np.allclose(out[y0:y1, x0:x1], 0.5 * whole[y0:y1, x0:x1] + 0.5 * 0.3, atol=1e-5)
    outside = np.ones((200, 300), bool)
    outside[y0:y1, x0:x1] = False
    assert np.allclose(out[outside], whole[outside])
    # Card values out of range are ignored: the defaults stay.
    card["inference"] = {"l_zoom": True, "l_zoom_mix": 1.5, "l_zoom_max": "half", "l_zoom_margin": -0.1}
    card_file.write_text(json.dumps(card))
    cfg = Cascade.from_pretrained(tmp_path, device="cpu").config
    assert cfg.l_zoom and (cfg.l_zoom_margin, cfg.l_zoom_max, cfg.l_zoom_mix) == (0.15, 0.8, 0.5)


def test_h_card_refine_skip_acts_on_whole_mask_refines_only(tmp_path):
    """`inference.refine_skip` in H's card: a whole-mask refine runs a copy of H with the residual skip (so a right
    mask needs H to be sure before it moves); a cut and a region re-refine run H as it is; H itself is untouched."""
    write_tiny_models(tmp_path / "m")
    hpath = weights_path(tmp_path / "m", "mobilenetv3", "H")
    card = json.loads(hpath.with_suffix(".json").read_text())
    card["inference"] = {"refine_skip": 1.0, "refine_confidence": 0.5}  # every change passes: H's own answer
    hpath.with_suffix(".json").write_text(json.dumps(card))
    skip = Cascade.from_pretrained(tmp_path / "m", device="cpu")
    assert skip.config.refine_skip == 1.0
    card["inference"] = {"refine_confidence": 0.5}
    hpath.with_suffix(".json").write_text(json.dumps(card))
    plain = Cascade.from_pretrained(tmp_path / "m", device="cpu")
    assert plain.config.refine_skip == 0.0
    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    given = np.zeros((96, 128), np.float32)
    given[20:70, 30:100] = 1.0
    a, b = plain(img, mask=given), skip(img, mask=given)
    # The tiny random H hovers near 0.5 and redraws the edge band at will; the skip (±3.9 at a sure mask) keeps it.
    wrong_plain, wrong_skip = (a.mask != (given > 0.5)).mean(), (b.mask != (given > 0.5)).mean()
    assert wrong_plain > 0.01 and wrong_skip < wrong_plain / 10
    assert skip.h_model.mask_skip == 0.0 and skip._skip_h is not None and skip._skip_h.mask_skip == 1.0
    np.testing.assert_array_equal(plain(img).probability, skip(img).probability)  # a cut: H as it is
    roi = (10, 10, 90, 80)
    np.testing.assert_array_equal(plain(img, mask=given, roi=roi).probability,
                                  skip(img, mask=given, roi=roi).probability)
    # A mask the user calls rough, refined by H alone (no re-cut): no skip, and the rough guard (here the same 0.5)
    # instead of the card's.
    skip.config.refine_rough, skip.config.refine_rough_confidence, skip.config.refine_rough_cut = True, 0.5, False
    np.testing.assert_array_equal(skip(img, mask=given).probability, a.probability)


def test_h_card_may_set_the_rough_refines_cut(tmp_path):
    """`inference.refine_rough_*` in H's card set the rough refine's cut (values out of range or of the wrong type
    are ignored, CascadeConfig's stand); no entry keeps the defaults."""
    write_tiny_models(tmp_path / "m")
    default = Cascade.from_pretrained(tmp_path / "m", device="cpu").config
    hpath = weights_path(tmp_path / "m", "mobilenetv3", "H")
    card = json.loads(hpath.with_suffix(".json").read_text())
    card["inference"] = {"refine_rough_cut": False, "refine_rough_pad": 0.05, "refine_rough_band": 0.01,
                         "refine_rough_mix": 0.7, "refine_rough_clear": 0.2, "refine_rough_min_keep": 0.1,
                         "refine_rough_box_fill": 0.9}
    hpath.with_suffix(".json").write_text(json.dumps(card))
    cfg = Cascade.from_pretrained(tmp_path / "m", device="cpu").config
    assert (cfg.refine_rough_cut, cfg.refine_rough_pad, cfg.refine_rough_band, cfg.refine_rough_mix,
            cfg.refine_rough_clear, cfg.refine_rough_min_keep, cfg.refine_rough_box_fill) == (
        False, 0.05, 0.01, 0.7, 0.2, 0.1, 0.9)
    card["inference"] = {"refine_rough_cut": 1, "refine_rough_mix": 1.5, "refine_rough_band": "2%",
                         "refine_rough_clear": -0.1}
    hpath.with_suffix(".json").write_text(json.dumps(card))
    cfg = Cascade.from_pretrained(tmp_path / "m", device="cpu").config
    assert (cfg.refine_rough_cut, cfg.refine_rough_mix, cfg.refine_rough_band, cfg.refine_rough_clear) == (
        default.refine_rough_cut, default.refine_rough_mix, default.refine_rough_band, default.refine_rough_clear)
