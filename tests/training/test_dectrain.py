"""training.dectrain: the shipped L's encoder cached, its decoder trained on the cache, exported with a full card."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from mos_studio.core.weights import load_model, read_card, save_weights, sha256_file, weights_path
from training import dectrain


def test_cache_train_export_keeps_the_encoder_and_changes_the_decoder(tmp_path, disc_source) -> None:
    init = weights_path(None, "default", "L")
    a = disc_source(tmp_path / "a", 3, 0)
    b = disc_source(tmp_path / "b", 2, 1)
    cache = dectrain.build_cache(tmp_path / "cache", [f"pool:3:{a}::1", f"real:1:{b}"], init, size=64, batch=4,
                                 log=lambda *_: None)
    meta = json.loads((cache / "meta.json").read_text())
    # 3 photos plain/mirrored/box + 2 photos plain/mirrored
    assert [it["kind"] for it in meta["items"]] == ["plain", "flip", "zoom"] * 3 + ["plain", "flip"] * 2
    f8 = np.load(cache / "f8.npy")
    gt = np.load(cache / "gt.npy")
    assert f8.dtype == np.float16 and f8.shape[0] == 13 and gt.shape == (13, 64, 64)
    assert np.abs(gt[0].astype(int) - gt[1, :, ::-1].astype(int)).max() <= 1  # the mirrored view is mirrored
    # The cached features are the encoder's, as L computes them at inference.
    model = load_model(init)
    img = cv2.cvtColor(cv2.imread(str(a / "images" / "p0.jpg")), cv2.COLOR_BGR2RGB)
    x = torch.from_numpy(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        want = model.encoder((x - model.mean) / model.std).f8[0].numpy()
    assert np.allclose(f8[0].astype(np.float32), want, atol=2e-2 * np.abs(want).max())

    with pytest.raises(dectrain.MosError, match="already holds a cache"):
        dectrain.build_cache(cache, [f"pool:3:{a}"], init, size=64)

    run = tmp_path / "run"
    assert dectrain.main(["train", str(run), "600", str(cache), "--init", str(init), "--batch", "4",
                          "--max-steps", "2", "--scale", "real=2", "--threads", "1"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    info = json.loads((run / "run.json").read_text())
    assert info["scale"] == {"real": 2.0} and info["init_sha256"] == sha256_file(init)
    assert info["command"].startswith("python -m training.dectrain train ")
    # Hard-example weighting: the start's error on each view is measured once, kept, and recorded in the run.
    hard_run = tmp_path / "hard"
    assert dectrain.main(["train", str(hard_run), "600", str(cache), "--init", str(init), "--batch", "4",
                          "--max-steps", "1", "--hard", "1", "--threads", "1"]) == 0
    errors = np.load(hard_run / "errors.npy")
    assert errors.shape == (13,) and np.all((errors >= 0) & (errors <= 1))
    assert json.loads((hard_run / "run.json").read_text())["hard"] == 1.0
    # Resumes where it stopped.
    dectrain.train(run, 600, [cache], init, batch=4, max_steps=3, log=lambda *_: None)
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3

    out = tmp_path / "out"
    assert dectrain.main(["export", str(run / "last.pt"), "--init", str(init), "--out", str(out), "--fp16",
                          "--notes", "a test"]) == 0
    path = out / init.name
    card = read_card(path)
    base = read_card(init)
    assert card["iterations"] == 3 and card["dtype"] == "float16" and card["notes"] == "a test"
    assert card["inference"] == base["inference"]  # the cascade runs it as it ran the start
    assert card["initialised_from"]["sha256"] == sha256_file(init)
    # The start's own run closes the lineage, after the runs before it.
    assert card["previous_runs"][:-1] == base.get("previous_runs", [])
    assert card["previous_runs"][-1]["sha256"] == sha256_file(init)
    assert card["previous_runs"][-1]["command"] == base["command"]
    assert any("9 cached views of pool" in d for d in card["training_data"])
    assert any("4 cached views of real" in d for d in card["training_data"])
    new, old = load_model(path).state_dict(), load_model(init).state_dict()
    enc = [k for k in old if k.startswith("encoder.")]
    assert enc and all(torch.equal(new[k], old[k]) for k in enc)
    assert any(not torch.equal(new[k], old[k]) for k in old if not k.startswith("encoder."))
    with pytest.raises(dectrain.MosError, match="already exists"):
        dectrain.export(run / "last.pt", init, out)


def test_hard_sampling_keeps_each_source_share_and_favours_the_views_l_gets_wrong() -> None:
    names = ["pool"] * 4 + ["real"] * 2
    weights = {"pool": 3.0, "real": 1.0}
    errors = np.array([0.0, 0.1, 0.5, 0.9, 0.2, 0.2])
    p = dectrain.hard_sampling(names, weights, errors, 1.0)
    assert p[:4].sum() == pytest.approx(0.75) and p[4:].sum() == pytest.approx(0.25)
    assert p[0] > 0 and p[0] < p[1] < p[2] < p[3]
    assert p[4] == pytest.approx(p[5])  # equal errors, equal chances
    assert np.allclose(dectrain.hard_sampling(names, weights, errors, 0.0), dectrain.sampling(names, weights))
    with pytest.raises(dectrain.MosError, match="5 view errors for 6 views"):
        dectrain.hard_sampling(names, weights, errors[:5], 1.0)


def test_refusals_name_the_file(tmp_path, capsys) -> None:
    init = weights_path(None, "default", "L")
    empty = tmp_path / "empty"
    assert dectrain.main(["cache", str(tmp_path / "c"), f"x:1:{empty}", "--init", str(init)]) == 2
    assert f"{empty / 'images'}: not a folder" in capsys.readouterr().err
    assert dectrain.main(["cache", str(tmp_path / "c"), "x:heavy:/tmp", "--init", str(init)]) == 2
    assert "WEIGHT must be a number" in capsys.readouterr().err
    assert dectrain.main(["train", str(tmp_path / "r"), "60", str(empty), "--init", str(init)]) == 2
    assert f"{empty}: not a feature cache" in capsys.readouterr().err
    assert dectrain.main(["export", str(tmp_path / "nothing.pt"), "--init", str(init), "--out", str(tmp_path)]) == 2
    assert "nothing.pt: checkpoint not found" in capsys.readouterr().err
    assert dectrain.main(["train", str(tmp_path / "r"), "60", str(empty), "--init", str(init), "--hard", "-1"]) == 2
    assert "--hard -1: must be between 0" in capsys.readouterr().err
    with pytest.raises(dectrain.MosError, match="not NAME=FACTOR"):
        dectrain.parse_scale("humanseg:2")


def test_tuned_tail_trains_the_last_blocks_from_their_cached_input(tmp_path, disc_source) -> None:
    init = weights_path(None, "default", "L")
    a = disc_source(tmp_path / "a", 3, 0)
    cache = dectrain.build_cache(tmp_path / "cache", [f"pool:1:{a}::1"], init, size=64, batch=4, log=lambda *_: None)
    # The tap replays the cache's views (the random box crops included) and checks them against its features.
    assert dectrain.main(["tap", str(cache), "14", "--init", str(init), "--threads", "1"]) == 0
    tap = np.load(cache / "tap14.npy")
    model = load_model(init).eval()
    with torch.no_grad():
        x = model.encoder.stem(model.encoder_input(torch.zeros(1, 3, 64, 64)))
        for block in model.encoder.blocks[:14]:
            x = block(x)
        # Running blocks 14 on from the tap gives the cached f8.
        deep = torch.from_numpy(tap[:2].astype(np.float32))
        for block in model.encoder.blocks[14:]:
            deep = block(deep)
    assert tap.shape == (9, *x.shape[1:])
    f8 = np.load(cache / "f8.npy")[:2].astype(np.float32)
    assert np.allclose(deep.numpy(), f8, atol=3e-2 * np.abs(f8).max())
    with pytest.raises(dectrain.MosError, match="already exists"):
        dectrain.build_tap(cache, 14, init)

    run = tmp_path / "run"
    assert dectrain.main(["train", str(run), "600", str(cache), "--init", str(init), "--batch", "4",
                          "--max-steps", "2", "--tune", "14", "--tail-lr", "0.5", "--threads", "1"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["tune"] == 14 and info["tail_lr"] == 0.5
    out = tmp_path / "out"
    assert dectrain.main(["export", str(run / "last.pt"), "--init", str(init), "--out", str(out)]) == 0
    card = read_card(out / init.name)
    assert card["train_settings"]["trained"] == "decoder and encoder blocks 14 on"
    new, old = load_model(out / init.name).state_dict(), load_model(init).state_dict()
    head = [k for k in old if k.startswith("encoder.") and not k.startswith(("encoder.blocks.14.",
                                                                             "encoder.blocks.15."))]
    assert head and all(torch.equal(new[k], old[k]) for k in head)  # blocks before 14 and the stem as shipped
    tail_w = [k for k in old if k.startswith("encoder.blocks.15.") and k.endswith("weight") and "bn" not in k]
    assert tail_w and any(not torch.equal(new[k], old[k]) for k in tail_w)
    # The tuned blocks' BatchNorm statistics stay the shipped ones.
    stats = [k for k in old if k.startswith("encoder.blocks.1") and k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(new[k], old[k]) for k in stats)

    with pytest.raises(dectrain.MosError, match="tap15.npy: missing"):
        dectrain.train(tmp_path / "r2", 600, [cache], init, batch=4, max_steps=1, tune=15, log=lambda *_: None)
    with pytest.raises(dectrain.MosError, match="must start at a block between"):
        dectrain.build_tap(cache, 3, init)

    # A start whose tail was trained already may go on from the same cache with --tune 14 (blocks before 14 agree),
    # but not decoder-only: its f8 would no longer be the cached one.
    tuned = out / init.name
    dectrain.train(tmp_path / "r3", 600, [cache], tuned, batch=4, max_steps=1, tune=14, log=lambda *_: None)
    with pytest.raises(dectrain.MosError, match="its encoder differs from the one cache"):
        dectrain.train(tmp_path / "r4", 600, [cache], tuned, batch=4, max_steps=1, log=lambda *_: None)
    # A start whose early blocks differ is refused with --tune too, and so is exporting a run onto it.
    model = load_model(init)
    with torch.no_grad():
        next(model.encoder.blocks[3].parameters()).mul_(1.5)
    other = save_weights(model, tmp_path / "other" / init.name, read_card(init))
    with pytest.raises(dectrain.MosError, match=r"in \d+ tensors, e.g. encoder.blocks.3."):
        dectrain.train(tmp_path / "r5", 600, [cache], other, batch=4, max_steps=1, tune=14, log=lambda *_: None)
    with pytest.raises(dectrain.MosError, match="its encoder differs"):
        dectrain.export(run / "last.pt", other, tmp_path / "out5")
