"""Losses of paper §4.4: BCE on all 7 outputs for L; per-block (BCE, L1, L2) + Sobel gradient loss for H.

Every stage prediction is upsampled bilinearly to the target size first. BCE uses the binarised truth (> 0.5, as
CascadePSP does); L1, L2 and the gradient loss use the raw (possibly soft) truth against sigmoid probabilities.
An optional soft-IoU term (`iou_weight`, off by default; BASNet's hybrid loss) scores each output whose BCE counts
as a whole region: BCE is averaged over pixels, so a wrong part of a small object costs it little, IoU a lot.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from mos_studio.core.model import STAGE_NAMES

L_WEIGHTS = {name: (1.0, 0.0, 0.0) for name in STAGE_NAMES}
H_WEIGHTS = {
    "S8_0": (1.0, 1.0, 1.0),
    "S8_1": (1.0, 1.0, 1.0),
    "S8_2": (1.0, 1.0, 1.0),
    "S8_3": (1.0, 1.0, 1.0),
    "S4_2": (0.5, 0.25, 0.25),
    "S4_3": (0.5, 0.25, 0.25),
    "S2_3": (0.0, 1.0, 1.0),
}


def sobel_magnitude(p: torch.Tensor) -> torch.Tensor:
    """CascadePSP's Sobel: 3×3 average pool, kernels [[1,0,-1],[2,0,-2],[1,0,-1]]/4 and transpose, sqrt(g²+1e-4)."""
    k = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=p.device, dtype=p.dtype) / 4
    kernels = torch.stack([k, k.t()])[:, None]
    x = F.avg_pool2d(p, 3, stride=1, padding=1)
    g = F.conv2d(x, kernels, padding=1)  # zero padding, as CascadePSP's nn.Conv2d(padding=1)
    return torch.sqrt((g * g).sum(1, keepdim=True) + 1e-4)


def gradient_loss(prob: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(sobel_magnitude(prob), sobel_magnitude(gt))


def soft_iou_error(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """1 − soft IoU of each image of the batch; an empty truth with an empty answer costs nothing."""
    p = torch.sigmoid(logits)
    inter = (p * gt).flatten(1).sum(1)
    union = (p + gt - p * gt).flatten(1).sum(1)
    return 1.0 - (inter + 1.0) / (union + 1.0)


def soft_iou_loss(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """`soft_iou_error` averaged over the batch."""
    return soft_iou_error(logits, gt).mean()


def upsampled(stages, size: tuple[int, int]) -> list[tuple[str, torch.Tensor]]:
    out = []
    for s in stages:
        p = s.prediction.float()
        if tuple(p.shape[-2:]) != tuple(size):
            p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
        out.append((s.name, p))
    return out


def stage_losses(output, gt: torch.Tensor, stage: str, grad_weight: float = 5.0,
                 iou_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """{"total", "bce", "l1", "l2", "grad", "iou"} for one batch; `output` is a MeticulousOutput."""
    weights = L_WEIGHTS if stage == "L" else H_WEIGHTS
    gt = gt.float()
    target = (gt > 0.5).float()
    zero = gt.new_zeros(())
    bce, l1, l2, iou = zero, zero, zero, zero
    for name, logits in upsampled(output.stages, gt.shape[-2:]):
        wb, w1, w2 = weights[name]
        if wb:
            bce = bce + wb * F.binary_cross_entropy_with_logits(logits, target)
            if iou_weight:
                iou = iou + iou_weight * wb * soft_iou_loss(logits, gt)
        if w1 or w2:
            prob = torch.sigmoid(logits)
            l1 = l1 + w1 * F.l1_loss(prob, gt)
            l2 = l2 + w2 * F.mse_loss(prob, gt)
    grad = zero
    if stage == "H" and grad_weight:
        grad = grad_weight * gradient_loss(torch.sigmoid(output.logits.float()), gt)
    return {"total": bce + l1 + l2 + grad + iou, "bce": bce, "l1": l1, "l2": l2, "grad": grad, "iou": iou}
