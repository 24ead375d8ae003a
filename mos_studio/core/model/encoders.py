"""Dilated encoders (output stride 8) written in the project: no torchvision, no downloaded weights.

EfficientNet-Lite0 can start from ImageNet weights, but only at training time (`training/pretrained.py` converts
them); at run time every encoder's tensors come from the shipped MeticulousNet weights.

All return three feature maps: a stride-2 skip, a stride-4 skip (the "first block", also the HierPR fine features)
and the stride-8 deep features that the PSP head pools.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class EncoderFeatures:
    f2: torch.Tensor  # stride 2
    f4: torch.Tensor  # stride 4
    f8: torch.Tensor  # stride 8


# ----------------------------------------------------------------------------------------------- ResNet50 (dilated)
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip, inplace=True)


class ResNet50Encoder(nn.Module):
    """ResNet50 with layer3/layer4 dilated (2, 4) instead of strided, as in PSPNet and CascadePSP."""

    def __init__(self, in_channels: int = 3, width: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.inplanes = width
        self.layer1 = self._make_layer(width, blocks[0])
        self.layer2 = self._make_layer(width * 2, blocks[1], stride=2)
        self.layer3 = self._make_layer(width * 4, blocks[2], dilation=2)
        self.layer4 = self._make_layer(width * 8, blocks[3], dilation=4)
        self.channels = (width, width * 4, width * 32)  # f2, f4, f8

    def _make_layer(self, planes: int, n: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self.inplanes, planes, stride, 1 if dilation == 1 else dilation // 2)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, 1, dilation) for _ in range(1, n)]
        return nn.Sequential(*layers)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.conv1

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        f2 = F.relu(self.bn1(self.conv1(x)), inplace=True)
        f4 = self.layer1(F.max_pool2d(f2, 3, stride=2, padding=1))
        f8 = self.layer4(self.layer3(self.layer2(f4)))
        return EncoderFeatures(f2, f4, f8)


# ------------------------------------------------------------------------------------- MobileNetV3-Large (dilated)
def _tapped(blocks: nn.Module, x: torch.Tensor, taps: dict[int, int]) -> EncoderFeatures:
    """Run the blocks in order, keeping the outputs of the blocks at strides 2 and 4 as the decoder's skips."""
    feats: dict[int, torch.Tensor] = {}
    for i, block in enumerate(blocks):
        x = block(x)
        if i == taps[2]:
            feats[2] = x
        elif i == taps[4]:
            feats[4] = x
    return EncoderFeatures(feats[2], feats[4], x)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = _make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s), inplace=True)), inplace=True)
        return x * s


def _act(name: str) -> nn.Module:
    return nn.Hardswish(inplace=True) if name == "HS" else nn.ReLU(inplace=True)


class InvertedResidual(nn.Module):
    def __init__(
        self, cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int, dilation: int
    ) -> None:
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if exp != cin:
            layers += [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), _act(act)]
        pad = (k - 1) // 2 * dilation
        layers += [
            nn.Conv2d(exp, exp, k, stride=stride, padding=pad, dilation=dilation, groups=exp, bias=False),
            nn.BatchNorm2d(exp),
            _act(act),
        ]
        if se:
            layers.append(SqueezeExcite(exp))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


# MobileNetV3-Large bottlenecks: kernel, expansion, out, SE, activation, stride.
_MBV3_LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]


class MobileNetV3Encoder(nn.Module):
    """MobileNetV3-Large trunk; the last two stride-2 stages become dilations 2 and 4 so the output stride is 8.

    The classifier and the final 1×1 expansion to 960 channels are dropped: the PSP head pools the 160-channel
    features directly, which keeps the whole mobile model near the paper's 3.33 M parameters.
    """

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0) -> None:
        super().__init__()
        stem = _make_divisible(16 * width_mult)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.Hardswish(True)
        )
        blocks: list[nn.Module] = []
        cin, stride_now, dilation = stem, 2, 1
        self._taps: dict[int, int] = {}
        for i, (k, exp, out, se, act, s) in enumerate(_MBV3_LARGE):
            exp_c, out_c = _make_divisible(exp * width_mult), _make_divisible(out * width_mult)
            if s == 2 and stride_now >= 8:
                dilation *= 2
                s = 1
            blocks.append(InvertedResidual(cin, k, exp_c, out_c, se, act, s, dilation))
            stride_now *= s
            cin = out_c
            self._taps[stride_now] = i  # last block index at each stride
        self.blocks = nn.ModuleList(blocks)
        f2_c = blocks[self._taps[2]].block[-1].num_features
        f4_c = blocks[self._taps[4]].block[-1].num_features
        self.channels = (f2_c, f4_c, cin)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.stem[0]

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        x = self.stem(x)
        return _tapped(self.blocks, x, self._taps)


# ------------------------------------------------------------------------------------- EfficientNet-Lite0 (dilated)
# MBConv stages of EfficientNet-B0/Lite0: repeats, kernel, stride, expansion, out channels (in = previous out).
_LITE0_STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
LITE0_STEM = 32  # Lite keeps the stem fixed at 32 channels for every width
_LITE_BN_EPS = 1e-3  # the ImageNet weights' batch-norm epsilon (TensorFlow's default); 1e-5 would shift every BN


