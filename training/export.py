"""Export a training checkpoint as shipped weights: `meticulousnet_{mobile|r50|effl0}_{L|H}.safetensors` + JSON card.

    python -m training.export runs/cpu_L/last.pt --stage L|H|Hs [--out models/] [--fp16] [--overwrite]

The card records what the app and `mos info` show about a model: architecture, encoder, stage, the training data,
iterations, the exact training command, the last validation metrics, the hardware and the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from mos_studio.core.errors import MosError
from mos_studio.core.model import MeticulousNet
from mos_studio.core.weights import save_weights, weights_filename

from .train import CKPT_FORMAT


def read_checkpoint(ckpt_path: str | Path,
                    unreadable: str = "not a readable training checkpoint") -> tuple[MeticulousNet, dict]:
    """The model and the raw checkpoint dict, loaded without unpickling objects; clear errors for a wrong file."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise MosError(f"{ckpt_path}: checkpoint not found")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise MosError(f"{ckpt_path}: {unreadable} ({err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise MosError(f"{ckpt_path}: not a checkpoint written by training.train")
    model = MeticulousNet.from_config(ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def run_fields(ckpt: dict) -> dict:
    """What a card says about the run that wrote `ckpt`: data, steps, command, settings, metrics, hardware, time."""
    cfg = ckpt.get("config", {})
    return {
        "training_data": list(ckpt.get("training_data", [])),
        "iterations": int(ckpt["step"]),
        "scheduled_iterations": int(ckpt.get("iterations", ckpt["step"])),
        "command": ckpt.get("command", ""),
        "config_name": cfg.get("name", ""),
        "train_settings": cfg.get("train", {}),
        "metrics": dict(ckpt.get("metrics", {})),
        "hardware": ckpt.get("hardware", ""),
        "wall_time_s": round(float(ckpt.get("wall_time", 0.0)), 1),
        "initialised_from": ckpt.get("init_from", ""),
        "encoder_init": dict(ckpt.get("encoder_init") or {}),  # ImageNet weights the encoder started from, if any
    }


def read_provenance(provenance: str | Path) -> object:
    """The JSON a card stores under data_provenance, or a clear error naming the file."""
    try:
        return json.loads(Path(provenance).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MosError(f"{provenance}: provenance file unreadable ({err})") from err


def add_output_args(ap: argparse.ArgumentParser) -> None:
    """The options shared by the commands that write shipped weights (export, soup)."""
    ap.add_argument("--out", default="models", help="folder for the weights (default models/)")
    ap.add_argument("--fp16", action="store_true", help="store float16 tensors (half the size)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing weights of the same name")
    ap.add_argument("--provenance", help="JSON list: where each training source came from (stored in the card)")
    ap.add_argument("--notes", help="free text stored in the card (what the weights can and cannot do)")
    ap.add_argument("--l-flip", action="store_true",
                    help="L: tell the cascade to average L over the mirror image (when that helped on held-out data)")


def export(ckpt_path: str | Path, stage: str, out_dir: str | Path = "models", fp16: bool = False,
           overwrite: bool = False, provenance: str | Path | None = None, notes: str | None = None,
           l_flip: bool = False) -> Path:
    """Write the weights + card; refuses to replace an existing file unless `overwrite`.

    `provenance` is a JSON file (a list of dicts) saying where each training source came from — repository, commit,
    paths, pair count, licence — so that the card, not a lost notebook, answers "what was this trained on?".
    """
    model, ckpt = read_checkpoint(ckpt_path)
    if ckpt["stage"] != ("H" if stage == "Hs" else stage):  # Hs: an H checkpoint shipped as the small-photo H
        raise MosError(f"{ckpt_path}: holds a stage-{ckpt['stage']} model, not {stage}")
    path = Path(out_dir) / weights_filename(model.encoder_name, stage)
    if path.exists() and not overwrite:
        raise MosError(f"{path}: already exists; pass --overwrite to replace it")
    cfg = ckpt.get("config", {})
    origin = read_provenance(provenance) if provenance is not None else None
    card = {"stage": stage, **run_fields(ckpt), "source_checkpoint": str(ckpt_path)}
    if origin is not None:
        card["data_provenance"] = origin
    if notes:
        card["notes"] = notes
    if stage == "L" and cfg.get("data", {}).get("size"):
        card["inference"] = {"l_size": int(cfg["data"]["size"])}  # the cascade runs L at its training size
        if l_flip:
            card["inference"]["l_flip"] = True
    return save_weights(model, path, card, fp16=fp16)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--stage", required=True, choices=["L", "H", "Hs"],
                    help="Hs: an H checkpoint exported as H's small-photo weights (used by cuts of photos ≤ 1024 px)")
    add_output_args(ap)
    args = ap.parse_args(argv)
    try:
        path = export(args.checkpoint, args.stage, args.out, args.fp16, args.overwrite, args.provenance, args.notes,
                      args.l_flip)
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
