"""Tiny deterministic random models on disk, so tests of every face (CLI, app, bridge, GIMP) share one set-up.

These weights are random: they exercise the code path, never the quality. Real weights are trained by `training/`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .model import MeticulousNet
from .weights import save_weights, weights_path


def tiny_models(seed: int = 0) -> tuple[MeticulousNet, MeticulousNet]:
    """An (L, H) pair with the real wiring and few channels, in eval mode."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        low = MeticulousNet.tiny(3)
        high = MeticulousNet.tiny(4)
    finally:
        torch.random.set_rng_state(gen_state)
    return low.eval(), high.eval()


def write_tiny_models(models_dir: str | Path, seed: int = 0) -> Path:
    """Write tiny L and H weights + cards (encoder "mobilenetv3") into `models_dir`; returns the folder."""
    models_dir = Path(models_dir)
    low, high = tiny_models(seed)
    card = {"training_data": "none (random weights for tests)", "iterations": 0, "seed": seed}
    save_weights(low, weights_path(models_dir, "mobilenetv3", "L"), {**card, "stage": "L"})
    save_weights(high, weights_path(models_dir, "mobilenetv3", "H"), {**card, "stage": "H"})
    return models_dir