def _same_pad(k: int) -> tuple[int, int, int, int]:
    """TensorFlow's "same" padding of a stride-2 k×k conv on an even-sized input: one pixel more at the bottom/right.

    MeticulousNet pads its input to a multiple of 8, so every strided conv here sees even sizes (odd sizes still
    work, giving floor(n/2) instead of ceil(n/2)). Symmetric padding would shift the sampling grid by one pixel
    per strided layer against what the weights learned: 7 instead of 8 of 8 ImageNet sample photos right.
    """
    total = k - 2
    return (total // 2, total - total // 2, total // 2, total - total // 2)


class MBConvLite(nn.Module):
    """Lite's mobile inverted bottleneck: ReLU6, no squeeze-excite. Names follow the efficientnet-pytorch layout
    (`expand_conv`, `bn0`, `depthwise_conv`, `bn1`, `project_conv`, `bn2`) so ImageNet weights map by name."""

    def __init__(self, cin: int, k: int, stride: int, exp_ratio: int, cout: int, dilation: int) -> None:
        super().__init__()
        exp = cin * exp_ratio
        self.expand_conv: nn.Conv2d | None = None
        self.bn0: nn.BatchNorm2d | None = None
        if exp_ratio != 1:
            self.expand_conv = nn.Conv2d(cin, exp, 1, bias=False)
            self.bn0 = nn.BatchNorm2d(exp, eps=_LITE_BN_EPS)
        # Strided: TensorFlow "same" padding, as the ImageNet weights were trained; otherwise symmetric.
        self.same_pad = _same_pad(k) if stride == 2 else None
        pad = 0 if stride == 2 else (k - 1) // 2 * dilation
        self.depthwise_conv = nn.Conv2d(
            exp, exp, k, stride=stride, padding=pad, dilation=dilation, groups=exp, bias=False
        )
        self.bn1 = nn.BatchNorm2d(exp, eps=_LITE_BN_EPS)
        self.project_conv = nn.Conv2d(exp, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=_LITE_BN_EPS)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand_conv is not None and self.bn0 is not None:
            y = F.relu6(self.bn0(self.expand_conv(y)))
        if self.same_pad is not None:
            y = F.pad(y, self.same_pad)
        y = F.relu6(self.bn1(self.depthwise_conv(y)))
        y = self.bn2(self.project_conv(y))
        return x + y if self.use_res else y


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 trunk (16 MBConv blocks, 2.96 M parameters at width 1); strides beyond `output_stride`
    become dilations, as in MobileNetV3Encoder, so MeticulousNet gets stride-8 deep features.

    Unlike MobileNetV3Encoder, the block that loses its stride keeps the previous dilation and only the blocks after
    it double theirs (DeepLab's and torchvision's convention, and ResNet50Encoder's): every kernel then spans the same
    input as in the ImageNet-trained network, whose classifier still names 8 of 8 sample photos on the dilated trunk.

    The 1×1 head conv to 1280 channels and the classifier are dropped (the PSP head pools the 320-channel features);
    `training/pretrained.py` keeps them only to check the converted weights still classify ImageNet photos.
    Strided convs use TensorFlow's "same" padding (see `_same_pad`), the rest symmetric padding.
    """

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.conv_stem = nn.Conv2d(in_channels, LITE0_STEM, 3, stride=2, padding=0, bias=False)
        self.bn0 = nn.BatchNorm2d(LITE0_STEM, eps=_LITE_BN_EPS)
        blocks: list[nn.Module] = []
        cin, stride_now, dilation = LITE0_STEM, 2, 1
        self._taps: dict[int, int] = {}
        for repeats, k, s, e, out in _LITE0_STAGES:
            out_c = _make_divisible(out * width_mult)
            for r in range(repeats):
                stride, block_dilation = s if r == 0 else 1, dilation
                if stride == 2 and stride_now >= output_stride:
                    # "À trous": the formerly strided block keeps the previous dilation, the blocks after it
                    # double theirs, so every kernel spans the input it was trained on (see the class docstring).
                    stride, dilation = 1, dilation * 2
                blocks.append(MBConvLite(cin, k, stride, e, out_c, block_dilation))
                stride_now *= stride
                cin = out_c
                self._taps[stride_now] = len(blocks) - 1  # last block index at each stride
        self.blocks = nn.ModuleList(blocks)
        f2_c = blocks[self._taps[2]].bn2.num_features
        f4_c = blocks[self._taps[4]].bn2.num_features
        self.channels = (f2_c, f4_c, cin)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.conv_stem

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The input to block 0 (training.dectrain runs the first blocks alone to cache what its tuned tail reads)."""
        return F.relu6(self.bn0(self.conv_stem(F.pad(x, _same_pad(3)))))

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        return _tapped(self.blocks, self.stem(x), self._taps)


ENCODERS = ("mobilenetv3", "resnet50", "efficientnet_lite0")


def build_encoder(name: str, in_channels: int, width_mult: float = 1.0) -> nn.Module:
    if name == "resnet50":
        return ResNet50Encoder(in_channels, width=max(8, int(64 * width_mult)))
    if name == "mobilenetv3":
        return MobileNetV3Encoder(in_channels, width_mult)
    if name == "efficientnet_lite0":
        return EfficientNetLite0Encoder(in_channels, width_mult)
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
