"""Train L's decoder alone on its frozen encoder's cached features (stops 35-37's CPU lever).

    python -m training.dectrain cache OUT NAME:WEIGHT:ROOT[:EVERY[:ZOOM]]... --init L.safetensors [--size 336]
    python -m training.dectrain tap CACHE K --init L.safetensors
    python -m training.dectrain train RUN SECONDS CACHE... --init L.safetensors [--lr 2e-4] [--batch 16] [--seed 37]
                                      [--scale NAME=FACTOR,...] [--threads 2] [--hard G] [--tune K --tail-lr F]
    python -m training.dectrain export RUN/last.pt --init L.safetensors --out DIR [--fp16] [--overwrite]
                                       [--provenance P.json] [--notes TEXT]

Why: on a 2-core CPU one L step spends about nine tenths of its time in the encoder. Caching the shipped encoder's
features once (each photo plain, mirrored and, with ZOOM, cropped to the object's box as L's second look sees it)
lets the decoder take about ten times more steps in the same hour. The encoder and its BatchNorm statistics stay
exactly as shipped, so the exported L differs from its start only in the decoder. With `tap` and `--tune K` the
encoder's last blocks (K on, stride 8) are trained too, from their cached input: which subject L picks is decided
in those deep features, which a decoder-only run cannot change. ROOT holds images/ and masks/
(teacher soft masks or real truth) paired by file stem; WEIGHT is the source's share of each batch, as in the
training configs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from mos_studio.core.errors import MosError
from mos_studio.core.model import MeticulousNet
from mos_studio.core.model.encoders import EncoderFeatures
from mos_studio.core.optimize import inference_copy
from mos_studio.core.weights import load_model, read_card, save_weights, sha256_file, weights_filename

from .data.datasets import zoom_crop
from .data.sources import read_gray, read_rgb
from .export import read_provenance
from .losses import soft_iou_error, stage_losses

FEATURES = ("f2", "f4", "f8")
RUN_FORMAT = "mos-dectrain-1"


@dataclass(frozen=True)
class Source:
    """One cache source: NAME:WEIGHT:ROOT[:EVERY[:ZOOM]]."""

    name: str
    weight: float
    root: Path
    every: int = 1
    zoom: bool = False

    @classmethod
    def parse(cls, spec: str) -> Source:
        parts = spec.split(":")
        if len(parts) < 3 or len(parts) > 5:
            raise MosError(f"{spec!r}: expected NAME:WEIGHT:ROOT[:EVERY[:ZOOM]]")
        try:
            weight = float(parts[1])
            every = int(parts[3]) if len(parts) > 3 and parts[3] else 1
        except ValueError as err:
            raise MosError(f"{spec!r}: WEIGHT must be a number and EVERY a whole number") from err
        if not math.isfinite(weight) or weight <= 0 or every < 1:
            raise MosError(f"{spec!r}: WEIGHT must be positive and EVERY at least 1")
        zoom = len(parts) > 4 and parts[4] == "1"
        root = Path(parts[2])
        for sub in ("images", "masks"):
            if not (root / sub).is_dir():
                raise MosError(f"{root / sub}: not a folder (a source needs images/ and masks/)")
        return cls(parts[0], weight, root, every, zoom)

    def pairs(self) -> list[tuple[Path, Path]]:
        masks = {p.stem: p for p in (self.root / "masks").iterdir() if p.is_file()}
        images = sorted(p for p in (self.root / "images").iterdir() if p.stem in masks)[:: self.every]
        if not images:
            raise MosError(f"{self.root}: no image in images/ has a mask of the same name in masks/")
        return [(p, masks[p.stem]) for p in images]


def _view(img: np.ndarray, mask: np.ndarray, kind: str, size: int,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The photo and mask as L sees them: squashed to size², plain, mirrored or cropped to the object's box."""
    if kind == "zoom":
        img, mask = zoom_crop(img, mask, rng)
        if rng.random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
    elif kind == "flip":
        img, mask = img[:, ::-1], mask[:, ::-1]
    img = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=cv2.INTER_AREA)
    return img, mask


