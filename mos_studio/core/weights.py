"""Find, verify and load shipped weights: safetensors + a JSON model card beside each file.

Never unpickles anything, and never falls back to random weights: a missing or corrupt file is a `WeightsError`
naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import WeightsError
from .io import current_umask
from .model import MeticulousNet

ENCODER_TAGS = {"mobilenetv3": "mobile", "resnet50": "r50", "efficientnet_lite0": "effl0"}
# "default": the pair the models folder names in default.json (L and H may use different encoders: L is run once
# per photo, H on every crop, so each stage ships the encoder that measured best for it).
ENCODER_CHOICES = ("default", *ENCODER_TAGS)
DEFAULT_PAIR_FILE = "default.json"
# "Hs": optional second weights for H, used by a cut of a photo no larger than H's global pass (where H runs at 1:1
# and enlarged); trained on small photos, which the large-photo H must not be traded for (docs/MODELS.md). It
# shares H's encoder in the default pair.
STAGES = ("L", "H", "Hs")
FIX_HINT = "train them (docs/TRAINING.md) or copy the released files into that folder; `mos info` lists what is found"


def find_models_dir(models_dir: str | Path | None = None) -> Path:
    """The argument, else $MOS_MODELS_DIR, else the project's own `models/` folder."""
    if models_dir is not None:
        return Path(models_dir).expanduser()
    env = os.environ.get("MOS_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "models"


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise WeightsError(f"unknown stage {stage!r}; choose L or H (or Hs, H's optional small-photo weights)")


def weights_filename(encoder: str, stage: str) -> str:
    if encoder not in ENCODER_TAGS:
        raise WeightsError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODER_TAGS)}")
    _check_stage(stage)
    return f"meticulousnet_{ENCODER_TAGS[encoder]}_{stage}.safetensors"


def default_encoders(models_dir: str | Path | None = None) -> dict[str, str]:
    """The encoder of each stage of the folder's default pair: its default.json, else MobileNetV3 for both."""
    path = find_models_dir(models_dir) / DEFAULT_PAIR_FILE
    if not path.is_file():
        return {"L": "mobilenetv3", "H": "mobilenetv3"}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path}: not a readable default-pair file ({err})") from err
    if not isinstance(data, dict) or any(data.get(s) not in ENCODER_TAGS for s in ("L", "H")):
        raise WeightsError(f"{path}: must name an encoder for \"L\" and \"H\", each one of {', '.join(ENCODER_TAGS)}")
    return {"L": data["L"], "H": data["H"]}


def resolve_encoder(models_dir: str | Path | None, encoder: str | None, stage: str) -> str:
    """`encoder` itself, or for "default" (and None) the stage's encoder in the folder's default pair."""
    _check_stage(stage)
    if encoder in (None, "default"):
        return default_encoders(models_dir)["H" if stage == "Hs" else stage]
    return encoder


def weights_path(models_dir: str | Path | None, encoder: str | None, stage: str) -> Path:
    return find_models_dir(models_dir) / weights_filename(resolve_encoder(models_dir, encoder, stage), stage)


def card_path(path: Path) -> Path:
    return path.with_suffix(".json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(path: str | Path) -> dict:
    path = Path(path)
    cpath = card_path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file missing; {FIX_HINT}")
    if not cpath.is_file():
        raise WeightsError(f"{cpath}: model card missing (it holds the architecture and checksum of {path.name})")
    try:
        card = json.loads(cpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{cpath}: model card unreadable ({err})") from err
    if not isinstance(card, dict) or "config" not in card or "sha256" not in card:
        raise WeightsError(f"{cpath}: model card lacks 'config' or 'sha256'")
    return card


def save_weights(model: MeticulousNet, path: str | Path, card: dict | None = None, fp16: bool = False) -> Path:
    """Write `model` as safetensors plus its card (config, sha256, dtype, parameter count, anything in `card`)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".safetensors.tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt"})
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; shared weights need the user's usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    full = dict(card or {})
    full.update(
        {
            "architecture": "MeticulousNet",
            "encoder": model.encoder_name,
            "stage": full.get("stage", "H" if model.in_channels == 4 else "L"),
            "config": model.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": "float16" if fp16 else "float32",
            "file": path.name,
            "sha256": sha256_file(path),
        }
    )
    card_path(path).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> MeticulousNet:
    """Build the model from its card and load the verified tensors (in eval mode, float32)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    if verify:
        digest = sha256_file(path)
        if digest != card["sha256"]:
            raise WeightsError(
                f"{path}: checksum mismatch (file {digest[:12]}…, card {str(card['sha256'])[:12]}…); "
                "the file is corrupt or was replaced — restore it from the release or retrain"
            )
    try:
        model = MeticulousNet.from_config(card["config"])
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{card_path(path)}: config does not describe a MeticulousNet ({err})") from err
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable safetensors file ({err})") from err
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise WeightsError(f"{path}: tensors do not match the card's architecture ({first})") from err
    return model.to(device).eval()


def describe_models(models_dir: str | Path | None = None) -> list[dict]:
    """What `mos info` prints: every expected file, whether it is there, and its card's checksum."""
    root = find_models_dir(models_dir)
    try:
        default: dict[str, str] = default_encoders(root)
    except WeightsError:
        default = {}
    rows = []
    for encoder in ENCODER_TAGS:
        for stage in STAGES:
            path = root / weights_filename(encoder, stage)
            if stage == "Hs" and not path.is_file():
                continue  # optional: listed only when shipped
            row: dict = {"encoder": encoder, "stage": stage, "path": str(path), "found": path.is_file(),
                         "default": default.get("H" if stage == "Hs" else stage) == encoder}
            if path.is_file():
                try:
                    card = read_card(path)
                    row["sha256"] = card["sha256"]
                    row["ok"] = sha256_file(path) == card["sha256"]
                    row["iterations"] = card.get("iterations")
                    row["dtype"] = card.get("dtype")
                    row["metrics"] = card.get("metrics") or {}
                    soup = card.get("soup")  # weights averaged from runs (training.soup): no run of its own
                    row["soup"] = len(soup) if isinstance(soup, list) else 0
                except WeightsError as err:
                    row["ok"] = False
                    row["error"] = str(err)
            rows.append(row)
    return rows
