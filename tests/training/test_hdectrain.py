"""training.hdectrain: H's encoder features of L's own answers cached, H's decoder trained on them and exported."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from mos_studio.core import Cascade
from mos_studio.core.weights import load_model, read_card, sha256_file, weights_path
from training import hdectrain
from training.data.sources import read_rgb


def test_cache_holds_what_h_sees_at_inference_and_a_trained_decoder_exports(tmp_path, disc_source) -> None:
    init = weights_path(None, "default", "Hs")
    a = disc_source(tmp_path / "a", 2, 0)
    b = disc_source(tmp_path / "b", 1, 1)
    cache = hdectrain.build_cache(tmp_path / "cache", [f"pool:3:{a}", f"real:1:{b}"], init, max_side=64,
                                  log=lambda *_: None)
    meta = json.loads((cache / "meta.json").read_text())
    assert [it["kind"] for it in meta["items"]] == ["plain", "flip"] * 3
    assert meta["l"]["sha256"] == sha256_file(weights_path(None, "default", "L"))
    assert all(it["size"] == [48, 64] for it in meta["items"])  # 90×120 shrunk to a long side of 64

    # L's answer is the shipped cascade's, shrunk to the view; the mirrored view is the plain one mirrored.
    rgb = read_rgb(a / "images" / "p0.jpg")
    want, _ = Cascade.from_pretrained(None).run_low(rgb)
    want = cv2.resize(want, (64, 48), interpolation=cv2.INTER_AREA)
    plain, flip = (np.load(cache / "views" / meta["items"][k]["file"]) for k in (0, 1))
    assert np.abs(plain["coarse"] / 255.0 - want).max() < 0.01
    assert np.array_equal(plain["coarse"][:, ::-1], flip["coarse"])
    assert plain["gt"].shape == (48, 64) and plain["gt"].max() == 255

    # The cached features are those H's encoder computes inside a real forward pass on that photo and mask.
    model = load_model(init).eval()
    seen = {}
    model.encoder.register_forward_hook(lambda m, i, o: seen.update(f=o))
    x = torch.from_numpy(cv2.resize(rgb, (64, 48), interpolation=cv2.INTER_AREA)).permute(2, 0, 1).float() / 255
    m = torch.from_numpy(plain["coarse"]).float()[None] / 255
    with torch.no_grad():
        model(torch.cat([x, m])[None])
    for k in ("f2", "f4", "f8"):
        got, ref = plain[k].astype(np.float32), getattr(seen["f"], k)[0].numpy()
        assert got.shape == ref.shape
        assert np.allclose(got, ref, atol=2e-2 * np.abs(ref).max(), rtol=0.02)

    with pytest.raises(hdectrain.MosError, match="already holds a cache"):
        hdectrain.build_cache(cache, [f"pool:3:{a}"], init)
    with pytest.raises(hdectrain.MosError, match="holds an L"):
        hdectrain.build_cache(tmp_path / "c2", [f"pool:3:{a}"], weights_path(None, "default", "L"))

    run = tmp_path / "run"
    assert hdectrain.main(["train", str(run), "600", str(cache), "--init", str(init), "--batch", "2",
                           "--max-steps", "2", "--threads", "1"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    hdectrain.train(run, 600, [cache], init, batch=2, max_steps=3, log=lambda *_: None)  # resumes
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3
    assert json.loads((run / "run.json").read_text())["command"].startswith("python -m training.hdectrain train ")

    out = tmp_path / "out"
    assert hdectrain.main(["export", str(run / "last.pt"), "--init", str(init), "--out", str(out)]) == 0
    path = out / init.name
    card, base = read_card(path), read_card(init)
    assert card["stage"] == "Hs" and card["used_for"] == base["used_for"] and card["iterations"] == 3
    assert "L's own answer" in card["train_settings"]["loss"]
    new, old = load_model(path).state_dict(), load_model(init).state_dict()
    enc = [k for k in old if k.startswith("encoder.")]
    assert enc and all(torch.equal(new[k], old[k]) for k in enc)  # the encoder is the start's, exactly
    assert any(not torch.equal(new[k], old[k]) for k in old if not k.startswith("encoder."))


def test_cache_rejects_a_missing_folder_and_an_empty_cache(tmp_path) -> None:
    init = weights_path(None, "default", "Hs")
    with pytest.raises(hdectrain.MosError, match="not a folder"):
        hdectrain.build_cache(tmp_path / "c", [f"x:1:{tmp_path / 'nowhere'}"], init)
    assert hdectrain.main(["train", str(tmp_path / "r"), "10", str(tmp_path / "nocache"), "--init", str(init)]) == 2


def test_a_decoder_trained_through_the_skip_exports_with_it(tmp_path, disc_source) -> None:
    init = weights_path(None, "default", "Hs")
    a = disc_source(tmp_path / "a", 2, 0)
    cache = hdectrain.build_cache(tmp_path / "cache", [f"pool:1:{a}"], init, max_side=64, log=lambda *_: None)
    runs = {}
    for skip in (0.0, 1.0):
        run = tmp_path / f"run{skip:g}"
        hdectrain.train(run, 600, [cache], init, batch=2, max_steps=1, skip=skip, log=lambda *_: None)
        runs[skip] = torch.load(run / "last.pt", weights_only=True)["model"]
    # Same batches, same start: the decoders differ only because the loss saw L's answer through the skip.
    assert any(not torch.equal(runs[0.0][k], runs[1.0][k]) for k in runs[0.0])
    assert json.loads((tmp_path / "run1" / "run.json").read_text())["skip"] == 1.0
    with pytest.raises(hdectrain.MosError, match="started with --skip 1"):  # resumed without the skip: refused
        hdectrain.train(tmp_path / "run1", 600, [cache], init, batch=2, max_steps=2, log=lambda *_: None)

    out = tmp_path / "out"
    assert hdectrain.main(["export", str(tmp_path / "run1" / "last.pt"), "--init", str(init), "--out", str(out)]) == 0
    assert load_model(out / init.name).mask_skip == 1.0  # the cascade runs it with the skip it was trained with
    assert read_card(out / init.name)["train_settings"]["skip"] == 1.0
    with pytest.raises(hdectrain.MosError, match="--skip 5"):
        hdectrain.train(tmp_path / "r5", 600, [cache], init, max_steps=1, skip=5.0, log=lambda *_: None)
