"""Check a converted encoder init file on real photos: the converted Lite0 trunk + the package's own classifier head
(`_conv_head`, `_bn1`, `_fc`) must still name ImageNet classes correctly.

    python -m training.check_pretrained runs/init/effl0_imagenet.safetensors \\
        --samples /work/.mirror/EliSchwartz+imagenet-sample-images/repo --count 8

`--samples` is the imagenet-sample-images repository (one photo per class, `n01440764_tench.JPEG`, …): a git
directory (read with `git show`, no work tree needed) or a plain folder holding all 1000 photos. The class index of
a photo is its wnid's rank among the 1000 wnids, the order ImageNet-1k classifiers use. Photos go through
MeticulousNet's own normalisation (ImageNet mean/std), so this also checks the normalisation folded into the stem.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from mos_studio.core.errors import MosError
from mos_studio.core.model.encoders import EfficientNetLite0Encoder

from .pretrained import IMAGENET_MEAN, IMAGENET_STD, load_init, package_weights_path, read_source


class LiteHead(torch.nn.Module):
    """The classifier the trunk was trained with: 1×1 conv 320→1280, BN, ReLU6, global average pool, linear."""

    def __init__(self, source: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.conv_head = torch.nn.Conv2d(320, 1280, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(1280, eps=1e-3)
        self.fc = torch.nn.Linear(1280, 1000)
        self.load_state_dict({k[1:]: v.float() for k, v in source.items() if k.startswith(("_conv_head.", "_bn1.",
                                                                                            "_fc."))})

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = F.relu6(self.bn1(self.conv_head(f)))
        return self.fc(f.mean(dim=(2, 3)))


def _git(git_dir: Path, *args: str) -> bytes:
    try:
        return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise MosError(f"{git_dir}: cannot read the git repository ({err})") from err


def read_samples(samples: str | Path, count: int) -> list[tuple[str, int, np.ndarray]]:
    """(file name, class index, RGB uint8 image) for `count` photos spread evenly over the 1000 classes."""
    samples = Path(samples)
    is_git = (samples / "HEAD").is_file() and (samples / "objects").is_dir()
    if is_git:
        names = _git(samples, "ls-tree", "--name-only", "HEAD").decode().split()
    elif samples.is_dir():
        names = [p.name for p in samples.iterdir()]
    else:
        raise MosError(f"{samples}: neither a folder of ImageNet sample photos nor a git directory")
    photos = sorted(n for n in names if n.lower().endswith((".jpeg", ".jpg")) and n.startswith("n"))
    wnids = sorted({n.split("_")[0] for n in photos})
    if len(wnids) != 1000:
        raise MosError(f"{samples}: found photos of {len(wnids)} ImageNet classes, need all 1000 to know the class "
                       "indices")
    index = {w: i for i, w in enumerate(wnids)}
    picked = [photos[round(i * (len(photos) - 1) / max(1, count - 1))] for i in range(count)]
    out = []
    for name in picked:
        data = _git(samples, "show", f"HEAD:{name}") if is_git else (samples / name).read_bytes()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MosError(f"{samples}/{name}: not a decodable image")
        out.append((name, index[name.split("_")[0]], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def preprocess(rgb: np.ndarray, size: int = 224) -> torch.Tensor:
    """Shorter side to size/0.875, centre crop `size` (the usual ImageNet evaluation), [0, 1] → mean/std."""
    h, w = rgb.shape[:2]
    s = round(size / 0.875) / min(h, w)
    rgb = cv2.resize(rgb, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    x = torch.from_numpy(rgb[top:top + size, left:left + size].copy()).permute(2, 0, 1).float() / 255.0
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std)[None]


@torch.no_grad()
def check(init: str | Path, samples: str | Path, count: int = 8, source: str | Path | None = None) -> list[dict]:
    """Top-1 of the converted trunk at output stride 32 (as trained) and 8 (dilated, as MeticulousNet runs it)."""
    state, _ = load_init(init)
    head = LiteHead(read_source(source or package_weights_path())).eval()
    trunks = {}
    for os_ in (32, 8):
        enc = EfficientNetLite0Encoder(3, output_stride=os_)
        enc.load_state_dict(state, strict=True)
        trunks[os_] = enc.eval()
    rows = []
    for name, cls, rgb in read_samples(samples, count):
        x = preprocess(rgb)
        row = {"photo": name, "class": cls}
        for os_, enc in trunks.items():
            prob = torch.softmax(head(enc(x).f8), 1)[0]
            row[f"top1_os{os_}"], row[f"p_os{os_}"] = int(prob.argmax()), float(prob.max())
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.check_pretrained", description=__doc__.split("\n")[0])
    ap.add_argument("init", help="init file written by python -m training.pretrained")
    ap.add_argument("--samples", required=True, help="imagenet-sample-images: git directory or folder")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--source", help="the .pth whose classifier head to use (default: the installed package's)")
    args = ap.parse_args(argv)
    try:
        rows = check(args.init, args.samples, args.count, args.source)
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for r in rows:
        print(f"{r['photo']:<40} class {r['class']:>3}  stride 32: {r['top1_os32']:>3} ({r['p_os32']:.2f})  "
              f"dilated stride 8: {r['top1_os8']:>3} ({r['p_os8']:.2f})")
    for os_ in (32, 8):
        right = sum(r[f"top1_os{os_}"] == r["class"] for r in rows)
        print(f"output stride {os_}: {right} of {len(rows)} top-1 correct")
    return 0 if all(r["top1_os32"] == r["class"] == r["top1_os8"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
