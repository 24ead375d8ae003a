"""`python -m training.soup`: the weighted average of a shipped file and a checkpoint, its card, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mos_studio.cli.main import main as cli_main
from mos_studio.core.cascade import Cascade
from mos_studio.core.model import MeticulousNet
from mos_studio.core.weights import load_model, save_weights
from training.soup import main as soup_main
from training.soup import parse_weights, soup
from training.train import CKPT_FORMAT, MosError


def _checkpoint(path: Path, model: MeticulousNet, stage: str, step: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CKPT_FORMAT, "stage": stage, "model_config": model.config(), "model": model.state_dict(),
                "step": step, "command": f"python -m training.train --stage {stage} (run {path.parent.name})",
                "config": {"name": path.parent.name, "data": {"size": 64}, "train": {"iterations": step}},
                "training_data": [f"data/{path.parent.name} (3 image/mask pairs)"], "metrics": {"iou": 0.5},
                "hardware": "CPU test"}, path)
    return path


def _models(seed: int, in_channels: int = 3) -> MeticulousNet:
    torch.manual_seed(seed)
    model = MeticulousNet(encoder="mobilenetv3", in_channels=in_channels)
    for m in model.modules():  # non-trivial BatchNorm statistics, so averaging them is checked too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_soup_of_shipped_weights_and_a_checkpoint(tmp_path, capsys) -> None:
    base, tuned = _models(0), _models(1)
    start = save_weights(base, tmp_path / "ship" / "meticulousnet_mobile_L.safetensors",
                         {"stage": "L", "command": "python -m training.train (the start)", "inference": {"l_size": 64},
                          "training_data": ["data/start (5 image/mask pairs)"],
                          "previous_runs": [{"command": "an older run"}]}, fp16=True)
    ckpt = _checkpoint(tmp_path / "tuned" / "last.pt", tuned, "L", 40)
    out = tmp_path / "models"
    rc = soup_main([str(start), str(ckpt), "--stage", "L", "--weights", "0.25,0.75", "--out", str(out), "--l-flip",
                    "--notes", "half way"])
    assert rc == 0
    path = out / "meticulousnet_mobile_L.safetensors"
    card = json.loads(path.with_suffix(".json").read_text())
    assert [m["weight"] for m in card["soup"]] == [0.25, 0.75]
    assert card["soup"][0]["source"] == str(start) and card["soup"][1]["iterations"] == 40
    assert card["soup"][1]["config_name"] == "tuned" and len(card["soup"][0]["sha256"]) == 64
    assert card["training_data"] == ["data/start (5 image/mask pairs)", "data/tuned (3 image/mask pairs)"]
    assert card["previous_runs"] == [{"command": "an older run"}] and card["notes"] == "half way"
    assert card["inference"] == {"l_size": 64, "l_flip": True}
    assert card["command"].startswith("python -m training.soup ") and card["command"].endswith("--notes TEXT")

    got = load_model(path).state_dict()
    a, b = load_model(start).state_dict(), tuned.state_dict()
    checked = 0
    for key, value in got.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.25 * a[key] + 0.75 * b[key].float(), rtol=0, atol=1e-6)
            checked += 1
    assert checked > 100
    # It runs in the cascade like any shipped L (the H comes from a plain export of an H checkpoint).
    h = _models(2, in_channels=4)
    save_weights(h, out / "meticulousnet_mobile_H.safetensors", {"stage": "H"})
    cascade = Cascade.from_pretrained(out)
    assert cascade.config.l_size == 64 and cascade.config.l_flip
    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    assert cascade(image).mask.shape == (40, 56)
    # `mos info` says the file is an average, not a run of so many iterations.
    (out / "default.json").write_text(json.dumps({"L": "mobilenetv3", "H": "mobilenetv3"}))
    capsys.readouterr()
    assert cli_main(["info", "--models-dir", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("meticulousnet_mobile_L.safetensors  (default): ok" in ln and "weight average of 2 runs" in ln
               for ln in lines)
    assert any("meticulousnet_mobile_H.safetensors  (default): ok" in ln and "iterations" in ln for ln in lines)

    # A soup of that soup keeps the first soup's inputs in its card: the whole lineage, not only the last step.
    again = soup([path, ckpt], "L", tmp_path / "again", weights=[0.5, 0.5])
    card2 = json.loads(again.with_suffix(".json").read_text())
    assert [m["weight"] for m in card2["soup"][0]["soup"]] == [0.25, 0.75]
    assert card2["soup"][0]["soup"][1]["config_name"] == "tuned" and "soup" not in card2["soup"][1]
    assert card2["inference"] == {"l_size": 64, "l_flip": True}  # the first card's settings, kept without --l-flip


def test_soup_keeps_the_shipped_cards_inference_settings(tmp_path) -> None:
    """The cascade reads L's second look and H's refine guards from the card; a soup that replaces it keeps them."""
    l_settings = {"l_size": 64, "l_flip": True, "l_zoom": True, "l_zoom_margin": 0.15, "l_zoom_mix": 0.25}
    start = save_weights(_models(0), tmp_path / "ship" / "meticulousnet_mobile_L.safetensors",
                         {"stage": "L", "inference": l_settings}, fp16=True)
    ckpt = _checkpoint(tmp_path / "tuned" / "last.pt", _models(1), "L", 40)
    path = soup([start, ckpt], "L", tmp_path / "models")
    assert json.loads(path.with_suffix(".json").read_text())["inference"] == l_settings
    h_settings = {"refine_flip": True, "refine_min_change": 5, "local_passes": False}
    h_start = save_weights(_models(2, in_channels=4), tmp_path / "ship" / "meticulousnet_mobile_H.safetensors",
                           {"stage": "H", "inference": h_settings}, fp16=True)
    h_ckpt = _checkpoint(tmp_path / "tunedH" / "last.pt", _models(3, in_channels=4), "H", 20)
    h_path = soup([h_ckpt, h_start], "H", tmp_path / "models")
    assert json.loads(h_path.with_suffix(".json").read_text())["inference"] == h_settings
    # the small-photo H runs with the large-photo H's settings: a soup of it started from an H card holds none
    hs_path = soup([h_start, h_ckpt], "Hs", tmp_path / "models")
    assert "inference" not in json.loads(hs_path.with_suffix(".json").read_text())
    (tmp_path / "models" / "default.json").write_text(json.dumps({"L": "mobilenetv3", "H": "mobilenetv3"}))
    cascade = Cascade.from_pretrained(tmp_path / "models")
    assert cascade.config.l_zoom and cascade.config.l_zoom_mix == 0.25 and cascade.config.refine_min_change == 5


def test_soup_refusals(tmp_path, capsys) -> None:
    ck_l = _checkpoint(tmp_path / "a" / "last.pt", _models(0), "L", 5)
    ck_l2 = _checkpoint(tmp_path / "b" / "last.pt", _models(1), "L", 5)
    ck_h = _checkpoint(tmp_path / "h" / "last.pt", _models(2, in_channels=4), "H", 5)
    out = tmp_path / "out"
    with pytest.raises(MosError, match="holds a stage-H model, not L"):
        soup([ck_l, ck_h], "L", out)
    with pytest.raises(MosError, match="2 inputs"):
        soup([ck_l, ck_l2], "L", out, weights=[1.0])
    with pytest.raises(MosError, match="sum to 1"):
        soup([ck_l, ck_l2], "L", out, weights=[0.9, 0.9])
    with pytest.raises(MosError, match="at least two inputs"):
        soup([ck_l], "L", out)
    with pytest.raises(MosError, match="architecture differs"):
        other = MeticulousNet(encoder="mobilenetv3", in_channels=3, point_fraction=0.2)
        soup([ck_l, _checkpoint(tmp_path / "c" / "last.pt", other, "L", 5)], "L", out)
    for text, says in (("0.5", "1 numbers for 2 inputs"), ("0.7,0.7", "sum to 1"), ("a,b", "not a comma"),
                       ("1.5,-0.5", "positive")):
        with pytest.raises(MosError, match=says):
            parse_weights(text, 2)
    assert parse_weights(None, 4) == [0.25] * 4
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert soup_main([str(ck_l), str(bad), "--stage", "L", "--out", str(out)]) == 2
    assert f"{bad}: neither shipped safetensors nor a readable training checkpoint" in capsys.readouterr().err
    assert soup_main([str(ck_l), str(ck_l2), "--stage", "L", "--out", str(out)]) == 0
    assert soup_main([str(ck_l), str(ck_l2), "--stage", "L", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert not list(out.glob("*.tmp"))
