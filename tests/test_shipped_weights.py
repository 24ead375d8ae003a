"""The weights shipped in models/: complete cards, verified checksums, loaded by default, and a real cut-out.

These run the trained MobileNetV3 L and H (not test weights) on the bundled sample photo, so they also guard the
files themselves: a corrupt or swapped file, or a card that no longer says what the weights are, fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mos_studio.cli.main import main
from mos_studio.core import Cascade, load_image
from mos_studio.core.weights import find_models_dir, read_card, sha256_file, weights_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "samples" / "sample.jpg"


@pytest.fixture(autouse=True)
def default_models_dir(monkeypatch):
    monkeypatch.delenv("MOS_MODELS_DIR", raising=False)
    assert find_models_dir() == ROOT / "models"


@pytest.mark.parametrize("stage", ["L", "H"])
def test_cards_say_what_the_weights_are(stage):
    path = weights_path(None, "mobilenetv3", stage)
    card = read_card(path)
    assert card["sha256"] == sha256_file(path)
    assert card["stage"] == stage and card["encoder"] == "mobilenetv3" and card["dtype"] == "float16"
    assert 3_000_000 < card["parameters"] < 3_100_000
    assert card["iterations"] == card["scheduled_iterations"] > 0
    assert "training.train" in card["command"] and card["hardware"] and card["wall_time_s"] > 0
    assert {"iou", "mba", "mq"} <= set(card["metrics"])
    sources = {d["name"] for d in card["data_provenance"]}
    assert {"davis2016val", "feral_cats", "humanseg", "weizmann_horse", "synth"} <= sources
    for d in card["data_provenance"]:
        if d["name"] != "synth":  # every real source names its repository, commit, licence and held-out split
            assert len(d["commit"]) == 40 and d["licence"] and d["split"]["val_pairs"] > 0
    if stage == "L":
        assert card["inference"]["l_size"] == 224
    else:
        assert card["initialised_from"]


def test_mos_info_lists_the_shipped_weights(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for stage in "LH":
        digest = read_card(weights_path(None, "mobilenetv3", stage))["sha256"]
        assert f"meticulousnet_mobile_{stage}.safetensors: ok  sha256 {digest}" in out
    assert "held-out iou" in out


def test_default_cascade_cuts_the_cat_out_of_the_sample_photo():
    cascade = Cascade.from_pretrained(device="cpu")
    assert cascade.config.l_size == 224
    img = load_image(SAMPLE)
    result = cascade(img)
    mask = result.mask
    assert mask.shape == (img.height, img.width) and result.device == "CPU"
    # Chelsea's face fills the middle of the frame; the out-of-focus room shows at the right edge.
    h, w = mask.shape
    assert mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean() > 0.9
    assert 0.5 < mask.mean() < 0.95
    assert mask[h // 3 : 2 * h // 3, -w // 12 :].mean() < 0.5
    # H changed L's upsampled mask along the boundary only, never wholesale.
    low = cascade.run_low(img.rgb)[0] > 0.5
    changed = low != mask
    assert 0 < changed.mean() < 0.1
