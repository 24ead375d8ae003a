"""MeticulousNet: encoder → PSP head → recursive decoder with 7 HierPR blocks (paper §3, Figs. 3–5).

Wiring (our reading of the paper; the choices it leaves open are listed in docs/MODEL.md):

* Deconvolution branch to strides 8, 8, 4, 2: the PSP output P8 is the first stride-8 map; each cycle's stride-8 map
  comes from one shared layer `up8`; `up4` (skip: the encoder's first block, stride 4) and `up2` (skip: the first
  conv, stride 2) are shared by the cycles that reach them ("blue modules share weights when vertically aligned").
* HierPR block: coarse head (two 1×1 convs) on F_n → ×2 upsampling → uncertainty = closeness to 0.5 (computed from
  the coarse head alone) → for S4/S2 blocks, average with the previous block's prediction → the most uncertain
  `point_fraction` of points is re-predicted by a three-layer point MLP (one MLP shared by all 7 blocks) fed with the
  stride-4 encoder features sampled at the point and the coarse logit, re-fed before each hidden layer (PointRend).
* Recursive decoder: S8_0 on P8 (outside the cycles); cycle 1 = S8_1; cycle 2 = S8_2 → S4_2; cycle 3 =
  S8_3 → S4_3 → S2_3. Before cycles 2 and 3 the mask-encoding layer M (shared) takes P8 plus the initial stride-4
  prediction and the previous cycle's last prediction and returns modulated stride-8 features for `up8`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .encoders import build_encoder

STAGE_NAMES = ("S8_0", "S8_1", "S8_2", "S4_2", "S8_3", "S4_3", "S2_3")
STAGE_STRIDES = (4, 4, 4, 2, 4, 2, 1)

_SKIP_CLAMP = 0.02  # the mask skip's input is clamped to [0.02, 0.98]: a logit of at most ±3.9

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass
class Widths:
    """Channel widths of the head and decoder. Defaults per encoder are in `Widths.for_encoder`."""

    ppm_bin: int  # channels of each pyramid-pooling bin
    ppm_out: int  # P8 / F8 channels
    up4: int  # F4 channels
    up2: int  # F2 channels
    head: int = 32  # hidden width of the coarse heads
    mlp: int = 256  # hidden width of the point MLP
    mask_enc: int = 256  # hidden width of the mask-encoding layer
    encoder_width: float = 1.0  # width multiplier of the encoder (tests use tiny encoders)
    separable: bool = False  # depthwise-separable 3×3 convs in the up-blocks (mobile)

    @staticmethod
    def for_encoder(encoder: str) -> Widths:
        if encoder == "resnet50":
            # CascadePSP's trunk: PPM 2048→1024 (bins keep 2048), up-blocks to 512 and 256.
            return Widths(ppm_bin=2048, ppm_out=1024, up4=512, up2=256, head=32, mlp=256, mask_enc=256)
        if encoder == "mobilenetv3":
            return Widths(ppm_bin=64, ppm_out=128, up4=64, up2=32, head=32, mlp=64, mask_enc=64, separable=True)
        if encoder == "efficientnet_lite0":
            # Same mobile decoder as MobileNetV3: the skips are 16 and 24 channels there too; the PSP pools 320.
            return Widths(ppm_bin=64, ppm_out=128, up4=64, up2=32, head=32, mlp=64, mask_enc=64, separable=True)
        raise ValueError(f"unknown encoder {encoder!r}")


@dataclass
class StageOutput:
    name: str
    stride: int
    uncertainty: torch.Tensor  # B×1×h×w in [0, 1]; 1 = the coarse prediction is exactly 0.5
    prediction: torch.Tensor  # B×1×h×w logits after point-wise refinement


@dataclass
class MeticulousOutput:
    logits: torch.Tensor  # B×1×H×W at the input size
    stages: list[StageOutput] = field(default_factory=list)


def _pool_matrix(n: int | torch.Tensor, bins: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """bins×n matrix of adaptive average pooling along one axis: bin i averages [⌊i·n/b⌋, ⌈(i+1)·n/b⌉)."""
    i = torch.arange(bins, device=device)
    start = torch.div(i * n, bins, rounding_mode="floor")
    end = torch.div((i + 1) * n + bins - 1, bins, rounding_mode="floor")
    j = torch.arange(n, device=device)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return inside.to(dtype) / (end - start)[:, None].to(dtype)


def _adaptive_pool_matmul(x: torch.Tensor, bins: int) -> torch.Tensor:
    """adaptive_avg_pool2d as two small matmuls: the same numbers, but exportable to ONNX at any input size
    (the ONNX exporter only handles output sizes that divide the input size)."""
    h, w = x.shape[-2:]
    ph = _pool_matrix(h, bins, x.dtype, x.device)
    pw = _pool_matrix(w, bins, x.dtype, x.device)
    return torch.matmul(torch.matmul(ph, x), pw.t())


class PSPHead(nn.Module):
    """Pyramid pooling (bins 1, 2, 3, 6), concatenated with the input, fused by a 1×1 conv."""

    def __init__(self, cin: int, bin_channels: int, cout: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(nn.Conv2d(cin, bin_channels, 1, bias=False) for _ in bins)
        self.fuse = nn.Conv2d(cin + len(bins) * bin_channels, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        exporting = torch.onnx.is_in_onnx_export()
        pooled = [
            F.interpolate(
                conv(_adaptive_pool_matmul(x, b) if exporting else F.adaptive_avg_pool2d(x, b)),
                size=(h, w),
                mode="bilinear",
                align_corners=False,
            )
            for b, conv in zip(self.bins, self.stages, strict=True)
        ]
        return F.relu(self.fuse(torch.cat([*pooled, x], 1)), inplace=True)


def conv3x3(cin: int, cout: int, separable: bool) -> nn.Module:
    """A 3×3 conv, or its depthwise-separable form (the mobile decoder: ~8× fewer FLOPs at strides 4 and 2)."""
    if not separable:
        return nn.Conv2d(cin, cout, 3, padding=1)
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1))


class UpBlock(nn.Module):
    """×2 upsampling + skip concat + two pre-activation residual pairs (CascadePSP's up-block)."""

    # conv → BN pairs whose conv output feeds nothing else, so inference can fold the BN (core/optimize.py).
    bn_fold_pairs = (("conv1", "bn2"), ("conv3", "bn4"))

    def __init__(self, cin: int, cskip: int, cout: int, separable: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin + cskip)
        self.conv1 = conv3x3(cin + cskip, cout, separable)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout, separable)
        self.shortcut = nn.Conv2d(cin, cout, 1)
        self.bn3 = nn.BatchNorm2d(cout)
        self.conv3 = conv3x3(cout, cout, separable)
        self.bn4 = nn.BatchNorm2d(cout)
        self.conv4 = conv3x3(cout, cout, separable)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        y = self.conv1(F.relu(self.bn1(torch.cat([x, skip], 1))))
        y = self.conv2(F.relu(self.bn2(y)))
        y = y + self.shortcut(x)
        z = self.conv3(F.relu(self.bn3(y)))
        z = self.conv4(F.relu(self.bn4(z)))
        return y + z


