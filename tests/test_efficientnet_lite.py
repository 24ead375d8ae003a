"""EfficientNet-Lite0 as MeticulousNet's third encoder: feature strides for L and H inputs, registration in the
weight naming, and a cut through the CLI and the Cascade with random weights."""

import numpy as np
import pytest
import torch
from PIL import Image

from mos_studio.cli.main import main
from mos_studio.core.cascade import Cascade
from mos_studio.core.model import MeticulousNet, Widths, count_parameters
from mos_studio.core.model.encoders import EfficientNetLite0Encoder, build_encoder
from mos_studio.core.weights import save_weights, weights_filename, weights_path


@pytest.mark.parametrize("in_channels", [3, 4])
def test_features_have_the_decoders_strides(in_channels):
    enc = build_encoder("efficientnet_lite0", in_channels).eval()
    assert isinstance(enc, EfficientNetLite0Encoder) and enc.first_conv.in_channels == in_channels
    with torch.no_grad():
        f = enc(torch.rand(2, in_channels, 96, 136))
    assert enc.channels == (16, 24, 320)
    assert f.f2.shape == (2, 16, 48, 68)
    assert f.f4.shape == (2, 24, 24, 34)
    assert f.f8.shape == (2, 320, 12, 17)


def test_last_stages_are_dilated_not_strided():
    enc = EfficientNetLite0Encoder(3)
    strides = [b.depthwise_conv.stride[0] for b in enc.blocks]
    dilations = [b.depthwise_conv.dilation[0] for b in enc.blocks]
    assert strides == [1, 2, 1, 2] + [1] * 12  # stem + blocks 1 and 3: stride 8
    # Blocks 5 and 11 lose their stride and keep the previous dilation; the blocks after them double it.
    assert dilations == [1] * 6 + [2] * 6 + [4] * 4
    assert sum(p.numel() for p in enc.parameters()) == 2_958_848  # the ImageNet file's trunk, head excluded
    with torch.no_grad():
        assert enc(torch.rand(1, 3, 64, 64)).f8.shape[-1] == 8
        assert EfficientNetLite0Encoder(3, output_stride=32).eval()(torch.rand(1, 3, 64, 64)).f8.shape[-1] == 2


def test_registered_in_widths_and_weight_names():
    assert Widths.for_encoder("efficientnet_lite0").separable
    assert weights_filename("efficientnet_lite0", "H") == "meticulousnet_effl0_H.safetensors"
    low, high = MeticulousNet("efficientnet_lite0", 3), MeticulousNet("efficientnet_lite0", 4)
    n_low, n_high = count_parameters(low), count_parameters(high)
    print(f"\nparameters: efficientnet_lite0 L {n_low / 1e6:.3f} M, H {n_high / 1e6:.3f} M (paper mobile: 3.33 M)")
    assert n_high - n_low == 32 * 9  # the mask channel of the 3×3 stem
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        build_encoder("efficientnet_lite9", 3)


@pytest.fixture(scope="module")
def lite_models(tmp_path_factory):
    """Tiny-width Lite0 L and H with random weights, saved under the effl0 names."""
    folder = tmp_path_factory.mktemp("effl0_models")
    torch.manual_seed(0)
    card = {"training_data": "none (random weights for tests)", "iterations": 0}
    for stage, c in (("L", 3), ("H", 4)):
        model = MeticulousNet.tiny(c, encoder="efficientnet_lite0").eval()
        save_weights(model, weights_path(folder, "efficientnet_lite0", stage), {**card, "stage": stage})
    return folder


def test_cut_with_efficientnet_lite0_via_cli(tmp_path, lite_models):
    img = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((72, 100, 3)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "out"
    assert main(["cut", str(img), "-o", str(out), "--models-dir", str(lite_models), "--encoder",
                 "efficientnet_lite0", "--export", "mask"]) == 0
    mask = np.array(Image.open(out / "photo_mask.png"))
    assert mask.shape == (72, 100) and set(np.unique(mask)) <= {0, 255}
    # Without the effl0 files the same command names the missing file.
    assert main(["cut", str(img), "-o", str(tmp_path / "o2"), "--models-dir", str(tmp_path / "none"), "--encoder",
                 "efficientnet_lite0"]) == 1


def test_cascade_loads_efficientnet_lite0(lite_models):
    cascade = Cascade.from_pretrained(lite_models, encoder="efficientnet_lite0", device="cpu")
    assert cascade.l_model is not None and cascade.h_model is not None
    assert cascade.l_model.encoder_name == "efficientnet_lite0" == cascade.h_model.encoder_name
    assert cascade.model_paths["H"].name == "meticulousnet_effl0_H.safetensors"
    image = (np.random.default_rng(1).random((80, 64, 3)) * 255).astype(np.uint8)
    result = cascade(image)
    assert result.probability.shape == (80, 64)
    assert np.isfinite(result.probability).all() and result.mask.shape == (80, 64)
    assert set(result.stages) == {"L", "H"}  # both networks ran


def test_default_pair_mixes_encoders_per_stage(tmp_path, lite_models, capsys):
    """models/default.json: a Lite0 L with a MobileNetV3 H, found by every face that uses the default pair."""
    import json
    import shutil

    from mos_studio.core.errors import WeightsError
    from mos_studio.core.testing import write_tiny_models
    from mos_studio.core.weights import default_encoders, describe_models

    folder = write_tiny_models(tmp_path / "mixed")
    assert default_encoders(folder) == {"L": "mobilenetv3", "H": "mobilenetv3"}  # no default.json: as before
    for f in lite_models.glob("meticulousnet_effl0_L.*"):
        shutil.copy(f, folder / f.name)
    (folder / "default.json").write_text(json.dumps({"L": "efficientnet_lite0", "H": "mobilenetv3"}))
    cascade = Cascade.from_pretrained(folder, device="cpu")
    assert cascade.l_model.encoder_name == "efficientnet_lite0" and cascade.h_model.encoder_name == "mobilenetv3"
    assert cascade.model_paths["L"].name == "meticulousnet_effl0_L.safetensors"
    assert cascade((np.random.default_rng(2).random((64, 80, 3)) * 255).astype(np.uint8)).mask.shape == (64, 80)
    assert {(r["encoder"], r["stage"]) for r in describe_models(folder) if r["default"]} == {
        ("efficientnet_lite0", "L"), ("mobilenetv3", "H")}
    assert main(["info", "--models-dir", str(folder)]) == 0
    assert "default pair: L efficientnet_lite0, H mobilenetv3" in capsys.readouterr().out
    # An explicit encoder still picks that pair; a broken default.json names itself.
    assert Cascade.from_pretrained(folder, encoder="mobilenetv3", stages="L").l_model.encoder_name == "mobilenetv3"
    (folder / "default.json").write_text('{"L": "vgg16", "H": "mobilenetv3"}')
    with pytest.raises(WeightsError, match="default.json"):
        Cascade.from_pretrained(folder)
