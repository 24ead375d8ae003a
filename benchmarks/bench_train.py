"""Training throughput: iterations/second of L and H steps (forward + losses + backward + Adam) and data samples/s.

    .venv/bin/python benchmarks/bench_train.py [--iters 10] [--cpu-only] [--workers 0]
    .venv/bin/python benchmarks/bench_train.py --config data/pack_L2/config.toml [--samples 200]

On the CPU it uses the CPU configs' sizes (L 128 px batch 4, H 96 px batch 4); on CUDA additionally the paper's
(L 336 px batch 20, H 224 px batch 24, AMP). Prints peak RSS (whole process, so it only grows) and CUDA max allocated.
`--config` times a training config's own samples instead (decode, augment, composite; one process): how many
DataLoader workers a GPU call needs to keep its steps fed (docs/TRAINING.md, "Training on a lent GPU").
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mos_studio.core.model import MeticulousNet  # noqa: E402
from training.data import SampleDataset, SynthSource  # noqa: E402
from training.losses import stage_losses  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(stage: str, size: int, batch: int, iters: int, device: torch.device, amp: bool, workers: int) -> dict:
    dataset = SampleDataset([SynthSource(max(256, 2 * size))], None, stage, size=size, patch=size)
    dataset[10**6]  # load the texture photos once before timing
    t0 = time.perf_counter()
    n_data = max(4, batch)
    for i in range(n_data):
        dataset[i]
    data_rate = n_data / (time.perf_counter() - t0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=range(batch * (iters + 2)),
                                         num_workers=workers, drop_last=True)
    torch.manual_seed(0)
    model = MeticulousNet("mobilenetv3", 3 if stage == "L" else 4).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4 if stage == "H" else 0.0)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for k, b in enumerate(loader):
        x = b["image"].to(device)
        if stage == "H":
            x = torch.cat([x, b["coarse"].to(device)], 1)
        gt = b["gt"].to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            out = model(x)
        loss = stage_losses(out, gt, stage)["total"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if k >= 2:  # the first steps build kernels / allocator pools
            times.append(time.perf_counter() - t)
    row = {"stage": stage, "device": device.type, "size": size, "batch": batch, "amp": amp,
           "it_per_s": len(times) / sum(times), "data_samples_per_s": data_rate, "peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        row["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def bench_config(path: str, samples: int) -> None:
    """Seconds per sample of a config's dataset, as its DataLoader workers will draw them."""
    import numpy as np

    from training.train import load_config, make_dataset, read_config

    raw_stage = read_config(path)[0].get("stage", "L")  # a config may take its stage from its base
    cfg = load_config(path, raw_stage)
    dataset = make_dataset(cfg, raw_stage)
    dataset[0]  # the first sample loads texture photos and opens files: not timed
    times = []
    for i in range(1, samples + 1):
        t = time.perf_counter()
        dataset[i]
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    per_s = 1000 / ms.mean()
    batch = int(cfg["train"]["batch"])
    workers = int(cfg["data"]["num_workers"])
    what = f"{cfg['data']['patch']} px patches" if raw_stage == "H" else f"{cfg['data']['size']} px"
    print(f"{path}: stage {raw_stage}, {samples} samples of {what}: mean {ms.mean():.1f} ms, median "
          f"{np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}: {per_s:.0f} samples/s per process; with the "
          f"config's {workers} workers about {per_s * workers:.0f} samples/s, {per_s * workers / batch:.1f} steps of "
          f"{batch} a second if the cores are free; peak RSS {peak_rss_mb():.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--config", help="time this training config's samples instead (e.g. a pack's config.toml)")
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    print(f"host: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.config:
        bench_config(args.config, args.samples)
        return
    runs = [("L", 128, 4, torch.device("cpu"), False), ("H", 96, 4, torch.device("cpu"), False)]
    if torch.cuda.is_available() and not args.cpu_only:
        gpu = torch.device("cuda")
        print(f"GPU: {torch.cuda.get_device_name(gpu)}")
        runs += [("L", 336, 20, gpu, True), ("H", 224, 24, gpu, True)]
    for stage, size, batch, device, amp in runs:
        r = bench(stage, size, batch, args.iters, device, amp, args.workers)
        extra = f", CUDA max allocated {r['cuda_max_allocated_mb']:.0f} MB" if "cuda_max_allocated_mb" in r else ""
        print(f"{stage} {device.type}{' AMP' if amp else ''} {size}px batch {batch}: {r['it_per_s']:.2f} it/s "
              f"({r['it_per_s'] * batch:.1f} samples/s); data {r['data_samples_per_s']:.1f} samples/s per process; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB{extra}")


if __name__ == "__main__":
    main()