class Stride8Block(nn.Module):
    """The stride-8 'deconvolution' layer of each cycle: a bottleneck residual block at constant resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = max(8, channels // 4)
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MaskEncoder(nn.Module):
    """M: encodes the stacked earlier predictions (initial stride-4 one, previous cycle's last) into P8."""

    def __init__(self, channels: int, hidden: int, n_masks: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels + n_masks, hidden, 1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, p8: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        size = p8.shape[-2:]
        # Predictions enter as tanh(logit / 2) = 2·sigmoid(logit) − 1 in [−1, 1], resized to stride 8.
        enc = [torch.tanh(F.interpolate(m, size=size, mode="bilinear", align_corners=False) / 2) for m in masks]
        return F.relu(p8 + self.body(torch.cat([p8, *enc], 1)))


class CoarseHead(nn.Module):
    """CH: two 1×1 convolutions predicting a one-channel logit map."""

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class PointMLP(nn.Module):
    """Three-layer point-wise perceptron; the coarse logit is appended to the input of every layer."""

    def __init__(self, cfine: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv1d(cfine + 1, hidden, 1)
        self.fc2 = nn.Conv1d(hidden + 1, hidden, 1)
        self.fc3 = nn.Conv1d(hidden + 1, 1, 1)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(torch.cat([fine, coarse], 1)))
        x = F.relu(self.fc2(torch.cat([x, coarse], 1)))
        return self.fc3(torch.cat([x, coarse], 1))


def uncertainty_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """1 − 2·|p − 0.5|: 1 where the prediction is 0.5, 0 where it is certain (the paper's UC map, flipped)."""
    return 1.0 - 2.0 * (torch.sigmoid(logits) - 0.5).abs()


def select_uncertain_points(uncertainty: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices (B×k, into the flattened h·w map) of the `fraction` most uncertain points; k = round(fraction·h·w)."""
    b, _, h, w = uncertainty.shape
    if isinstance(h, torch.Tensor):  # traced for ONNX export: k must follow the input size, not be a constant
        n = h * w
        k = torch.minimum(n, torch.round(n.to(torch.float32) * fraction).to(n.dtype))
        return uncertainty.flatten(1).topk(k, dim=1, sorted=False).indices
    k = min(h * w, int(round(fraction * h * w)))
    if k <= 0:
        return torch.zeros(b, 0, dtype=torch.long, device=uncertainty.device)
    return uncertainty.reshape(b, h * w).topk(k, dim=1, sorted=False).indices


def _sample_at(features: torch.Tensor, idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinearly sample `features` at the centres of the given cells of an h×w grid: B×C×k."""
    ys = (idx // w).to(features.dtype)
    xs = (idx % w).to(features.dtype)
    grid = torch.stack([(xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1], dim=-1).unsqueeze(1)  # B×1×k×2
    return F.grid_sample(features, grid, mode="bilinear", align_corners=False).squeeze(2)


class MeticulousNet(nn.Module):
    """One network, two uses: L takes RGB (in_channels=3); H takes RGB + a coarse mask (in_channels=4).

    Input is RGB in [0, 1] (and the mask in [0, 1]); ImageNet normalisation and padding to a multiple of 8 happen
    inside, so callers never need to know them.
    """

    def __init__(
        self,
        encoder: str = "mobilenetv3",
        in_channels: int = 3,
        point_fraction: float = 0.1,
        widths: Widths | dict | None = None,
        mask_skip: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels not in (3, 4):
            raise ValueError("in_channels must be 3 (L: RGB) or 4 (H: RGB + mask)")
        if mask_skip and in_channels != 4:
            raise ValueError("mask_skip needs a mask input (in_channels=4)")
        if not 0.0 <= mask_skip <= 4.0:
            raise ValueError("mask_skip must be in [0, 4]")
        if not 0.0 <= point_fraction <= 1.0:
            raise ValueError("point_fraction must be in [0, 1]")
        if isinstance(widths, dict):
            widths = Widths(**widths)
        self.widths = widths or Widths.for_encoder(encoder)
        self.encoder_name = encoder
        self.in_channels = in_channels
        self.point_fraction = point_fraction
        # H's answer is added to `mask_skip` × the input mask's logit (clamped to ±3.9): a residual skip, so that a
        # right input survives unless H is sure it is wrong. 0 (off) for the weights trained without it.
        self.mask_skip = float(mask_skip)
        # Inference only: rank points by −|coarse logit| instead of the uncertainty map. Same order (the uncertainty
        # falls monotonically with |logit|) without a full-size sigmoid, so an inference graph that returns only
        # the final logits drops the uncertainty maps entirely. Differs only in how exact ties are broken.
        self.select_on_logits = False
        wd = self.widths
        self.encoder = build_encoder(encoder, in_channels, wd.encoder_width)
        c2, c4, c8 = self.encoder.channels
        self.psp = PSPHead(c8, wd.ppm_bin, wd.ppm_out)
        self.up8 = Stride8Block(wd.ppm_out)  # shared by cycles 1–3
        self.up4 = UpBlock(wd.ppm_out, c4, wd.up4, wd.separable)  # shared by cycles 2–3
        self.up2 = UpBlock(wd.up4, c2, wd.up2, wd.separable)  # cycle 3 only
        self.mask_encoder = MaskEncoder(wd.ppm_out, wd.mask_enc)  # shared by cycles 2–3
        self.head8_0 = CoarseHead(wd.ppm_out, wd.head)  # S8_0's own column
        self.head8 = CoarseHead(wd.ppm_out, wd.head)  # S8_1, S8_2, S8_3
        self.head4 = CoarseHead(wd.up4, wd.head)  # S4_2, S4_3
        self.head2 = CoarseHead(wd.up2, wd.head)  # S2_3
        self.point_mlp = PointMLP(c4, wd.mlp)  # shared by all 7 blocks
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    # ---------------------------------------------------------------------------------------------- construction
    def config(self) -> dict:
        """Constructor arguments, stored in model cards so weights always rebuild the right shapes."""
        return {
            "encoder": self.encoder_name,
            "in_channels": self.in_channels,
            "point_fraction": self.point_fraction,
            "widths": asdict(self.widths),
            "mask_skip": self.mask_skip,
        }

    @classmethod
    def from_config(cls, config: dict) -> MeticulousNet:
        return cls(**config)

    @classmethod
    def tiny(cls, in_channels: int = 3, encoder: str = "mobilenetv3", point_fraction: float = 0.1) -> MeticulousNet:
        """A very small model for tests: same wiring, a fraction of the channels."""
        widths = Widths(
            ppm_bin=8, ppm_out=16, up4=16, up2=8, head=8, mlp=16, mask_enc=16, encoder_width=0.25, separable=True
        )
        return cls(encoder, in_channels, point_fraction, widths)

    # ---------------------------------------------------------------------------------------------------- forward
    def _hierpr(
        self,
        name: str,
        head: CoarseHead,
        features: torch.Tensor,
        fine: torch.Tensor,
        previous: torch.Tensor | None,
    ) -> StageOutput:
        coarse = head(features)
        coarse = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
        uncertainty = uncertainty_from_logits(coarse)
        score = -coarse.detach().abs() if self.select_on_logits else uncertainty.detach()  # from the head alone
        if previous is not None:
            previous = F.interpolate(previous, size=coarse.shape[-2:], mode="bilinear", align_corners=False)
            coarse = 0.5 * (coarse + previous)
        b, _, h, w = coarse.shape
        idx = select_uncertain_points(score, self.point_fraction)
        flat = coarse.reshape(b, 1, h * w)
        if torch.onnx.is_in_onnx_export() or idx.shape[1] > 0:
            coarse_pts = torch.gather(flat, 2, idx.unsqueeze(1))
            fine_pts = _sample_at(fine, idx, h, w)
            refined = self.point_mlp(fine_pts, coarse_pts)
            flat = flat.scatter(2, idx.unsqueeze(1), refined.to(flat.dtype))
        stride = STAGE_STRIDES[STAGE_NAMES.index(name)]
        return StageOutput(name, stride, uncertainty, flat.reshape(b, 1, h, w))

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder is fed for input `x`: ImageNet-normalised RGB (and the mask in [−1, 1]), padded to a
        multiple of 8. Public so that training can cache the encoder's features exactly as inference computes them."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected B×{self.in_channels}×H×W input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        # An exported graph is fed sizes that are multiples of 8 (the ONNX runner pads), so it needs no branch here.
        ph, pw = (0, 0) if torch.onnx.is_in_onnx_export() else ((-h) % 8, (-w) % 8)
        rgb = (x[:, :3] - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.in_channels == 4:
            rgb = torch.cat([rgb, x[:, 3:4] * 2 - 1], 1)
        if ph or pw:
            rgb = F.pad(rgb, (0, pw, 0, ph), mode="replicate")
        return rgb

    def forward(self, x: torch.Tensor) -> MeticulousOutput:
        h, w = x.shape[-2:]
        feats = self.encoder(self.encoder_input(x))
        fine = feats.f4
        p8 = self.psp(feats.f8)

        s8_0 = self._hierpr("S8_0", self.head8_0, p8, fine, None)
        # Cycle 1
        s8_1 = self._hierpr("S8_1", self.head8, self.up8(p8), fine, None)
        # Cycle 2
        f8 = self.up8(self.mask_encoder(p8, [s8_0.prediction, s8_1.prediction]))
        s8_2 = self._hierpr("S8_2", self.head8, f8, fine, None)
        f4 = self.up4(f8, feats.f4)
        s4_2 = self._hierpr("S4_2", self.head4, f4, fine, s8_2.prediction)
        # Cycle 3
        f8 = self.up8(self.mask_encoder(p8, [s8_0.prediction, s4_2.prediction]))
        s8_3 = self._hierpr("S8_3", self.head8, f8, fine, None)
        f4 = self.up4(f8, feats.f4)
        s4_3 = self._hierpr("S4_3", self.head4, f4, fine, s8_3.prediction)
        f2 = self.up2(f4, feats.f2)
        s2_3 = self._hierpr("S2_3", self.head2, f2, fine, s4_3.prediction)

        if self.mask_skip:
            m = x[:, 3:4].clamp(_SKIP_CLAMP, 1 - _SKIP_CLAMP)
            skip = torch.log(m / (1 - m)) * self.mask_skip
            sh, sw = s2_3.prediction.shape[-2:]
            if sh != h or sw != w:  # the encoder's input was padded: pad the skip alike
                skip = F.pad(skip, (0, sw - w, 0, sh - h), mode="replicate")
            s2_3.prediction = s2_3.prediction + skip.to(s2_3.prediction.dtype)
        stages = [s8_0, s8_1, s8_2, s4_2, s8_3, s4_3, s2_3]
        if not torch.onnx.is_in_onnx_export() and (h % 8 or w % 8):  # encoder_input padded: crop back
            for s in stages:
                sh, sw = math.ceil(h / s.stride), math.ceil(w / s.stride)
                s.uncertainty = s.uncertainty[..., :sh, :sw]
                s.prediction = s.prediction[..., :sh, :sw]
        logits = s2_3.prediction[..., :h, :w]
        return MeticulousOutput(logits=logits, stages=stages)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