def _items(sources: list[Source]) -> list[tuple[Source, Path, Path, str]]:
    """Every view of every source, in cache order: each photo plain, mirrored and (with ZOOM) box-cropped."""
    return [(src, img, msk, kind) for src in sources for img, msk in src.pairs()
            for kind in ("plain", "flip", *(("zoom",) if src.zoom else ()))]


def _load_view(ip: Path, mp: Path, kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One view read from disk as `_view` makes it (the mask brought to the photo's size first)."""
    img, mask = read_rgb(ip), read_gray(mp)
    if mask.shape != img.shape[:2]:
        mask = cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return _view(img, mask, kind, size, rng)


def build_cache(out: str | Path, specs: list[str], init: str | Path, size: int = 336, seed: int = 36,
                batch: int = 16, log=print) -> Path:
    """Write f2/f4/f8 (float16), gt (uint8) and meta.json for every view of every source into `out`."""
    out = Path(out)
    if (out / "meta.json").exists():
        raise MosError(f"{out}: already holds a cache (meta.json); choose another folder")
    sources = [Source.parse(s) for s in specs]
    model = load_model(init).eval()
    if model.in_channels != 3:
        raise MosError(f"{init}: holds an H (4 input channels); the cache is for L")
    # BatchNorm folded into the convolutions, channels-last: the same features to about 1e-5 of their range, and
    # 1.75x faster on this 2-core CPU (0.34 -> 0.19 s a 336 px view), where the cache of a few thousand views
    # otherwise takes most of an hour.
    fast = inference_copy(model)
    rng = np.random.default_rng(seed)
    items = _items(sources)
    with torch.no_grad():
        probe = model.encoder(model.encoder_input(torch.zeros(1, 3, size, size)))
    shapes = {k: tuple(getattr(probe, k).shape[1:]) for k in FEATURES}
    out.mkdir(parents=True, exist_ok=True)
    n = len(items)
    arrays = {k: np.lib.format.open_memmap(out / f"{k}.npy", "w+", np.float16, (n, *shapes[k])) for k in FEATURES}
    gt = np.lib.format.open_memmap(out / "gt.npy", "w+", np.uint8, (n, size, size))
    meta, t0 = [], time.time()
    for b0 in range(0, n, batch):
        xs = []
        for j, (src, ip, mp, kind) in enumerate(items[b0:b0 + batch]):
            img, mask = _load_view(ip, mp, kind, size, rng)
            gt[b0 + j] = np.clip(np.round(mask * 255), 0, 255).astype(np.uint8)
            xs.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
            meta.append({"name": src.name, "weight": src.weight, "image": str(ip), "kind": kind})
        with torch.no_grad():
            x = torch.stack(xs).contiguous(memory_format=torch.channels_last)
            feats = fast.encoder(fast.encoder_input(x))
        for k in FEATURES:
            arrays[k][b0:b0 + len(xs)] = getattr(feats, k).numpy().astype(np.float16)
        if (b0 // batch) % 20 == 0:
            log(f"{b0 + len(xs)}/{n} views, {time.time() - t0:.0f} s")
    for arr in (*arrays.values(), gt):
        arr.flush()
    info = {"size": size, "seed": seed, "encoder": {"file": str(init), "sha256": sha256_file(init)},
            "sources": [{"name": s.name, "weight": s.weight, "root": str(s.root), "every": s.every, "zoom": s.zoom}
                        for s in sources],
            "shapes": shapes, "items": meta}
    (out / "meta.json").write_text(json.dumps(info))
    log(f"done: {n} views in {time.time() - t0:.0f} s")
    return out


def _tail_blocks(model: torch.nn.Module, k: int, where: str) -> torch.nn.ModuleList:
    """The encoder's blocks, checked to have a block K that runs at stride 8 (so its input is a cacheable map)."""
    blocks = getattr(model.encoder, "blocks", None)
    if not isinstance(blocks, torch.nn.ModuleList) or not hasattr(model.encoder, "stem"):
        raise MosError(f"{where}: tuning the encoder's tail needs the efficientnet_lite0 encoder, "
                       f"not {model.encoder_name}")
    first_deep = model.encoder._taps[4] + 1
    if not first_deep < k < len(blocks):
        raise MosError(f"{where}: --tune {k}: the tail must start at a block between {first_deep + 1} and "
                       f"{len(blocks) - 1} (the stride-8 blocks after the first)")
    return blocks


def build_tap(cache: str | Path, k: int, init: str | Path, batch: int = 16, log=print) -> Path:
    """Add tap{K}.npy to a cache: the input of encoder block K for every view, replayed from the cache's own sources
    and seed. Each batch's stride-2 features are checked against the cached ones, so a changed photo or encoder
    cannot go unnoticed."""
    cache = Path(cache)
    meta_path = cache / "meta.json"
    if not meta_path.is_file():
        raise MosError(f"{cache}: not a feature cache (no meta.json)")
    meta = json.loads(meta_path.read_text())
    if meta["encoder"]["sha256"] != sha256_file(init):
        raise MosError(f"{init}: is not the L this cache was built from ({meta['encoder']['file']})")
    out = cache / f"tap{k}.npy"
    if out.exists():
        raise MosError(f"{out}: already exists")
    model = load_model(init).eval()
    blocks = _tail_blocks(model, k, str(init))
    fast = inference_copy(model)
    sources = [Source(s["name"], s["weight"], Path(s["root"]), s["every"], s["zoom"]) for s in meta["sources"]]
    items = _items(sources)
    if [(str(i), kd) for _, i, _, kd in items] != [(it["image"], it["kind"]) for it in meta["items"]]:
        raise MosError(f"{cache}: its sources no longer list the photos it was built from")
    size, rng = meta["size"], np.random.default_rng(meta["seed"])
    f2 = np.load(cache / "f2.npy", mmap_mode="r")
    with torch.no_grad():
        probe = model.encoder.stem(torch.zeros(1, 3, size, size))
        for block in blocks[:k]:
            probe = block(probe)
    arr = np.lib.format.open_memmap(f"{out}.tmp.npy", "w+", np.float16, (len(items), *probe.shape[1:]))
    t0, worst = time.time(), 0.0
    for b0 in range(0, len(items), batch):
        xs = [torch.from_numpy(_load_view(ip, mp, kind, size, rng)[0]).permute(2, 0, 1).float() / 255
              for _, ip, mp, kind in items[b0:b0 + batch]]
        with torch.no_grad():
            x = fast.encoder.stem(fast.encoder_input(torch.stack(xs).contiguous(memory_format=torch.channels_last)))
            for i, block in enumerate(fast.encoder.blocks[:k]):
                x = block(x)
                if i == model.encoder._taps[2]:
                    ref = torch.from_numpy(np.array(f2[b0:b0 + len(xs)], np.float32))
                    worst = max(worst, float((x - ref).abs().max() / ref.abs().max().clamp_min(1e-6)))
        if worst > 0.01:
            raise MosError(f"{cache}: view {b0}'s features differ from the cached ones ({worst:.3f} of their range)")
        arr[b0:b0 + len(xs)] = x.numpy().astype(np.float16)
        if (b0 // batch) % 20 == 0:
            log(f"tap {k}: {b0 + len(xs)}/{len(items)} views, {time.time() - t0:.0f} s")
    arr.flush()
    del arr
    os.replace(f"{out}.tmp.npy", out)
    log(f"done: {len(items)} views in {time.time() - t0:.0f} s (stride-2 features within {worst:.1e} of the cache)")
    return out


class _Cached(torch.nn.Module):
    """Stands in for the encoder: hands the decoder the batch's cached features. With a tail (`--tune K`) the
    cached map is block K's input and the encoder's blocks K on run on it, trainable, their BatchNorm statistics
    frozen as shipped."""

    def __init__(self, blocks: torch.nn.ModuleList | None = None, k: int | None = None) -> None:
        super().__init__()
        self.feats: EncoderFeatures | None = None
        self.k = k
        if blocks is not None:
            self.blocks = blocks
            for i, block in enumerate(blocks):
                block.requires_grad_(i >= k)

    def train(self, mode: bool = True) -> _Cached:
        super().train(mode)
        if self.k is not None:
            self.blocks.eval()  # batch statistics of 16 views would drift from the shipped ones
        return self

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        assert self.feats is not None
        if self.k is None:
            return self.feats
        deep = self.feats.f8
        for block in self.blocks[self.k:]:
            deep = block(deep)
        return EncoderFeatures(self.feats.f2, self.feats.f4, deep)

    def trained_keys(self, prefix: str = "encoder.") -> list[str]:
        return [] if self.k is None else [f"{prefix}blocks.{name}" for name, _ in self.blocks.named_parameters()
                                          if int(name.split(".")[0]) >= self.k]


def _check_encoder(caches: list[str | Path], init: str | Path, model: torch.nn.Module, tune: int | None) -> None:
    """Refuse a start whose encoder is not the one the caches' features came from: the decoder (and a tuned tail)
    would learn from features that the exported weights never produce. With `tune` K only the stem and the blocks
    before K must agree, so a start whose tail was trained already may go on from the same cache."""
    own = sha256_file(init)
    for c in caches:
        meta_path = Path(c) / "meta.json"
        if not meta_path.is_file():
            continue  # _open_caches names the problem
        enc = json.loads(meta_path.read_text())["encoder"]
        if enc["sha256"] == own:
            continue
        built = Path(enc["file"])
        if not built.is_file() or sha256_file(built) != enc["sha256"]:
            raise MosError(f"{init}: not the L cache {c} was built from ({enc['file']}, sha256 {enc['sha256'][:12]}), "
                           "and that file is gone or changed, so the encoders cannot be compared")
        theirs = load_model(built).state_dict()
        differ = [k for k, v in model.state_dict().items() if k.startswith("encoder.")
                  and not (tune is not None and k.startswith("encoder.blocks.") and int(k.split(".")[2]) >= tune)
                  and (k not in theirs or not torch.equal(v, theirs[k]))]
        if differ:
            raise MosError(f"{init}: its encoder differs from the one cache {c} was built from ({enc['file']}) "
                           f"in {len(differ)} tensors, e.g. {differ[0]}; build a cache from {init}")


def _open_caches(caches: list[str | Path], tune: int | None = None) -> list[tuple[list[dict], dict[str, np.ndarray]]]:
    """Each cache's views and arrays; with `tune` K its "f8" is block K's input (tap{K}.npy, made by `tap`)."""
    opened = []
    for c in caches:
        meta_path = Path(c) / "meta.json"
        if not meta_path.is_file():
            raise MosError(f"{c}: not a feature cache (no meta.json); build one with "
                           "`python -m training.dectrain cache`")
        meta = json.loads(meta_path.read_text())
        files = {k: Path(c) / f"{k}.npy" for k in (*FEATURES, "gt")}
        if tune is not None:
            files["f8"] = Path(c) / f"tap{tune}.npy"
            if not files["f8"].is_file():
                raise MosError(f"{files['f8']}: missing; make it with `python -m training.dectrain tap {c} {tune}`")
        arrays = {k: np.load(f, mmap_mode="r") for k, f in files.items()}
        if any(len(a) != len(meta["items"]) for a in arrays.values()):
            raise MosError(f"{c}: its arrays and meta.json disagree on the number of views (an interrupted build?)")
        opened.append((meta["items"], arrays))
    return opened


def parse_scale(text: str) -> dict[str, float]:
    """NAME=FACTOR,... multiplies a source's weight (e.g. humanseg=1.5)."""
    scale = {}
    for part in filter(None, text.split(",")):
        name, _, factor = part.partition("=")
        try:
            scale[name] = float(factor)
        except ValueError as err:
            raise MosError(f"--scale {text!r}: {part!r} is not NAME=FACTOR") from err
    return scale


def sampling(names: list[str], weights: dict[str, float]) -> np.ndarray:
    """Each view's chance: its source's weight shared equally among the source's views."""
    count = {n: names.count(n) for n in set(names)}
    p = np.array([weights[n] / count[n] for n in names], dtype=np.float64)
    return p / p.sum()


def hard_sampling(names: list[str], weights: dict[str, float], errors: np.ndarray, gamma: float,
                  floor: float = 0.02) -> np.ndarray:
    """Each view's chance with hard-example weighting: its source keeps its share (as in `sampling`), spread over
    the source's views in proportion to (error + floor) ** gamma, where error is 1 - the start's soft IoU on the
    view. Why: most lost held-out IoU sits on a few photos where L takes another subject than the teacher; uniform
    batches spend most steps on views L already gets right. `floor` keeps a right view drawn now and then."""
    if len(errors) != len(names):
        raise MosError(f"{len(errors)} view errors for {len(names)} views")
    base = sampling(names, weights)
    raw = (np.clip(np.asarray(errors, np.float64), 0.0, 1.0) + floor) ** gamma
    arr = np.array(names)
    p = np.empty_like(base)
    for n in set(names):
        sel = arr == n
        p[sel] = base[sel].sum() * raw[sel] / raw[sel].sum()
    return p / p.sum()


def _load_batch(model: torch.nn.Module, opened: list, picked: list[tuple[int, int]]) -> torch.Tensor:
    """Hand the decoder these views' cached features (through the `_Cached` encoder); their targets, B×1×S×S."""
    arrs = {k: np.stack([np.asarray(opened[ci][1][k][i]) for ci, i in picked]) for k in (*FEATURES, "gt")}
    model.encoder.feats = EncoderFeatures(*(torch.from_numpy(arrs[k]).float() for k in FEATURES))
    return torch.from_numpy(arrs["gt"]).float().unsqueeze(1) / 255


def view_errors(model: torch.nn.Module, opened: list, index: list[tuple[int, int]], batch: int = 32,
                log=print) -> np.ndarray:
    """1 - soft IoU between the start's answer and the target on every cached view (the decoder alone runs; on a
    2-core CPU about 0.2 s a view, so it reports its progress)."""
    size = opened[0][1]["gt"].shape[-1]
    out = np.empty(len(index), np.float32)
    was, t0 = model.training, time.time()
    model.eval()
    with torch.no_grad():
        for b0 in range(0, len(index), batch):
            picked = index[b0:b0 + batch]
            gt = _load_batch(model, opened, picked)
            logits = model(torch.zeros(len(picked), 3, size, size)).logits.float()
            out[b0:b0 + len(picked)] = soft_iou_error(logits, gt).numpy()
            if (b0 // batch) % 20 == 0:
                log(f"start's error: {b0 + len(picked)}/{len(index)} views, {time.time() - t0:.0f} s")
    model.train(was)
    return out


def resume(ck: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, log=print) -> tuple[int, float]:
    """Step and wall time a decoder run stopped at (0, 0 for a new run), with its decoder and Adam state loaded."""
    if not ck.exists():
        return 0, 0.0
    state = torch.load(ck, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"], strict=False)
    opt.load_state_dict(state["opt"])
    step, wall = int(state["step"]), float(state["wall"])
    log(f"resumed at step {step} ({wall:.0f} s)")
    return step, wall


def checkpoint(ck: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, wall: float) -> None:
    """The decoder, any tuned encoder tail (the rest of the encoder is the start's, frozen) and Adam's state,
    replaced whole so a kill leaves the last."""
    tail = set(model.encoder.trained_keys())
    decoder = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.") or k in tail}
    torch.save({"model": decoder, "opt": opt.state_dict(), "step": step, "wall": wall}, f"{ck}.tmp")
    os.replace(f"{ck}.tmp", ck)


def train(run: str | Path, seconds: float, caches: list[str | Path], init: str | Path, lr: float = 2e-4,
          batch: int = 16, seed: int = 37, scale: dict[str, float] | None = None, max_steps: int | None = None,
          command: str = "", log=print, hard: float = 0.0, tune: int | None = None, tail_lr: float = 0.25) -> Path:
    """Train the decoder for `seconds` of wall time (cosine learning rate over them); resumes RUN/last.pt. With
    `hard` > 0 each source's views are drawn in proportion to the start's error on them to that power
    (`hard_sampling`; the errors are measured once and kept in RUN/errors.npy). With `tune` K the encoder's blocks
    K on train too, at `tail_lr` times the decoder's learning rate (the caches need tap{K}.npy)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    model = load_model(init)
    blocks = None if tune is None else _tail_blocks(model, tune, str(init))
    opened = _open_caches(caches, tune)
    _check_encoder(caches, init, model, tune)
    model.encoder = _Cached(blocks, tune)
    index = [(ci, i) for ci, (items, _) in enumerate(opened) for i in range(len(items))]
    names = [opened[ci][0][i]["name"] for ci, i in index]
    weights = {opened[ci][0][i]["name"]: opened[ci][0][i]["weight"] * (scale or {}).get(names[k], 1.0)
               for k, (ci, i) in enumerate(index)}
    p = sampling(names, weights)
    if hard > 0:
        err_path = run / "errors.npy"
        if err_path.exists():
            errors = np.load(err_path)
        else:
            errors = view_errors(model, opened, index, log=log)
            np.save(err_path, errors)
        p = hard_sampling(names, weights, errors, hard)
        log(f"hard-example weighting {hard:g}: mean error {errors.mean():.3f}, the hardest tenth of the views "
            f"drawn {p[np.argsort(errors)[-max(1, len(errors) // 10):]].sum():.0%} of the time")
    log(f"{len(index)} views: " + ", ".join(f"{n} {names.count(n)} (weight {weights[n]:g})" for n in sorted(weights)))
    tail = [q for n, q in model.named_parameters() if n.startswith("encoder.") and q.requires_grad]
    head = [q for n, q in model.named_parameters() if not n.startswith("encoder.") and q.requires_grad]
    groups = [{"params": head, "scale": 1.0}] + ([{"params": tail, "scale": tail_lr}] if tail else [])
    opt = torch.optim.Adam(groups, lr=lr)
    ck = run / "last.pt"
    step, wall = resume(ck, model, opt, log)
    info_path = run / "run.json"
    if not info_path.exists():
        info_path.write_text(json.dumps({
            "format": RUN_FORMAT, "command": command, "init": str(init), "init_sha256": sha256_file(init),
            "caches": [str(c) for c in caches], "seconds": seconds, "lr": lr, "batch": batch, "seed": seed,
            "scale": scale or {}, "hard": hard, "tune": tune, "tail_lr": tail_lr if tune is not None else None,
            "hardware": f"{platform.processor() or platform.machine()}, "
                                              f"{torch.get_num_threads()} threads, no GPU"}, indent=1))
    rng = np.random.default_rng(seed + step)
    size = opened[0][1]["gt"].shape[-1]
    dummy = torch.zeros(batch, 3, size, size)
    model.train()
    t_last, losses = time.time(), []
    with open(run / "log.csv", "a") as csv:
        while wall < seconds and (max_steps is None or step < max_steps):
            for g in opt.param_groups:
                g["lr"] = g["scale"] * lr * 0.5 * (1 + math.cos(math.pi * min(1.0, wall / seconds)))
            gt = _load_batch(model, opened, [index[j] for j in rng.choice(len(index), batch, p=p)])
            loss = stage_losses(model(dummy), gt, "L", 0.0, 1.0)
            opt.zero_grad()
            loss["total"].backward()
            opt.step()
            step += 1
            now = time.time()
            wall, t_last = wall + now - t_last, now
            losses.append([loss["total"].item(), loss["iou"].item()])
            if step % 25 == 0:
                m = np.mean(losses, 0)
                losses = []
                csv.write(f"{step},{wall:.0f},{opt.param_groups[0]['lr']:.2e},{m[0]:.4f},{m[1]:.4f}\n")
                csv.flush()
                log(f"step {step} {wall:.0f} s loss {m[0]:.4f} iou {m[1]:.4f}")
            done = wall >= seconds or (max_steps is not None and step >= max_steps)
            if step % 50 == 0 or done:
                checkpoint(ck, model, opt, step, wall)
    return ck


def export(ckpt: str | Path, init: str | Path, out_dir: str | Path, fp16: bool = False, overwrite: bool = False,
           provenance: str | Path | None = None, notes: str | None = None, command: str = "") -> Path:
    """Shipped weights: `init`'s L with the run's decoder; the card keeps init's inference settings and lineage."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise MosError(f"{ckpt}: checkpoint not found")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        decoder, steps, wall = state["model"], int(state["step"]), float(state["wall"])
    except Exception as err:  # noqa: BLE001 - any failure to read means a wrong file
        raise MosError(f"{ckpt}: not a checkpoint written by training.dectrain ({err})") from err
    info_path = ckpt.parent / "run.json"
    if not info_path.is_file():
        raise MosError(f"{info_path}: missing; the card needs the run's settings")
    info = json.loads(info_path.read_text())
    base_card = read_card(init)
    model: MeticulousNet = load_model(init)
    full = model.state_dict()
    tune = info.get("tune")
    tail = set() if tune is None else set(_Cached(_tail_blocks(model, tune, str(init)), tune).trained_keys())
    _check_encoder(info["caches"], init, model, tune)
    unknown = [k for k in decoder if k not in full or (k.startswith("encoder.") and k not in tail)]
    if unknown:
        raise MosError(f"{ckpt}: holds tensors {unknown[:3]} that {init}'s decoder does not have")
    full.update({k: v.to(full[k].dtype) for k, v in decoder.items()})
    model.load_state_dict(full)
    if info.get("skip"):  # an H decoder trained through the residual skip (training.hdectrain --skip) needs it
        model.mask_skip = float(info["skip"])
    stage = base_card.get("stage", "L")  # an H's decoder (training.hdectrain) exports the same way
    path = Path(out_dir) / weights_filename(model.encoder_name, stage)
    if path.exists() and not overwrite:
        raise MosError(f"{path}: already exists; pass --overwrite to replace it")
    data = list(base_card.get("training_data", []))
    for c in info["caches"]:
        meta = json.loads((Path(c) / "meta.json").read_text())
        names = [it["name"] for it in meta["items"]]
        for s in meta.get("sources", []):
            data.append(f"{s['root']} ({names.count(s['name'])} cached views of {s['name']}, every {s['every']}, "
                        f"{'plain/mirrored/box' if s['zoom'] else 'plain/mirrored'}; features of {c})")
    previous = list(base_card.get("previous_runs", []))
    previous.append({k: base_card[k] for k in ("command", "soup", "hardware", "notes") if k in base_card}
                    | {"sha256": sha256_file(init), "source": str(init)})
    card = {
        "stage": stage,
        "training_data": data,
        "command": info.get("command", ""),
        "export_command": command,
        "initialised_from": {"file": str(init), "sha256": sha256_file(init),
                             "what": "everything; the encoder (with its BatchNorm statistics) kept frozen" + (
                                 "" if tune is None else f" but for its blocks {tune} on, whose weights were trained "
                                                         "(their BatchNorm statistics frozen)")},
        "train_settings": {k: info[k] for k in ("seconds", "lr", "batch", "seed", "scale", "hard", "tune", "tail_lr",
                                                 "skip")
                           if info.get(k) is not None}
                          | {"loss": f"{stage}'s stage losses" + (
                              " with the soft-IoU term (weight 1)" if stage == "L" else
                              f" (gradient weight {info.get('grad_weight', 5.0):g}, soft-IoU weight "
                              f"{info.get('iou_weight', 0.0):g}); input mask: L's own answer"),
                              "trained": "decoder only" if tune is None else f"decoder and encoder blocks {tune} on"},
        "iterations": steps,
        "wall_time_s": round(wall, 1),
        "hardware": info.get("hardware", ""),
        "encoder_init": base_card.get("encoder_init", {}),
        "inference": base_card.get("inference", {}),
        "inference_notes": base_card.get("inference_notes", ""),
        "previous_runs": previous,
    }
    if provenance is not None:
        card["data_provenance"] = read_provenance(provenance)
    elif "data_provenance" in base_card:
        card["data_provenance"] = base_card["data_provenance"]
    if "used_for" in base_card:
        card["used_for"] = base_card["used_for"]  # e.g. the small-photo H's scope
    if notes:
        card["notes"] = notes
    return save_weights(model, path, card, fp16=fp16)


def quoted(argv: list[str], module: str = "training.dectrain") -> str:
    """The command line for the card, with --notes' free text left out."""
    words, skip = [], False
    for word in argv:
        words.append("TEXT" if skip else shlex.quote(word))
        skip = word == "--notes"
    return f"python -m {module} " + " ".join(words)


def add_export_parser(sub) -> argparse.ArgumentParser:
    """The `export` subcommand, shared with training.hdectrain (the same export serves L and H)."""
    e = sub.add_parser("export", help="write shipped weights and card")
    e.add_argument("ckpt")
    e.add_argument("--init", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--fp16", action="store_true")
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--provenance")
    e.add_argument("--notes")
    return e


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m training.dectrain", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="cache the encoder's features of every view")
    c.add_argument("out")
    c.add_argument("sources", nargs="+", help="NAME:WEIGHT:ROOT[:EVERY[:ZOOM]]")
    c.add_argument("--init", required=True, help="the L whose encoder is cached")
    c.add_argument("--size", type=int, default=336)
    c.add_argument("--seed", type=int, default=36)
    c.add_argument("--threads", type=int, default=2)
    tp = sub.add_parser("tap", help="add the input of encoder block K to a cache (for train --tune K)")
    tp.add_argument("cache")
    tp.add_argument("k", type=int)
    tp.add_argument("--init", required=True, help="the L the cache was built from")
    tp.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("train", help="train the decoder on cached features")
    t.add_argument("run")
    t.add_argument("seconds", type=float)
    t.add_argument("caches", nargs="+")
    t.add_argument("--init", required=True, help="the L the cache was built from")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seed", type=int, default=37)
    t.add_argument("--scale", default="", help="NAME=FACTOR,... multiplies a source's weight")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--tune", type=int, default=None,
                   help="train the encoder's blocks from K on too (the caches need `tap CACHE K`)")
    t.add_argument("--tail-lr", type=float, default=0.25, help="the tuned blocks' learning rate, times --lr")
    t.add_argument("--hard", type=float, default=0.0,
                   help="draw each source's views in proportion to the start's error on them to this power (0: "
                        "uniformly)")
    add_export_parser(sub)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "cache":
            torch.set_num_threads(args.threads)
            build_cache(args.out, args.sources, args.init, args.size, args.seed)
        elif args.cmd == "tap":
            torch.set_num_threads(args.threads)
            print(f"wrote {build_tap(args.cache, args.k, args.init)}")
        elif args.cmd == "train":
            torch.set_num_threads(args.threads)
            if args.seconds <= 0:
                raise MosError(f"SECONDS {args.seconds:g}: must be positive")
            if not 0 <= args.hard <= 8:
                raise MosError(f"--hard {args.hard:g}: must be between 0 (uniform) and 8")
            ck = train(args.run, args.seconds, args.caches, args.init, args.lr, args.batch, args.seed,
                       parse_scale(args.scale), args.max_steps, command=quoted(argv), hard=args.hard,
                       tune=args.tune, tail_lr=args.tail_lr)
            print(f"wrote {ck}")
        else:
            path = export(args.ckpt, args.init, args.out, args.fp16, args.overwrite, args.provenance, args.notes,
                          command=quoted(argv))
            print(f"wrote {path} and {path.with_suffix('.json').name}")
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
