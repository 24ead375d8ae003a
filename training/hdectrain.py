"""Train H's decoder alone on its frozen encoder's features of L's own answers (stop 39's CPU lever for H).

    python -m training.hdectrain cache OUT NAME:WEIGHT:ROOT[:EVERY]... --init Hs.safetensors [--models-dir D]
                                       [--max-side 640]
    python -m training.hdectrain train RUN SECONDS CACHE... --init Hs.safetensors [--lr 1e-4] [--batch 8]
                                       [--seed 39] [--scale NAME=FACTOR,...] [--threads 2]
    python -m training.hdectrain export RUN/last.pt --init Hs.safetensors --out DIR [--fp16] [--overwrite] [--notes T]

Why: the stage split of stop 38 found that H overruling a right L costs 0.031 IoU on the held-out photos, and that
no confidence gate separates those pixels; stop 28's H trained whole on L's answers took 300 CPU steps and stayed
level. H's input mask is fixed once L is (the shipped L with its card settings), so H's encoder features can be
computed once per photo, as the cascade's 1:1 pass sees it, and the decoder alone can then take several times more
steps in the same hour. Photos keep their own shape (H runs at 1:1 up to its global size), so every view is a
file of its own and a step accumulates `batch` single-photo passes. The encoder and its BatchNorm statistics stay
as shipped; the export is the start with a new decoder (`training.dectrain export` writes it, with the full card).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mos_studio.core.errors import MosError
from mos_studio.core.model.encoders import EncoderFeatures
from mos_studio.core.weights import load_model, sha256_file, weights_path

from . import dectrain
from .data.sources import read_gray, read_rgb
from .losses import stage_losses

FEATURES = dectrain.FEATURES
RUN_FORMAT = "mos-hdectrain-1"


def _fit(a: np.ndarray, w: int, h: int) -> np.ndarray:
    if a.shape[1] == w and a.shape[0] == h:
        return a
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if w < a.shape[1] else cv2.INTER_LINEAR)


def h_features(model, rgb: np.ndarray, coarse: np.ndarray) -> EncoderFeatures:
    """H's encoder features of a photo (uint8 H×W×3) and mask (H×W in [0, 1]), as H's forward pass computes them."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32))[None, None]
    with torch.no_grad():
        return model.encoder(model.encoder_input(torch.cat([x, m], 1)))


def build_cache(out: str | Path, specs: list[str], init: str | Path, models_dir: str | Path | None = None,
                max_side: int = 640, log=print) -> Path:
    """One .npz a view (f2/f4/f8 float16, gt and L's answer uint8): every photo plain and mirrored, at 1:1 (long
    side at most `max_side`), H fed L's answer as the cascade computes it with `models_dir`'s L and card settings."""
    from mos_studio.core import Cascade

    out = Path(out)
    if (out / "meta.json").exists():
        raise MosError(f"{out}: already holds a cache (meta.json); choose another folder")
    sources = [dectrain.Source.parse(s) for s in specs]
    if any(s.zoom for s in sources):
        raise MosError("an H cache has no box views (ZOOM); drop the fifth field")
    model = load_model(init).eval()
    if model.in_channels != 4:
        raise MosError(f"{init}: holds an L (3 input channels); this cache is for H")
    cascade = Cascade.from_pretrained(models_dir, stages="L")
    l_path = weights_path(models_dir, "default", "L")
    views = out / "views"
    views.mkdir(parents=True, exist_ok=True)
    items = [(src, ip, mp) for src in sources for ip, mp in src.pairs()]
    meta, t0 = [], time.time()
    for n, (src, ip, mp) in enumerate(items):
        rgb, mask = read_rgb(ip), read_gray(mp)
        h, w = rgb.shape[:2]
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        coarse, _ = cascade.run_low(rgb)
        f = min(1.0, max_side / max(h, w))
        vw, vh = max(8, round(w * f)), max(8, round(h * f))
        rgb, mask, coarse = _fit(rgb, vw, vh), _fit(mask, vw, vh), _fit(coarse, vw, vh)
        for kind in ("plain", "flip"):
            if kind == "flip":
                rgb, mask, coarse = rgb[:, ::-1], mask[:, ::-1], coarse[:, ::-1]
            feats = h_features(model, rgb, coarse)
            name = f"{len(meta):05d}.npz"
            np.savez(views / name, **{k: getattr(feats, k)[0].numpy().astype(np.float16) for k in FEATURES},
                     gt=np.clip(np.round(mask * 255), 0, 255).astype(np.uint8),
                     coarse=np.clip(np.round(coarse * 255), 0, 255).astype(np.uint8))
            meta.append({"name": src.name, "weight": src.weight, "image": str(ip), "kind": kind, "file": name,
                         "size": [int(vh), int(vw)]})
        if n % 50 == 0:
            log(f"{n + 1}/{len(items)} photos, {time.time() - t0:.0f} s")
    info = {"max_side": max_side, "encoder": {"file": str(init), "sha256": sha256_file(init)},
            "l": {"file": str(l_path), "sha256": sha256_file(l_path)},
            "sources": [{"name": s.name, "weight": s.weight, "root": str(s.root), "every": s.every, "zoom": False}
                        for s in sources],
            "items": meta}
    (out / "meta.json").write_text(json.dumps(info))
    log(f"done: {len(meta)} views in {time.time() - t0:.0f} s")
    return out


