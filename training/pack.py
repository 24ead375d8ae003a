"""A training pack: a training config's data shrunk into one small folder that can travel to a lent GPU in one call.

    python -m training.pack build CONFIG --out data/pack_L [--max-mb M] [--long 336] [--quality 85]
                                         [--tiles N] [--tile 512]           # H: full-resolution crops as well
    python -m training.pack travel [PATH ...]       # what a device call would carry, against its 64 MiB
    python -m training.pack slim RUN/last.pt OUT.pt  # the checkpoint without optimizer state (under 16 MiB)

A device call carries the whole working tree (about 41 MB of it is tracked, most of that the shipped weights) plus
what it names, 64 MiB in all, and brings back files of at most 16 MiB; its machine is held for minutes. So the pack
stores every photo once (a folder source and a matte source that use the same photo share one file), shrunk to the
size the stage trains at, and keeps photos in proportion to each source's sampling weight, chosen by a hash of the
photo's bytes: the folder and matte sources keep the same photos, the same photos are kept wherever the data lies,
and a larger budget keeps a superset of a smaller one's. The pack's config is the source config with its roots moved
into the pack; the weights, the model and the schedule are left as they are.

H learns from two views of a large photo, as a cut runs it: the whole photo at its global size (1024 px) and 512 px
crops at full resolution. A shrunk photo holds only the first, so an H pack (`--tiles N`) also stores, for every
photo larger than `--long`, up to N full-resolution crops of `--tile` px centred on the mask's edge, spread over it;
each crop is a photo of its own beside the shrunk whole (NAME_t0.jpg …), kept or dropped with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mos_studio.core.errors import ImageError, MosError

from .data.sources import FolderSource, MatteSource, read_gray
from .train import _sources, read_config

TRAVEL_LIMIT = 64 * 1024 * 1024  # a device call's working tree and carried paths together
RETURN_LIMIT = 16 * 1024 * 1024  # one file brought back from a device call
MARGIN_MB = 1.0  # room left in each call by the default budget


def keep_share(key: str) -> float:
    """Where a photo falls in [0, 1): a source keeping a share f of its photos keeps those below f."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(16 ** 12)


@dataclass
class _Item:
    image: Path
    mask: Path | None
    name: str = ""
    sizes: tuple[int, int] = (0, 0)  # encoded bytes of image and mask, every view together
    share: float = 0.0  # keep_share of the photo's content
    data: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)  # (name suffix, JPEG, PNG) a view


@dataclass
class _Plan:
    items: dict[tuple[str, str, str], _Item] = field(default_factory=dict)  # (folder, image, mask or "") -> item
    folders: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # pack folder -> item keys


def _label(root: str | list) -> str:
    """A pack folder's name from a source's root (the first of a list: a pack's own config packed again)."""
    parts = [p for p in Path(str(root[0] if isinstance(root, list) and root else root)).parts
             if p not in ("/", "..", ".")]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts[-3:])) or "source"


def _real(p: Path) -> str:
    return os.path.realpath(p)


def _jpg(img: np.ndarray, quality: int, what: Path) -> bytes:
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MosError(f"{what}: could not be encoded as JPEG")
    return jpg.tobytes()


