"""Train MeticulousNet_L or _H (paper §4.3–4.4) on CPU or GPU, one process or DDP under torchrun.

    python -m training.train --stage L --config training/configs/cpu_L.toml [--out DIR] [--resume]
    python -m training.train --stage H --config training/configs/cpu_H.toml --init-from runs/cpu_L/last.pt

`encoder_init = "PATH"` in a config's [model] table starts the encoder from ImageNet weights converted by
`python -m training.pretrained` (EfficientNet-Lite0); the file's provenance is kept in the checkpoint and card.

Reproducibility: sample i of the run is a pure function of (data seed, i) (training/data/datasets.py) and the LR a
pure function of the step, so `--resume` from a checkpoint (model, Adam, GradScaler, torch/numpy/python RNG states,
step, wall time) continues exactly where the run stopped. Ctrl-C saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import random
import shlex
import signal
import sys
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from mos_studio.core.errors import MosError
from mos_studio.core.model import MeticulousNet

from .data import SampleDataset, StepSampler, build_source
from .losses import stage_losses

try:
    from mos_studio.core import metrics
except ImportError:  # the metrics module is optional; IoU is computed here without it
    metrics = None

CKPT_FORMAT = "mos-training-checkpoint-1"

DEFAULTS: dict[str, dict] = {
    "L": {
        "model": {"encoder": "mobilenetv3", "point_fraction": 0.1},
        "data": {"seed": 0, "size": 336, "patch": 224, "iou_range": [0.8, 1.0], "fixed_samples": 0,
                 "num_workers": 4, "sources": [{"kind": "synth", "size": 512}]},
        "val": {"every": 2000, "count": 16, "grid": 6, "at_start": False, "keep_best": False, "each_photo": False,
                "sources": [{"kind": "synth", "size": 512, "seed_offset": 1_000_000_000}]},
        "train": {"iterations": 60000, "batch": 20, "lr": 2.5e-3, "schedule": "cosine", "milestones": [0.375, 0.625],
                  "gamma": 0.1, "weight_decay": 0.0, "grad_weight": 0.0, "iou_weight": 0.0, "amp": True,
                  "checkpoint_every": 2000, "log_every": 20, "seed": 0, "warmup": 0},
    },
    "H": {
        "model": {"encoder": "mobilenetv3", "point_fraction": 0.1},
        "data": {"seed": 0, "size": 336, "patch": 224, "iou_range": [0.8, 1.0], "fixed_samples": 0,
                 "num_workers": 4, "sources": [{"kind": "synth", "size": 512}]},
        "val": {"every": 2000, "count": 16, "grid": 6, "at_start": False, "keep_best": False, "each_photo": False,
                "sources": [{"kind": "synth", "size": 512, "seed_offset": 1_000_000_000}]},
        "train": {"iterations": 60000, "batch": 24, "lr": 2.25e-4, "schedule": "multistep",
                  "milestones": [0.375, 0.625], "gamma": 0.1, "weight_decay": 1e-4, "grad_weight": 5.0,
                  "iou_weight": 0.0, "amp": True, "checkpoint_every": 2000, "log_every": 20, "seed": 0, "warmup": 0},
    },
}


# ------------------------------------------------------------------------------------------------------- config
def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config(path: str | Path) -> tuple[dict, list[str]]:
    """A config file's TOML with the chain of configs it names as `base` merged under it, and that chain.

    A run that differs from another in a few settings says `base = "other.toml"` (a path relative to this file's
    folder) and only what differs: tables merge key by key, anything else (arrays of sources included) is replaced
    whole. Without it every config was a near-copy of the one before. Paths inside a config (data roots) stay
    relative to the folder training runs from."""
    chain: list[Path] = []
    layers: list[dict] = []
    here = Path(path)
    while True:
        if any(here.resolve() == seen.resolve() for seen in chain):
            loop = " -> ".join(str(p) for p in [*chain, here])
            raise MosError(f"{chain[0]}: its base configs loop ({loop})")
        try:
            raw = tomllib.loads(here.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            what = "training config" if not chain else f"base config of {chain[-1]}"
            raise MosError(f"{here}: {what} not found") from err
        except tomllib.TOMLDecodeError as err:
            raise MosError(f"{here}: not valid TOML ({err})") from err
        chain.append(here)
        layers.append(raw)
        base = raw.get("base")
        if base is None:
            break
        if not isinstance(base, str) or not base:
            raise MosError(f"{here}: base must be the file name of another config, got {base!r}")
        here = Path(os.path.normpath(here.parent / base))
    merged: dict = {}
    for raw, at in zip(reversed(layers), reversed(chain), strict=True):
        stage = raw.get("stage")
        if stage is not None and merged.get("stage", stage) != stage:
            raise MosError(f"{at}: this config is for stage {stage}, but its base is for stage {merged['stage']}")
        merged = _merge(merged, {k: v for k, v in raw.items() if k != "base"})
    return merged, [str(p) for p in chain[1:]]


def load_config(path: str | Path, stage: str) -> dict:
    path = Path(path)
    raw, bases = read_config(path)
    if raw.get("stage", stage) != stage:
        raise MosError(f"{path}: this config is for stage {raw['stage']}, not {stage}")
    cfg = _merge(DEFAULTS[stage], {k: v for k, v in raw.items() if k != "stage"})
    cfg["name"] = path.stem
    cfg["path"] = str(path)
    if bases:
        cfg["bases"] = bases
    return cfg


def lr_at(step: int, train_cfg: dict, time_fraction: float = 0.0) -> float:
    """Cosine annealing to 0 (L) or MultiStep ×gamma at fractions of the run (H).

    A pure function of the step, unless the run has a time budget: then the schedule follows whichever is further on,
    the steps or the share of the budget spent (`time_fraction`), so a run cut short by its budget still ends with a
    decayed learning rate rather than at the top of its cosine.

    `warmup = N` ramps the rate linearly over the first N steps: Adam's first steps move every weight by about the
    full rate whatever its gradient, a jolt for weights that are already good (stop 40's fine-tuning of L).
    """
    base, total = float(train_cfg["lr"]), int(train_cfg["iterations"])
    warm = int(train_cfg.get("warmup", 0))
    if 0 < warm and step < warm:
        base *= (step + 1) / warm
    pos = max(min(step, total), min(max(time_fraction, 0.0), 1.0) * total)
    if train_cfg["schedule"] == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * pos / total))
    if train_cfg["schedule"] == "multistep":
        passed = sum(pos >= int(round(f * total)) for f in train_cfg["milestones"])
        return base * float(train_cfg["gamma"]) ** passed
    if train_cfg["schedule"] == "constant":
        return base
    raise MosError(f"unknown schedule {train_cfg['schedule']!r} (cosine, multistep or constant)")


# -------------------------------------------------------------------------------------------------------- model
def build_model(cfg: dict, stage: str) -> MeticulousNet:
    m = cfg["model"]
    return MeticulousNet(m["encoder"], 3 if stage == "L" else 4, float(m["point_fraction"]), m.get("widths"),
                         float(m.get("mask_skip", 0.0)))


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Model tensors from a training checkpoint (.pt) or exported weights (.safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise MosError(f"{path}: file to initialise from not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise MosError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise MosError(f"{path}: not a training checkpoint (no 'model' entry)")
    return ckpt["model"]


def encoder_lineage(path: str | Path) -> dict:
    """The `encoder_init` record of the checkpoint or exported weights a run starts from (empty when none)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        card = path.with_suffix(".json")
        try:
            rec = json.loads(card.read_text(encoding="utf-8")).get("encoder_init") if card.is_file() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            rec = None
    else:
        try:
            rec = torch.load(path, map_location="cpu", weights_only=True).get("encoder_init")
        except Exception:  # noqa: BLE001 - read_state has already reported unreadable files
            rec = None
    return dict(rec) if isinstance(rec, dict) and rec else {}


def init_h_from_l(h_model: MeticulousNet, l_state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Copy every L tensor whose name and shape match; the first conv gets L's RGB filters and a zero mask channel."""
    first = h_model.encoder.first_conv.weight
    first_name = next(n for n, p in h_model.named_parameters() if p is first)
    state = h_model.state_dict()
    copied, skipped = [], []
    with torch.no_grad():
        for name, t in state.items():
            src = l_state.get(name)
            if src is None:
                skipped.append(name)
            elif name == first_name and src.shape[1] == 3 and t.shape[1] == 4:
                t[:, :3].copy_(src)
                t[:, 3:].zero_()
                copied.append(name)
            elif src.shape == t.shape:
                t.copy_(src)
                copied.append(name)
            else:
                skipped.append(name)
    h_model.load_state_dict(state)
    return {"copied": copied, "skipped": skipped}


# --------------------------------------------------------------------------------------------------------- data
def _sources(specs: list[dict], where: str):
    """Build every source table; a wrong value in one becomes an error naming the config and the table."""
    sources, weights = [], []
    for i, spec in enumerate(specs, 1):
        try:
            sources.append(build_source(spec))
            weights.append(float(spec.get("weight", 1.0)))
        except (ValueError, TypeError, KeyError) as err:
            what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise MosError(f"{where}, source {i} ({spec.get('kind', 'folder')} {spec.get('root', '')}): "
                           f"{what}") from err
    return sources, weights


def make_dataset(cfg: dict, stage: str, val: bool = False) -> SampleDataset:
    d = cfg["data"]
    where = f"{cfg.get('path', cfg['name'])}: [[{'val' if val else 'data'}.sources]]"
    sources, weights = _sources(cfg["val"]["sources"] if val else d["sources"], where)
    return SampleDataset(sources, weights, stage, seed=d["seed"] + (7919 if val else 0), size=d["size"],
                         patch=d["patch"], iou_range=tuple(d["iou_range"]),
                         fixed_samples=0 if val else d["fixed_samples"], augment=not val,
                         scales=tuple(d.get("scales", (1.0,))), keep_p=float(d.get("keep_p", 0.0)),
                         soft_p=float(d.get("soft_p", 0.0)),
                         # validation stays comparable across runs: no faint blobs, edge patches only
                         faint_p=0.0 if val else float(d.get("faint_p", 0.0)),
                         anywhere_p=0.0 if val else float(d.get("anywhere_p", 0.0)),
                         given_p=0.0 if val else float(d.get("given_p", 0.0)),
                         zoom_p=0.0 if val else float(d.get("zoom_p", 0.0)))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(0)


# ------------------------------------------------------------------------------------------------------ helpers
def _rng_state() -> dict:
    key, arr, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": key, "state": torch.from_numpy(arr.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def hardware_description(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{world}× CUDA {name}, torch {torch.__version__}"
    threads = torch.get_num_threads()
    return f"CPU {platform.machine()} ({os.cpu_count()} cores, {threads} threads), torch {torch.__version__}"


def _to_png(x: torch.Tensor) -> np.ndarray:
    a = x.detach().float().cpu().clamp(0, 1).numpy()
    a = a.transpose(1, 2, 0) if a.shape[0] == 3 else np.repeat(a[0][..., None], 3, axis=2)
    return (a * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def validate(model: torch.nn.Module, items: list[dict], device: torch.device, stage: str, png: Path | None,
             grid: int = 6) -> dict[str, float]:
    """IoU (and mBA/MQ when mos_studio.core.metrics exists) of the final output on the held-out samples."""
    was_training = model.training
    model.eval()
    rows, tiles = [], []
    for k, it in enumerate(items):
        x = it["image"][None].to(device)
        if stage == "H":
            x = torch.cat([x, it["coarse"][None].to(device)], 1)
        prob = torch.sigmoid(model(x).logits.float())[0, 0].cpu().numpy()
        gt = it["gt"][0].numpy()
        p, g = prob > 0.5, gt > 0.5
        union = np.count_nonzero(p | g)
        row = {"iou": np.count_nonzero(p & g) / union if union else 1.0}
        if stage == "H":
            c = it["coarse"][0].numpy() > 0.5
            cu = np.count_nonzero(c | g)
            row["input_iou"] = np.count_nonzero(c & g) / cu if cu else 1.0
        if metrics is not None:
            row["mba"] = float(metrics.mba(prob, gt))
            row["mq"] = float(metrics.mq(prob, gt))
        rows.append(row)
        if png is not None and k < grid:
            cols = [_to_png(it["image"]), _to_png(it["gt"])]
            if stage == "H":
                cols.append(_to_png(it["coarse"]))
            cols.append(_to_png(torch.from_numpy(prob)[None]))
            tiles.append(np.concatenate(cols, 1))
    if png is not None and tiles:
        cv2.imwrite(str(png), np.concatenate(tiles, 0)[..., ::-1])
    model.train(was_training)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


# --------------------------------------------------------------------------------------------------------- train
def train(stage: str, config: str | Path, out: str | Path | None = None, resume: bool = False,
          init_from: str | Path | None = None, stop_at: int | None = None, command: str | None = None,
          max_seconds: float | None = None, reset_best: bool = False) -> dict:
    """Run (or continue) a training run; returns {"step", "out", "interrupted", "out_of_time", "metrics"}.

    `reset_best` (with `resume`): the run's validation changed (stop 43 went from 48 drawn samples to every photo
    once), so the kept best score is not comparable any more; it is forgotten and the resumed weights are scored
    first under the new validation, as `at_start` scores a run's start.

    `max_seconds` bounds this invocation's training loop (a lent GPU is held for minutes, not hours): the schedule
    is compressed to fit it and the run checkpoints and ends when it is spent. Resumed, a time-budgeted run goes on
    from where its schedule stood and fits the rest into the new budget.
    """
    if reset_best and not resume:
        raise MosError("--reset-best forgets a resumed run's kept best; it needs --resume")
    if max_seconds is not None and max_seconds <= 0:
        raise MosError(f"--max-seconds must be positive, not {max_seconds}")
    if stage not in ("L", "H"):
        raise MosError(f"unknown stage {stage!r}; choose L or H")
    cfg = load_config(config, stage)
    out = Path(out) if out else Path("runs") / f"{cfg['name']}"
    tc, dc = cfg["train"], cfg["data"]

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
    else:
        device = torch.device("cpu")
    main_proc = rank == 0
    ckpt_path = out / "last.pt"
    if not resume and ckpt_path.exists():  # checked on every rank, so no rank is left waiting for the others
        raise MosError(f"{ckpt_path}: a run already exists there; pass --resume to continue it or --out "
                       "to start a new one")
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(int(tc["seed"]))
    model = build_model(cfg, stage).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
    use_amp = bool(tc["amp"]) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, wall, last_metrics = 0, 0.0, {}
    best: dict = {}  # with [val] keep_best: the step and score of best.pt
    pos0 = pos = 0.0  # where a time-budgeted schedule stands (0-1): a resumed run goes on from there, never back
    init_note = str(init_from) if init_from else ""
    encoder_init: dict = {}
    command = command or " ".join(shlex.quote(a) for a in ["python", "-m", "training.train", *sys.argv[1:]])

    if resume:
        if not ckpt_path.is_file():
            raise MosError(f"{ckpt_path}: no checkpoint to resume from")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CKPT_FORMAT or ckpt.get("stage") != stage:
            raise MosError(f"{ckpt_path}: not a stage-{stage} training checkpoint")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        step, wall, last_metrics = int(ckpt["step"]), float(ckpt["wall_time"]), dict(ckpt.get("metrics", {}))
        pos0 = float(ckpt.get("schedule_pos", 0.0))
        command = ckpt.get("command", command)
        init_note = ckpt.get("init_from", "")
        encoder_init = dict(ckpt.get("encoder_init") or {})
        best = {} if reset_best else dict(ckpt.get("best") or {})
    elif stage == "H" and not init_from and main_proc:
        print("[H] note: starting from random weights; the paper starts H from L (--init-from)", flush=True)
    if cfg["model"].get("encoder_init") and not resume and not init_from:
        from .pretrained import apply_encoder_init

        encoder_init = apply_encoder_init(model, cfg["model"]["encoder_init"])
        if main_proc:
            print(f"[{stage}] encoder initialised from {encoder_init['file']} ({encoder_init['source']}, "
                  f"{encoder_init['tensors']} tensors)", flush=True)
    if init_from and not resume:
        state = read_state(init_from)
        inherited = encoder_lineage(init_from)  # H from an ImageNet-initialised L: the card says so
        encoder_init = {**inherited, "via": str(init_from)} if inherited else {}
        if cfg["model"].get("encoder_init") and main_proc:
            print(f"[{stage}] note: encoder_init not used, the encoder comes from {init_from}", flush=True)
        if stage == "H":
            report = init_h_from_l(model, state)
            if main_proc:
                print(f"[H] initialised from {init_from}: {len(report['copied'])} tensors copied, "
                      f"{len(report['skipped'])} kept random", flush=True)
        else:
            model.load_state_dict(state)

    net = model
    if world > 1:
        ids = [local_rank] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    total = int(tc["iterations"])
    end = min(total, int(stop_at)) if stop_at is not None else total
    batch = int(tc["batch"])
    dataset = make_dataset(cfg, stage)
    loader = DataLoader(dataset, batch_size=batch // world, sampler=StepSampler(step, end, batch, rank, world),
                        num_workers=int(dc["num_workers"]), pin_memory=device.type == "cuda", drop_last=True,
                        worker_init_fn=_worker_init, generator=torch.Generator().manual_seed(0))
    val_items: list[dict] = []
    if main_proc and int(cfg["val"]["count"]) > 0:
        vset = make_dataset(cfg, stage, val=True)
        if cfg["val"]["each_photo"]:  # every validation photo once, up to count
            val_items = vset.each_photo(int(cfg["val"]["count"]))
        else:
            val_items = [vset[i] for i in range(int(cfg["val"]["count"]))]
    data_desc = [s.describe() for s in dataset.sources]

    def record(full: bool) -> dict:
        rec = {
            "format": CKPT_FORMAT, "stage": stage, "step": step, "iterations": total, "model": model.state_dict(),
            "config": cfg, "model_config": model.config(), "wall_time": wall,
            "command": command, "hardware": hardware_description(device, world), "metrics": last_metrics,
            "training_data": data_desc, "init_from": init_note, "encoder_init": encoder_init,
            "max_seconds": max_seconds, "out_of_time": out_of_time, "schedule_pos": pos, "best": best,
        }
        if full:
            rec.update(optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), rng=_rng_state())
        return rec

    def save() -> None:
        if main_proc:
            _atomic_save(record(True), ckpt_path)

    def run_val() -> dict:
        nonlocal best
        metrics = validate(model, val_items, device, stage, out / f"val_{step:07d}.png", int(cfg["val"]["grid"]))
        _append_csv(val_csv, ["step", *metrics], {"step": step, **{k: f"{v:.5f}" for k, v in metrics.items()}})
        print(f"[{stage}] val step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
        if keep_best:
            # IoU and mBA summed: a fine-tuning run that trades whole objects for edges (stop 40's) does not win
            score = float(metrics.get("iou", 0.0)) + float(metrics.get("mba", 0.0))
            if not best or score > float(best["score"]):
                best = {"step": step, "score": score, "metrics": metrics}
                rec = record(False)
                rec.update(metrics=metrics, slim=True)
                _atomic_save(rec, out / "best.pt")
                print(f"[{stage}] best so far (iou + mba {score:.4f}): {out / 'best.pt'}", flush=True)
        return metrics

    def over_budget(mine: bool) -> bool:
        """Every rank stops at the same step: one rank stopping alone would leave the others waiting in DDP."""
        if world == 1:
            return mine
        flag = torch.tensor([1.0 if mine else 0.0], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    loss_csv = out / "losses.csv"
    val_csv = out / "val.csv"
    fields = ["step", "lr", "total", "bce", "l1", "l2", "grad", "iou", "it_per_s"]
    if main_proc:
        _truncate_csv(loss_csv, step, fields)
        _truncate_csv(val_csv, step)
    log_every, val_every, ck_every = int(tc["log_every"]), int(cfg["val"]["every"]), int(tc["checkpoint_every"])
    keep_best = bool(cfg["val"].get("keep_best", False))
    interrupted = out_of_time = False
    net.train()
    t_window, n_window, t_last = time.perf_counter(), 0, time.perf_counter()
    if main_proc:
        print(f"[{stage}] {cfg['name']}: steps {step}..{end} of {total}, batch {batch}, {device.type}"
              f"{' AMP' if use_amp else ''}, world {world}; data: {'; '.join(data_desc)}", flush=True)
    rescore = reset_best and step > 0  # reset_best implies resume (checked above)
    if val_items and main_proc and (rescore or (bool(cfg["val"].get("at_start", False)) and step == 0)):
        # the starting weights' own score: a fine-tuning run's curve then shows whether it ever got past its start
        last_metrics = run_val()
        t_window = t_last = time.perf_counter()
    t_start = time.perf_counter()
    try:
        for b in loader:
            spent = min(1.0, (time.perf_counter() - t_start) / max_seconds) if max_seconds else 0.0
            pos = pos0 + (1.0 - pos0) * spent
            lr = lr_at(step, tc, pos)
            for g in optimizer.param_groups:
                g["lr"] = lr
            x = b["image"].to(device, non_blocking=True)
            gt = b["gt"].to(device, non_blocking=True)
            if stage == "H":
                x = torch.cat([x, b["coarse"].to(device, non_blocking=True)], 1)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                output = net(x)
            losses = stage_losses(output, gt, stage, float(tc["grad_weight"]), float(tc["iou_weight"]))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            now = time.perf_counter()
            wall += now - t_last
            t_last = now
            n_window += 1
            if main_proc:
                vals = {k: float(v.detach()) for k, v in losses.items()}
                ips = n_window / max(1e-9, now - t_window)
                _append_csv(loss_csv, fields, {"step": step, "lr": f"{lr:.6g}", **{k: f"{v:.6g}" for k, v in
                                                                                  vals.items()},
                                               "it_per_s": f"{ips:.3f}"})
                if step % log_every == 0 or step == end:
                    print(f"[{stage}] step {step}/{total} loss {vals['total']:.4f} (bce {vals['bce']:.3f} "
                          f"l1 {vals['l1']:.3f} l2 {vals['l2']:.3f} grad {vals['grad']:.3f} iou {vals['iou']:.3f}) "
                          f"lr {lr:.3g} {ips:.2f} it/s", flush=True)
                    t_window, n_window = time.perf_counter(), 0
                if val_items and (step % val_every == 0 or step == end):
                    last_metrics = run_val()
                    t_last = time.perf_counter()
                if step % ck_every == 0 or step == end:
                    save()
                    t_last = time.perf_counter()
            if max_seconds and step < end and over_budget(time.perf_counter() - t_start >= max_seconds):
                out_of_time, pos = True, 1.0
                if main_proc:
                    if val_items and step % val_every != 0:
                        last_metrics = run_val()
                    print(f"[{stage}] time budget of {max_seconds:g} s spent: stopped at step {step} of {total}",
                          flush=True)
                save()
                break
    except KeyboardInterrupt:
        interrupted = True
        save()
        if main_proc:
            print(f"[{stage}] interrupted: checkpoint saved at step {step} in {ckpt_path}; continue with --resume",
                  flush=True)
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return {"step": step, "out": str(out), "interrupted": interrupted, "out_of_time": out_of_time,
            "metrics": last_metrics}


def _append_csv(path: Path, fields: list[str], row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def _truncate_csv(path: Path, step: int, fields: list[str] | None = None) -> None:
    """Drop rows logged after the checkpoint being resumed (they will be recomputed).

    With `fields`, a log written before a column was added (e.g. "iou") gets the new header, old rows blank there.
    """
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [r for r in rows[1:] if r and int(r[0]) <= step]
    with open(path, "w", newline="") as f:
        if fields and rows[0] != fields:
            w = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
            w.writeheader()
            w.writerows(dict(zip(rows[0], r, strict=False)) for r in kept)
        else:
            csv.writer(f).writerows([rows[0], *kept])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    ap.add_argument("--stage", required=True, choices=["L", "H"])
    ap.add_argument("--config", required=True, help="TOML file, e.g. training/configs/cpu_L.toml")
    ap.add_argument("--out", help="run folder (default runs/<config name>)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ap.add_argument("--init-from", help="H: L checkpoint (.pt) or L weights (.safetensors) to start from")
    ap.add_argument("--stop-at", type=int, help="stop (and checkpoint) after this step; the schedule is unchanged")
    ap.add_argument("--reset-best", action="store_true",
                    help="with --resume: forget the kept best validation (the validation settings changed) and "
                         "score the resumed weights first")
    ap.add_argument("--max-seconds", type=float,
                    help="train for at most this long (this invocation); the schedule is compressed to fit")
    args = ap.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "training.train", *(argv or sys.argv[1:])])
    # A run started in the background (nohup … &) ignores SIGINT, and `kill` sends SIGTERM: both stop it the way
    # Ctrl-C does, with a checkpoint to --resume from, instead of losing the steps since the last one.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = train(args.stage, args.config, args.out, args.resume, args.init_from, args.stop_at, command,
                       args.max_seconds, args.reset_best)
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 130 if result["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