def _open(caches: list[str | Path]) -> list[tuple[Path, dict]]:
    views = []
    for c in caches:
        path = Path(c) / "meta.json"
        if not path.is_file():
            raise MosError(f"{c}: not an H feature cache (no meta.json); build one with "
                           "`python -m training.hdectrain cache`")
        for it in json.loads(path.read_text())["items"]:
            f = Path(c) / "views" / it["file"]
            if not f.is_file():
                raise MosError(f"{f}: missing (an interrupted build?)")
            views.append((f, it))
    return views


def train(run: str | Path, seconds: float, caches: list[str | Path], init: str | Path, lr: float = 1e-4,
          batch: int = 8, seed: int = 39, scale: dict[str, float] | None = None, max_steps: int | None = None,
          grad_weight: float = 5.0, iou_weight: float = 0.0, skip: float = 0.0, command: str = "",
          log=print) -> Path:
    """Train H's decoder for `seconds` of wall time (cosine over them), `batch` photos a step; resumes RUN/last.pt.
    With `skip` > 0 the decoder learns through H's residual skip from its input mask (MeticulousNet.mask_skip): its
    answer is added to `skip` × the mask's logit, so it learns a correction of L's answer, not an answer of its own,
    and the export carries the skip (stop 50: the shipped H given the teacher's own mask at L's resolution hands back
    0.933 / 0.771 of its 0.994 / 0.964)."""
    run = Path(run)
    if not 0.0 <= skip <= 4.0:
        raise MosError(f"--skip {skip:g}: choose a value in [0, 4]")
    info_path = run / "run.json"
    if info_path.exists():  # a resumed run goes on as it started: the skip changes what the decoder's answer means
        before = float(json.loads(info_path.read_text()).get("skip", 0.0))
        if before != skip:
            raise MosError(f"{run}: this run was started with --skip {before:g}; resume it with the same")
    run.mkdir(parents=True, exist_ok=True)
    views = _open(caches)
    model = load_model(init)
    if model.in_channels != 4:
        raise MosError(f"{init}: holds an L; train L's decoder with training.dectrain")
    model.encoder = dectrain._Cached()
    model.mask_skip = float(skip)
    names = [it["name"] for _, it in views]
    weights = {it["name"]: it["weight"] * (scale or {}).get(it["name"], 1.0) for _, it in views}
    p = dectrain.sampling(names, weights)
    log(f"{len(views)} views: " + ", ".join(f"{n} {names.count(n)} (weight {weights[n]:g})" for n in sorted(weights)))
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=lr)
    ck = run / "last.pt"
    step, wall = dectrain.resume(ck, model, opt, log)
    if not info_path.exists():
        info_path.write_text(json.dumps({
            "format": RUN_FORMAT, "command": command, "init": str(init), "init_sha256": sha256_file(init),
            "caches": [str(c) for c in caches], "seconds": seconds, "lr": lr, "batch": batch, "seed": seed,
            "scale": scale or {}, "grad_weight": grad_weight, "iou_weight": iou_weight, "skip": skip,
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, no GPU"},
            indent=1))
    rng = np.random.default_rng(seed + step)
    model.train()
    t_last, losses = time.time(), []
    with open(run / "log.csv", "a") as csv:
        while wall < seconds and (max_steps is None or step < max_steps):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, wall / seconds)))
            opt.zero_grad()
            total = iou = 0.0
            for j in rng.choice(len(views), batch, p=p):
                with np.load(views[j][0]) as z:
                    feats = EncoderFeatures(*(torch.from_numpy(z[k]).float()[None] for k in FEATURES))
                    gt = torch.from_numpy(z["gt"]).float()[None, None] / 255
                    x = torch.zeros(1, 4, *gt.shape[-2:])
                    if skip:  # the skip reads the mask channel; the cached encoder ignores the rest
                        x[:, 3:4] = torch.from_numpy(z["coarse"]).float()[None, None] / 255
                model.encoder.feats = feats
                loss = stage_losses(model(x), gt, "H", grad_weight, iou_weight)
                (loss["total"] / batch).backward()
                total += loss["total"].item() / batch
                iou += loss["iou"].item() / batch
            opt.step()
            step += 1
            now = time.time()
            wall, t_last = wall + now - t_last, now
            losses.append([total, iou])
            if step % 10 == 0:
                m = np.mean(losses, 0)
                losses = []
                csv.write(f"{step},{wall:.0f},{opt.param_groups[0]['lr']:.2e},{m[0]:.4f},{m[1]:.4f}\n")
                csv.flush()
                log(f"step {step} {wall:.0f} s loss {m[0]:.4f}")
            done = wall >= seconds or (max_steps is not None and step >= max_steps)
            if step % 20 == 0 or done:
                dectrain.checkpoint(ck, model, opt, step, wall)
    return ck


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m training.hdectrain", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="cache H's encoder features of L's answers, every photo plain and mirrored")
    c.add_argument("out")
    c.add_argument("sources", nargs="+", help="NAME:WEIGHT:ROOT[:EVERY]")
    c.add_argument("--init", required=True, help="the H whose encoder is cached")
    c.add_argument("--models-dir", default=None, help="the folder whose L (with its card settings) answers")
    c.add_argument("--max-side", type=int, default=640)
    c.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("train", help="train H's decoder on cached features")
    t.add_argument("run")
    t.add_argument("seconds", type=float)
    t.add_argument("caches", nargs="+")
    t.add_argument("--init", required=True, help="the H the cache was built from")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seed", type=int, default=39)
    t.add_argument("--scale", default="", help="NAME=FACTOR,... multiplies a source's weight")
    t.add_argument("--grad-weight", type=float, default=5.0)
    t.add_argument("--iou-weight", type=float, default=0.0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--skip", type=float, default=0.0,
                   help="train through H's residual skip from its input mask, this strong (0: off, as before)")
    dectrain.add_export_parser(sub)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "cache":
            torch.set_num_threads(args.threads)
            if args.max_side < 64:
                raise MosError(f"--max-side {args.max_side}: must be at least 64")
            build_cache(args.out, args.sources, args.init, args.models_dir, args.max_side)
        elif args.cmd == "train":
            torch.set_num_threads(args.threads)
            if args.seconds <= 0:
                raise MosError(f"SECONDS {args.seconds:g}: must be positive")
            ck = train(args.run, args.seconds, args.caches, args.init, args.lr, args.batch, args.seed,
                       dectrain.parse_scale(args.scale), args.max_steps, args.grad_weight, args.iou_weight,
                       args.skip, command=dectrain.quoted(argv, "training.hdectrain"))
            print(f"wrote {ck}")
        else:
            path = dectrain.export(args.ckpt, args.init, args.out, args.fp16, args.overwrite, args.provenance,
                                   args.notes, command=dectrain.quoted(argv, "training.hdectrain"))
            print(f"wrote {path} and {path.with_suffix('.json').name}")
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
