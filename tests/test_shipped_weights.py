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
        assert card["inference"] == {"l_size": 224, "l_flip": True}
    else:
        assert card["initialised_from"]


def test_mos_info_lists_the_shipped_weights(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for stage in "LH":
        digest = read_card(weights_path(None, "mobilenetv3", stage))["sha256"]
        assert f"meticulousnet_mobile_{stage}.safetensors: ok  sha256 {digest}" in out
    assert "held-out iou" in out


def test_default_cascade_cuts_the_cup_out_of_the_sample_photo():
    cascade = Cascade.from_pretrained(device="cpu")
    assert cascade.config.l_size == 224 and cascade.config.l_flip
    img = load_image(SAMPLE)
    result = cascade(img)
    mask = result.mask
    assert mask.shape == (img.height, img.width) == (400, 600) and result.device.startswith("CPU")
    # The espresso in the cup (centre) is the object; the wooden table at the corners and right edge is not.
    assert mask[100:180, 230:350].mean() > 0.95
    assert mask[:60, :100].mean() < 0.05 and mask[150:250, 540:].mean() < 0.05 and mask[-40:, -120:].mean() < 0.05
    assert 0.2 < mask.mean() < 0.6
    # H moved L's upsampled mask along the boundary only, never wholesale.
    low = cascade.run_low(img.rgb)[0] > 0.5
    assert 0 < (low != mask).mean() < 0.1
