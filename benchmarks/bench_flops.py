"""Parameters and GFLOPs of MeticulousNet L and H per encoder, at the paper's L size (336²) and H's crop (512²).

FLOPs are counted by torch.utils.flop_counter (a multiply-add counts 2) on one forward pass with random weights and
input: the count depends only on the architecture and the input size. The paper gives parameter counts only
(Table 7: 70.30 M with ResNet50, 3.33 M with MobileNetV3); it states no FLOPs.

    python benchmarks/bench_flops.py [--encoders mobilenetv3,efficientnet_lite0,resnet50] [--sizes 336,512]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from mos_studio.core.model import MeticulousNet, count_parameters

PAPER_PARAMS = {"resnet50": "70.30 M", "mobilenetv3": "3.33 M"}


def gflops(model: torch.nn.Module, channels: int, size: int) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, channels, size, size))
    return counter.get_total_flops() / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", default="mobilenetv3,efficientnet_lite0,resnet50")
    ap.add_argument("--sizes", default="336,512")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| encoder | stage | parameters | paper parameters | encoder parameters | "
          + " | ".join(f"GFLOPs {s}²" for s in sizes) + " |")
    print("|---|---|---|---|---|" + "---|" * len(sizes))
    for enc in args.encoders.split(","):
        for stage, c in (("L", 3), ("H", 4)):
            model = MeticulousNet(enc, c).eval()
            n, n_enc = count_parameters(model), count_parameters(model.encoder)
            flops = [gflops(model, c, s) for s in sizes]
            paper = PAPER_PARAMS.get(enc, "—") if stage == "L" else "—"
            print(f"| {enc} | {stage} | {n / 1e6:.3f} M | {paper} | {n_enc / 1e6:.3f} M | "
                  + " | ".join(f"{f:.2f}" for f in flops) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
