"""The public API other issues and outside scripts rely on (docs/CONTRACTS.md), spelled exactly as promised."""

import inspect

import numpy as np
import torch


def test_public_names_and_signatures():
    from mos_studio.core import Cascade, MeticulousNet, load_image, save_mask

    assert callable(load_image) and callable(save_mask)
    pre = inspect.signature(Cascade.from_pretrained).parameters
    assert [pre[k].default for k in ("models_dir", "encoder", "device")] == [None, "default", None]
    call = inspect.signature(Cascade.__call__).parameters
    for name in ("mask", "roi", "progress", "cancel"):
        assert call[name].kind is inspect.Parameter.KEYWORD_ONLY and call[name].default is None, name
    init = inspect.signature(MeticulousNet).parameters
    assert init["encoder"].default == "mobilenetv3" and init["in_channels"].default == 3
    from mos_studio.core import save_stages, stage_montage

    save = inspect.signature(save_stages).parameters
    assert list(save)[:3] == ["stages", "sheet_path", "arrays_path"] and save["arrays_path"].default is None
    for name in ("regions", "stretch", "overwrite", "protect"):
        assert save[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert inspect.signature(stage_montage).parameters["stretch"].default is False


def test_network_and_cascade_outputs_by_keyword():
    from mos_studio.core import Cascade, MeticulousNet
    from mos_studio.core.model import Widths

    tiny = Widths(ppm_bin=8, ppm_out=16, up4=16, up2=8, head=8, mlp=16, mask_enc=16, encoder_width=0.25)
    torch.manual_seed(0)
    low = MeticulousNet(encoder="mobilenetv3", in_channels=3, widths=tiny).eval()
    high = MeticulousNet(encoder="mobilenetv3", in_channels=4, widths=tiny).eval()
    with torch.inference_mode():
        out = low(torch.rand(1, 3, 40, 56))
    assert out.logits.shape == (1, 1, 40, 56)
    names = ["S8_0", "S8_1", "S8_2", "S4_2", "S8_3", "S4_3", "S2_3"]
    assert [s.name for s in out.stages] == names
    assert all(s.uncertainty.dim() == 4 and s.prediction.dim() == 4 for s in out.stages)
    res = Cascade(low, high, device="cpu")(np.zeros((48, 64, 3), np.uint8), progress=None, cancel=None)
    assert res.mask.shape == (48, 64) and res.mask.dtype == bool
    assert res.probability.shape == (48, 64) and res.probability.dtype == np.float32
    assert set(res.stages) == {"L", "H"} and all([s.name for s in v] == names for v in res.stages.values())