def _png(m: np.ndarray, what: Path) -> bytes:
    ok, png = cv2.imencode(".png", np.round(np.clip(m, 0, 1) * 255).astype(np.uint8),
                           [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise MosError(f"{what}: could not be encoded as PNG")
    return png.tobytes()


def edge_tiles(mask: np.ndarray, tile: int, count: int, seed: str) -> list[tuple[int, int, int]]:
    """Up to `count` square crops (y0, x0, side) of side min(tile, the photo's short side) centred on the mask's
    edge, each as far as can be from those already chosen (farthest-point order from a start drawn by `seed`), so a
    few crops spread over the whole outline instead of piling up where it is longest. Empty when the mask has no
    edge (all object or all background): such a photo's whole view is all H needs of it."""
    h, w = mask.shape
    side = min(tile, h, w)
    if count <= 0 or side < 8:
        return []
    step = max(1, side // 8)  # a coarse grid of the edge is enough to place a few crops
    small = mask[::step, ::step]
    edge = (small > 0.5).astype(np.uint8)
    band = cv2.morphologyEx(edge, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    band |= (small > 0.05) & (small < 0.95)  # a soft label's ramp is edge too
    ys, xs = np.nonzero(band)
    if len(ys) == 0:
        return []
    pts = np.stack([ys, xs], 1).astype(np.float64) * step
    rng = np.random.default_rng(int(hashlib.sha1(seed.encode("utf-8")).hexdigest()[:8], 16))
    chosen = [int(rng.integers(len(pts)))]
    dist = np.hypot(*(pts - pts[chosen[0]]).T)
    while len(chosen) < count:
        j = int(np.argmax(dist))
        if dist[j] < side / 2:  # the rest of the edge lies inside crops already chosen
            break
        chosen.append(j)
        dist = np.minimum(dist, np.hypot(*(pts - pts[j]).T))
    out = []
    for j in chosen:
        cy, cx = pts[j]
        y0 = int(np.clip(round(cy - side / 2), 0, h - side))
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        out.append((y0, x0, side))
    return out


def _encode(image: Path, raw: bytes, mask: Path | None, long: int, quality: int, tiles: int = 0,
            tile: int = 512) -> list[tuple[str, bytes, bytes | None]]:
    """The photo (its file's bytes, already read for the keep hash) and mask, shrunk and re-encoded; with `tiles`,
    also up to that many full-resolution edge crops of a photo larger than `long` (`edge_tiles`)."""
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)  # BGR, as imencode wants it
    if img is None:
        raise ImageError(image, "not a readable image")
    h, w = img.shape[:2]
    scale = min(1.0, long / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else img
    if mask is None:
        return [("", _jpg(small, quality, image), None)]
    m = read_gray(mask)
    if m.shape != (h, w):
        raise MosError(f"{mask}: mask is {m.shape[1]}×{m.shape[0]} but {image.name} is {w}×{h}")
    views = [("", _jpg(small, quality, image),
              _png(cv2.resize(m, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else m, mask))]
    if scale < 1.0:
        for k, (y0, x0, side) in enumerate(edge_tiles(m, tile, tiles, hashlib.sha1(raw).hexdigest())):
            views.append((f"_t{k}", _jpg(img[y0:y0 + side, x0:x0 + side], quality, image),
                          _png(m[y0:y0 + side, x0:x0 + side], mask)))
    return views


class Pack:
    """Plans, sizes and writes a pack for one L or H config (paths in the config are relative to the working folder)."""

    def __init__(self, config: str | Path):
        self.config = Path(config)
        self.raw, _ = read_config(self.config)  # its base chain merged: the packed config stands alone
        self.stage = str(self.raw.get("stage", "L"))
        self.tiles, self.tile = 0, 512  # what encode() was asked for, for the report
        if self.stage not in ("L", "H"):
            raise MosError(f"{self.config}: stage must be L or H, not {self.stage!r}")
        self.plan = _Plan()
        self.specs: dict[str, list[dict]] = {}  # "train"/"val" -> new source tables (filled by write)
        self._sources: dict[str, list[tuple[dict, object]]] = {}
        for part, specs in (("train", self.raw.get("data", {}).get("sources", [])),
                            ("val", self.raw.get("val", {}).get("sources", []))):
            built, _ = _sources(specs, f"{self.config}: [[{'data' if part == 'train' else 'val'}.sources]]")
            self._sources[part] = list(zip(specs, built, strict=True))
        self._lay_out()

    def _add(self, folder: str, image: Path, mask: Path | None) -> tuple[str, str, str]:
        key = (folder, _real(image), _real(mask) if mask is not None else "")
        if key not in self.plan.items:
            self.plan.items[key] = _Item(image, mask)
            self.plan.folders.setdefault(folder, []).append(key)
        return key

    def _new_folder(self, base: str) -> str:
        folder, n = base, 2
        while folder in self.plan.folders:
            folder, n = f"{base}_{n}", n + 1
        self.plan.folders[folder] = []
        return folder

    def _lay_out(self) -> None:
        """Which pack folder each photo goes to: folder sources first, so matte sources can share their files."""
        self.layout: dict[str, list[dict]] = {"train": [], "val": []}
        for part in ("train", "val"):
            prefix = "" if part == "train" else "val_"
            entries: list[dict | None] = []
            for spec, src in self._sources[part]:
                if isinstance(src, FolderSource):
                    folder = self._new_folder(prefix + _label(spec["root"]))
                    keys = [self._add(folder, ip, mp) for ip, mp in src.pairs]
                    entries.append({"spec": spec, "kind": "folder", "folder": folder, "keys": keys, "own": True})
                else:
                    entries.append(None)
            for i, (spec, src) in enumerate(self._sources[part]):
                if isinstance(src, MatteSource):
                    roots = self._covering({(_real(ip), _real(mp)) for ip, mp in src.pairs})
                    own = roots is None
                    if roots is None:  # its photos are not exactly some folder sources' photos: its own folder
                        roots = [self._new_folder(f"{prefix}matte{i}")]
                        for ip, mp in src.pairs:
                            self._add(roots[0], ip, mp)
                    bg_roots: list[str] | None = None
                    bg_own = False
                    if src.backgrounds:
                        bg_roots = self._covering({_real(p) for p in src.backgrounds}, by_image=True)
                        bg_own = bg_roots is None
                        if bg_roots is None:
                            bg_roots = [self._new_folder(f"{prefix}backgrounds{i}")]
                            for p in src.backgrounds:
                                self._add(bg_roots[0], p, None)
                    keys = [k for r in roots for k in self.plan.folders[r]]
                    bg_keys = [k for r in bg_roots or [] for k in self.plan.folders[r]]
                    entries[i] = {"spec": spec, "kind": "matte", "roots": roots, "keys": keys, "own": own,
                                  "bg_roots": bg_roots, "bg_keys": bg_keys, "bg_own": bg_own}
                elif entries[i] is None:
                    entries[i] = {"spec": spec, "kind": "other", "keys": []}
            self.layout[part] = [e for e in entries if e is not None]

    def _covering(self, wanted: set, by_image: bool = False) -> list[str] | None:
        """Pack folders (with masks) whose photos together are exactly `wanted`, or None."""
        roots, seen = [], set()
        for folder, keys in self.plan.folders.items():
            ids = {k[1] if by_image else k[1:] for k in keys if k[2]}
            if ids & wanted:
                if not ids <= wanted:
                    return None
                roots.append(folder)
                seen |= ids
        return sorted(roots) if seen == wanted else None

    def encode(self, long: int, quality: int, progress: bool = False, tiles: int = 0, tile: int = 512) -> None:
        if tiles and self.stage != "H":
            raise MosError(f"{self.config}: --tiles is for H packs (L trains on the whole photo at {long} px)")
        self.tiles, self.tile = tiles, tile
        for n, item in enumerate(self.plan.items.values(), 1):
            raw = item.image.read_bytes()
            item.share = keep_share(hashlib.sha1(raw).hexdigest())
            item.data = _encode(item.image, raw, item.mask, long, quality, tiles, tile)
            item.sizes = (sum(len(v[1]) for v in item.data), sum(len(v[2] or b"") for v in item.data))
            if progress and n % 200 == 0:
                print(f"  encoded {n}/{len(self.plan.items)}", flush=True)

    def _bytes(self, keys: set) -> int:
        return sum(sum(self.plan.items[k].sizes) for k in keys)

    @staticmethod
    def share_of(entry: dict, scale: float, part: str) -> float:
        """The share of an entry's photos a pack keeps. Training sources keep photos in proportion to their sampling
        weight (`scale` photos per unit of weight), so every kept photo is drawn about as often and a large set of
        near-duplicate video frames does not crowd out the pool; validation keeps the same share of every source."""
        if part == "val":
            return scale
        n = max(1, len(entry["keys"]))
        return min(1.0, scale * float(entry["spec"].get("weight", 1.0)) / n)

    def select(self, scale: float, part: str) -> set:
        """The photos a pack at `scale` writes for one part (a matte source on folder sources' photos adds none)."""
        keys: set = set()
        for e in self.layout[part]:
            f = self.share_of(e, scale, part)
            if e.get("own"):
                keys |= {k for k in e["keys"] if self.plan.items[k].share < f}
            if e.get("bg_own"):
                keys |= {k for k in e["bg_keys"] if self.plan.items[k].share < f}
        return keys

    def overhead(self) -> int:
        """config.toml and pack.json travel with the last call: about the source config's size plus a few hundred
        bytes a source."""
        return 2048 + len(self.config.read_bytes()) + 400 * sum(len(v) for v in self.layout.values())

    def fit(self, budget: int, val_share: float, parts: int = 1) -> tuple[float, float]:
        """The largest scales (validation first, within val_share of one call's budget) whose photos fit `parts`
        calls of `budget` bytes each."""
        def largest(part: str, room: int) -> float:
            top = 1.0 if part == "val" else max(
                [len(e["keys"]) / max(1e-9, float(e["spec"].get("weight", 1.0))) for e in self.layout[part]
                 if e["keys"]] or [1.0])
            if self._bytes(self.select(top, part)) <= room:
                return top
            lo, hi = 0.0, top
            for _ in range(30):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if self._bytes(self.select(mid, part)) <= room else (lo, mid)
            return lo
        last = budget - self.overhead()
        if last <= 0:
            raise MosError("--max-mb leaves no room for a single photo")
        f_val = largest("val", int(last * val_share)) if self.layout["val"] else 1.0
        used = self._bytes(self.select(f_val, "val"))
        scale = largest("train", budget * (parts - 1) + last - used)
        while parts > 1 and self.assign(scale, parts, self._caps(budget, parts, last - used)) is None:
            scale *= 0.99  # the parts are filled whole photos at a time; give up a photo or two to make them fit
        return scale, f_val

    @staticmethod
    def _caps(budget: int, parts: int, last: int) -> list[int]:
        return [budget] * (parts - 1) + [last]

    def assign(self, scale: float, parts: int, caps: list[int] | None = None) -> dict | None:
        """Which part each kept training photo goes to: in order of a second hash of its bytes, each to the part
        with the most room left. None when some part would overflow its cap."""
        keys = sorted(self.select(scale, "train"),
                      key=lambda k: keep_share(f"{self.plan.items[k].share!r}:part") if parts > 1 else 0.0)
        room = list(caps) if caps is not None else [2**62] * parts
        where: dict = {}
        for k in keys:
            i = max(range(parts), key=lambda j: room[j])
            room[i] -= sum(self.plan.items[k].sizes)
            if room[i] < 0:
                return None
            where[k] = i
        return where

    def write(self, out: Path, scale: float, val_scale: float, long: int, quality: int, parts: int = 1,
              budget: int | None = None) -> dict:
        if out.exists() and any(out.iterdir()):
            raise MosError(f"{out}: already exists and is not empty; remove it or pick another --out")
        val_keys = self.select(val_scale, "val")
        caps = None
        if budget is not None:
            caps = self._caps(budget, parts, budget - self.overhead() - self._bytes(val_keys))
        part_of = self.assign(scale, parts, caps)
        if part_of is None:
            raise MosError(f"the photos do not fit {parts} part(s) of {_mib(budget or 0)}")
        chosen = set(part_of) | val_keys
        where = repo_relative(out)
        names: dict[tuple[str, str, str], str] = {}
        views = 0  # image files written: each photo and its crops
        present: set[tuple[str, str]] = set()  # (part folder, pack folder) that hold a photo
        for folder, keys in self.plan.folders.items():
            used: set[str] = set()
            for k in keys:
                if k not in chosen:
                    continue
                item = self.plan.items[k]
                stem = re.sub(r"[^A-Za-z0-9._-]+", "_", item.image.stem)[:80] or "photo"
                name, n = stem, 2
                while any(f"{name}{v[0]}" in used for v in item.data):  # a crop's name is a file name too
                    name, n = f"{stem}_{n}", n + 1
                used.update(f"{name}{v[0]}" for v in item.data)
                top = "val" if k in val_keys and k not in part_of else f"part{part_of[k] + 1}"
                (out / top / folder).mkdir(parents=True, exist_ok=True)
                for suffix, jpg, png in item.data:
                    (out / top / folder / f"{name}{suffix}.jpg").write_bytes(jpg)
                    if png is not None:
                        (out / top / folder / f"{name}{suffix}.png").write_bytes(png)
                views += len(item.data)
                present.add((top, folder))
                names[k] = name

        def roots(folders: list[str], val: bool) -> list[str]:
            tops = ["val"] if val else [f"part{i + 1}" for i in range(parts)]
            return [(where / t / f).as_posix() for f in folders for t in tops if (t, f) in present]

        report: dict = {"config": str(self.config), "stage": self.stage, "long_side": long, "jpeg_quality": quality,
                        "tiles": self.tiles, "tile": self.tile, "photos_per_weight": round(scale, 5),
                        "val_share": round(val_scale, 4), "parts": parts, "sources": {}}
        for part in ("train", "val"):
            tables = []
            for entry in self.layout[part]:
                spec = dict(entry["spec"])
                kept = [k for k in entry["keys"] if k in chosen]
                if entry["kind"] != "other":
                    root = entry["spec"].get("root")
                    if isinstance(root, list):
                        root = f"{root[0]} (+{len(root) - 1} more)" if len(root) > 1 else root[0] if root else ""
                    report["sources"][f"{part}:{root}"] = {
                        "kind": entry["kind"], "photos": len(entry["keys"]), "packed": len(kept)}
                    if not kept:
                        continue  # a source with no photo left is dropped rather than left to fail on load
                if entry["kind"] == "folder":
                    spec.update(root=roots([entry["folder"]], part == "val"), layout="pairs", missing_ok=True)
                    spec.pop("image_dir", None)
                    spec.pop("mask_dir", None)
                elif entry["kind"] == "matte":
                    spec.update(root=roots(entry["roots"], part == "val"), layout="pairs", missing_ok=True)
                    if entry["bg_roots"]:
                        spec["backgrounds"] = roots(entry["bg_roots"], part == "val")
                tables.append(spec)
            self.specs[part] = tables
        cfg = {"stage": self.stage, **{k: v for k, v in self.raw.items() if k != "stage"}}
        cfg["data"] = {**self.raw.get("data", {}), "sources": self.specs["train"]}
        if "val" in self.raw:
            cfg["val"] = {**self.raw["val"], "sources": self.specs["val"]}
        note = (f"# A training pack of {self.config} (python -m training.pack build): roots moved into {where}, "
                f"photos shrunk to {long} px"
                + (f" beside up to {self.tiles} full-resolution {self.tile} px crops of each larger one's edge"
                   if self.tiles else "")
                + f", each training source keeping up to {scale:.3g} photos per unit of "
                f"its weight and validation {val_scale:.1%} of its photos (pack.json counts them), in {parts} "
                "part(s); a part that is missing is skipped (missing_ok).\n")
        (out / "config.toml").write_text(note + dump_toml(cfg))

        def size(p: Path) -> int:
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0

        calls = [{"carry": [(where / f"part{i + 1}").as_posix()], "bytes": size(out / f"part{i + 1}")}
                 for i in range(parts)]
        calls[-1]["carry"] += [(where / n).as_posix() for n in ("val", "config.toml", "pack.json")
                               if n != "val" or (out / "val").is_dir()]
        calls[-1]["bytes"] += size(out / "val") + (out / "config.toml").stat().st_size + 4096
        report.update(photos=len(names), views=views, calls=calls)
        (out / "pack.json").write_text(json.dumps(report, indent=2) + "\n")
        files = [p for p in out.rglob("*") if p.is_file()]
        report.update(files=len(files), bytes=sum(p.stat().st_size for p in files))
        (out / "pack.json").write_text(json.dumps(report, indent=2) + "\n")
        return report


def checkout_of(out: Path) -> Path | None:
    """The root of the git checkout that holds `out`, or None. `out` and its parents may not exist yet (a first
    pack into `data/`): git is asked from the nearest folder that does."""
    here = out.resolve().parent
    while not here.is_dir() and here != here.parent:
        here = here.parent
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(top) if top else None


def repo_relative(out: Path) -> Path:
    """`out` as seen from the root of the checkout that holds it: a device call runs there, wherever the pack was
    built from. Outside a checkout, `out` as given."""
    top = checkout_of(out)
    return Path(os.path.relpath(out.resolve(), top)) if top else out


# ----------------------------------------------------------------------------------------------------------- TOML
def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise MosError(f"cannot write {type(v).__name__} {v!r} to TOML")


def dump_toml(cfg: dict, prefix: str = "") -> str:
    """TOML for the shapes a training config has: scalars, lists of scalars, tables and arrays of tables."""
    plain = {k: v for k, v in cfg.items() if not isinstance(v, dict) and not (
        isinstance(v, list) and v and all(isinstance(x, dict) for x in v))}
    lines = [f"{k} = {_toml_value(v)}" for k, v in plain.items()]
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            lines += ["", f"[{name}]", dump_toml(v, name + ".").rstrip("\n")]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                lines += ["", f"[[{name}]]", dump_toml(x, name + ".").rstrip("\n")]
    return "\n".join(line for line in lines) + "\n"


# --------------------------------------------------------------------------------------------------------- travel
def travel_bytes(carry: list[str | Path], repo: str | Path = ".") -> dict:
    """What a device call would carry from `repo`: tracked and untracked-not-ignored files plus the carried paths."""
    repo = Path(repo)

    def listed(*args: str) -> list[Path]:
        try:
            out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", *args], check=True,
                                 capture_output=True).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise MosError(f"{repo}: not a git checkout ({err})") from err
        return [repo / p for p in out.decode("utf-8", "replace").split("\0") if p]

    def size(paths: list[Path]) -> int:
        return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())

    tree = size(listed()) + size(listed("--others", "--exclude-standard"))
    carried = 0
    for c in carry:
        p = repo / c
        if not p.exists():
            raise MosError(f"{p}: carried path not found")
        carried += size([p] if p.is_file() else [q for q in p.rglob("*")])
    return {"tree": tree, "carried": carried, "total": tree + carried, "limit": TRAVEL_LIMIT}


def slim(ckpt: str | Path, out: str | Path) -> int:
    """Keep what export and soup read (model, config, lineage), drop optimizer state: small enough to come back."""
    import torch

    from .export import read_checkpoint

    _, state = read_checkpoint(ckpt)
    keep = {k: v for k, v in state.items() if k not in ("optimizer", "scaler", "rng")}
    keep["slim"] = True
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(keep, out)
    return out.stat().st_size


def default_budget_mb(out: Path) -> float:
    """A part's budget: what a call leaves beside the checkout's tree as it is now, less MARGIN_MB for what the tree
    gains before the call (the tree grows every stop; a fixed 22 MiB left 0.1 MiB at stop 52), 22 outside one."""
    top = checkout_of(out)
    if top is None:
        return 22.0
    room = (TRAVEL_LIMIT - travel_bytes([], top)["tree"]) / 2**20 - MARGIN_MB
    if room < 1:
        raise MosError(f"the checkout {top} alone leaves {room + MARGIN_MB:.1f} MiB of a device call's 64: "
                       "too little for a pack")
    return room


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.pack", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="shrink a training config's data into one folder")
    b.add_argument("config")
    b.add_argument("--out", required=True, help="the pack folder, inside the checkout and ignored by git "
                                                "(e.g. data/pack_L), so a device call can carry it")
    b.add_argument("--max-mb", type=float, default=None,
                   help="size budget of each part in MiB (default: what a device call's 64 MiB leaves beside the "
                        f"checkout's tree, less {MARGIN_MB:g} MiB; 22 outside a checkout)")
    b.add_argument("--long", type=int, default=None,
                   help="long side in px (default: 336, L's training size; for an H config 1024, its global pass)")
    b.add_argument("--tiles", type=int, default=0,
                   help="H only: also store up to this many full-resolution crops of the edge of every photo "
                        "larger than --long (default 0)")
    b.add_argument("--tile", type=int, default=512, help="side of those crops in px (default 512, H's crop size)")
    b.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    b.add_argument("--val-share", type=float, default=0.06, help="share of the budget for validation photos")
    b.add_argument("--parts", type=int, default=1,
                   help="split the pack into this many parts of --max-mb each, one per device call: the calls "
                        "before the last carry a part with a trivial command; the last carries its part, the "
                        "validation photos and the config, and trains on every part that is still there")
    t = sub.add_parser("travel", help="what a device call would carry, against its limit")
    t.add_argument("carry", nargs="*")
    s = sub.add_parser("slim", help="a checkpoint without optimizer state, to bring back from a device call")
    s.add_argument("checkpoint")
    s.add_argument("out")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            pack = Pack(args.config)
            if args.long is None:
                args.long = 1024 if pack.stage == "H" else 336
            if not 8 <= args.long <= 4096 or not 30 <= args.quality <= 100 or (
                    args.max_mb is not None and args.max_mb <= 0):
                raise MosError("--long must be 8-4096, --quality 30-100 and --max-mb positive")
            if not 0 <= args.tiles <= 64 or not 32 <= args.tile <= 4096:
                raise MosError("--tiles must be 0-64 and --tile 32-4096")
            if not 1 <= args.parts <= 8:
                raise MosError("--parts must be 1-8 (a device call carries at most 8 paths)")
            if args.max_mb is None:  # before the encoding, so a checkout too large to leave room fails at once
                args.max_mb = default_budget_mb(Path(args.out))
                print(f"each part: up to {args.max_mb:.1f} MiB (--max-mb)", flush=True)
            print(f"{args.config}: {len(pack.plan.items)} photos in {len(pack.plan.folders)} folders; encoding at "
                  f"{args.long} px, quality {args.quality}"
                  + (f", up to {args.tiles} crops of {args.tile} px a larger photo" if args.tiles else ""), flush=True)
            pack.encode(args.long, args.quality, progress=True, tiles=args.tiles, tile=args.tile)
            budget = int(args.max_mb * 2**20)
            scale, val_scale = pack.fit(budget, args.val_share, args.parts)
            report = pack.write(Path(args.out), scale, val_scale, args.long, args.quality, args.parts, budget)
            for name, r in report["sources"].items():
                print(f"  {name}: {r['packed']} of {r['photos']}{'' if r['packed'] else ' (dropped)'}")
            print(f"wrote {args.out}: {report['photos']} photos ({report['views']} files with their crops), "
                  f"{_mib(report['bytes'])} (up to {scale:.3g} "
                  f"training photos per unit of weight, {val_scale:.1%} of the validation photos)")
            top = checkout_of(Path(args.out))
            if top is not None and subprocess.run(["git", "-C", str(top), "check-ignore", "-q",
                                                   str(Path(args.out).resolve())]).returncode != 0:
                print(f"note: git does not ignore {args.out}: every device call would send it whole with the tree, "
                      "and a commit could take it in; build it in an ignored folder (e.g. data/pack_L)")
            if top is None:
                print(f"note: {args.out} is not inside a git checkout, so a device call cannot carry it; build it "
                      "inside the checkout, in a folder git ignores (e.g. data/pack_L)")
            try:
                for i, call in enumerate(report["calls"], 1):
                    if top is None:
                        break
                    tr = travel_bytes(call["carry"], top)
                    print(f"call {i}: carry {json.dumps(call['carry'])}: sends {_mib(tr['total'])} of "
                          f"{_mib(tr['limit'])} (tree {_mib(tr['tree'])})"
                          + ("; over the limit: this call cannot be sent (a smaller --max-mb or more --parts)"
                             if tr["total"] > tr["limit"] else ""))
            except MosError:
                pass
        elif args.cmd == "travel":
            tr = travel_bytes(args.carry)
            print(f"tree {_mib(tr['tree'])} + carried {_mib(tr['carried'])} = {_mib(tr['total'])} "
                  f"of {_mib(tr['limit'])}")
            return 0 if tr["total"] <= tr["limit"] else 1
        else:
            n = slim(args.checkpoint, args.out)
            over = "; over the 16 MiB a device call brings back" if n > RETURN_LIMIT else ""
            print(f"wrote {args.out} ({_mib(n)}{over})")
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
