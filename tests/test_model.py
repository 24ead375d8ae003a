"""MeticulousNet: shapes and strides of every output, point selection, gradients, parameter counts."""

import pytest
import torch

from mos_studio.core.model import (
    STAGE_NAMES,
    STAGE_STRIDES,
    MeticulousNet,
    count_parameters,
    select_uncertain_points,
    uncertainty_from_logits,
)


@pytest.mark.parametrize("in_channels", [3, 4])
@pytest.mark.parametrize("size", [(64, 64), (75, 101)])
def test_shapes_and_strides(in_channels, size):
    torch.manual_seed(0)
    net = MeticulousNet.tiny(in_channels).eval()
    h, w = size
    with torch.no_grad():
        out = net(torch.rand(2, in_channels, h, w))
    assert out.logits.shape == (2, 1, h, w)
    assert [s.name for s in out.stages] == list(STAGE_NAMES)
    for s, stride in zip(out.stages, STAGE_STRIDES, strict=True):
        assert s.stride == stride
        expect = (2, 1, -(-h // stride), -(-w // stride))
        assert s.prediction.shape == expect, s.name
        assert s.uncertainty.shape == expect, s.name
        assert float(s.uncertainty.min()) >= 0.0 and float(s.uncertainty.max()) <= 1.0
    # The final output is S2_3's prediction at stride 1.
    assert torch.equal(out.logits, out.stages[-1].prediction)


def test_real_encoders_build_and_run_small():
    for enc in ("mobilenetv3", "resnet50"):
        net = MeticulousNet(enc, 4).eval()
        with torch.inference_mode():
            out = net(torch.rand(1, 4, 48, 40))
        assert out.logits.shape == (1, 1, 48, 40)


def test_parameter_counts_printed():
    """The paper reports 3.33 M (MobileNetV3) and 70.30 M (ResNet50); docs/MODEL.md explains the gap."""
    mobile = count_parameters(MeticulousNet("mobilenetv3", 3))
    r50 = count_parameters(MeticulousNet("resnet50", 3))
    print(f"\nparameters: mobilenetv3 {mobile / 1e6:.2f} M (paper 3.33 M), resnet50 {r50 / 1e6:.2f} M (paper 70.30 M)")
    assert abs(mobile / 1e6 - 3.33) / 3.33 < 0.10  # separable mobile decoder: see docs/MODEL.md
    assert abs(r50 / 1e6 - 70.30) / 70.30 < 0.02


def test_point_selection_exact_fraction_and_most_uncertain():
    torch.manual_seed(1)
    logits = torch.randn(3, 1, 20, 30) * 3
    unc = uncertainty_from_logits(logits)
    for frac in (0.1, 0.15, 0.2):
        idx = select_uncertain_points(unc, frac)
        k = round(frac * 20 * 30)
        assert idx.shape == (3, k)
        flat = unc.reshape(3, -1)
        for b in range(3):
            chosen = flat[b, idx[b]]
            mask = torch.ones(600, dtype=torch.bool)
            mask[idx[b]] = False
            assert len(set(idx[b].tolist())) == k
            assert chosen.min() >= flat[b, mask].max()  # every chosen point is at least as uncertain as any other


def test_uncertainty_is_closeness_to_half():
    logits = torch.tensor([[[[0.0, 10.0, -10.0]]]])
    unc = uncertainty_from_logits(logits)
    assert unc[0, 0, 0, 0] == pytest.approx(1.0)
    assert unc[0, 0, 0, 1] < 1e-3 and unc[0, 0, 0, 2] < 1e-3


def test_point_fraction_configurable_changes_refined_points():
    torch.manual_seed(0)
    a = MeticulousNet.tiny(3, point_fraction=0.0).eval()
    b = MeticulousNet.tiny(3, point_fraction=0.3).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        pa, pb = a(x).stages[0].prediction, b(x).stages[0].prediction
    changed = (pa != pb).float().mean().item()
    assert changed == pytest.approx(0.3, abs=0.01)


def test_gradients_reach_all_seven_blocks():
    torch.manual_seed(0)
    net = MeticulousNet.tiny(4).train()
    out = net(torch.rand(2, 4, 64, 64))
    loss = sum(s.prediction.mean() for s in out.stages)
    loss.backward(retain_graph=True)
    modules = {
        "S8_0": net.head8_0, "S8_1/2/3": net.head8, "S4_2/3": net.head4, "S2_3": net.head2,
        "point MLP": net.point_mlp, "mask encoder": net.mask_encoder, "up8": net.up8, "up4": net.up4,
        "up2": net.up2, "psp": net.psp, "encoder": net.encoder,
    }
    for name, mod in modules.items():
        grads = [p.grad for p in mod.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    # Each block's own output depends on the shared point MLP.
    for s in out.stages:
        g = torch.autograd.grad(s.prediction.sum(), net.point_mlp.fc3.weight, retain_graph=True)[0]
        assert float(g.abs().sum()) > 0, s.name


def test_bad_input_channels():
    with pytest.raises(ValueError):
        MeticulousNet.tiny(3)(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError):
        MeticulousNet("mobilenetv3", 5)


@pytest.mark.parametrize("size", [(64, 64), (75, 101)])
def test_mask_skip_adds_the_input_masks_logit(size):
    """H's residual skip: the same weights with `mask_skip` s answer their own logit plus s × logit(mask), the mask
    clamped to [0.02, 0.98]; the final stage carries it too, so the stage view and the answer agree."""
    torch.manual_seed(0)
    plain = MeticulousNet.tiny(4).eval()
    skip = MeticulousNet.from_config({**plain.config(), "mask_skip": 0.5}).eval()
    skip.load_state_dict(plain.state_dict())
    h, w = size
    x = torch.rand(2, 4, h, w)
    x[0, 3, : h // 2] = 1.0  # sure parts are clamped, not infinite
    x[0, 3, h // 2 :] = 0.0
    with torch.no_grad():
        a, b = plain(x), skip(x)
    m = x[:, 3:4].clamp(0.02, 0.98)
    torch.testing.assert_close(b.logits, a.logits + 0.5 * torch.log(m / (1 - m)), atol=1e-5, rtol=1e-5)
    assert torch.equal(b.logits, b.stages[-1].prediction[..., :h, :w])
    for sa, sb in zip(a.stages[:-1], b.stages[:-1], strict=True):  # the earlier stages are H's own
        assert torch.equal(sa.prediction, sb.prediction)
    assert skip.config()["mask_skip"] == 0.5 and plain.config()["mask_skip"] == 0.0


def test_mask_skip_needs_a_mask_and_a_sane_weight():
    with pytest.raises(ValueError, match="mask_skip"):
        MeticulousNet.tiny(3).from_config({**MeticulousNet.tiny(3).config(), "mask_skip": 1.0})
    with pytest.raises(ValueError, match="mask_skip"):
        MeticulousNet.from_config({**MeticulousNet.tiny(4).config(), "mask_skip": -1.0})
    old = MeticulousNet.tiny(4).config()
    del old["mask_skip"]  # a card written before the skip existed builds the plain H
    assert MeticulousNet.from_config(old).mask_skip == 0.0
