"""Rebuild the training and evaluation data on a new machine, exactly as the shipped cards record it.

A new machine starts with none of the data (docs/DATA_ENGINE.md, docs/MODELS.md). Two recipes were written down only
in prose until stop 23, when the data had to be rebuilt and the held-out numbers reproduced to the last digit:

    # a photo-pool source, from a repository brought in with the search tool's fetch (a bare git dir)
    python -m training.rebuild pool GITDIR COMMIT SLUG PATH_REGEX --out POOL [--exclude REGEX]
    # the four round-1 real-truth sets, from their repositories' trees (git archive COMMIT | tar -x)
    python -m training.rebuild realsets SRC --out RAW [--sets humanseg davis horse cats]

`pool` takes the blobs at COMMIT whose path matches PATH_REGEX: absent blobs skipped, the same blob once (first in
path order), only JPEG/PNG (and MPO, a JPEG variant some cameras write) with a short side of 256 px or more, each
at POOL/SLUG/<basename>. The name matters: a photo's held-out side is a hash of SLUG/<basename> (training.pool).

`all` does the whole rebuild of a new machine in one command, from the recipes below (stop 32's commands, as run):
every pool source, the four real-truth sets with their held-out splits, the held-out list and the teacher, each
skipped when already there; with `--label-held-out N` it also labels the held-out photos with N processes and runs
the filter and the split, so the held-out numbers can be measured at once. It first checks that every repository
has been fetched and names those that have not:

    python -m training.rebuild all --mirrors /work/.mirror --out DATA [--label-held-out 2] [--no-teacher]

With `--label-train COUNT` the same processes then label the first COUNT photos of the training list (stop 33's:
every pool photo not held out, clothing only every eighth, round-robin over the sources; DATA/train_list.txt) and
write L's training copies (DATA/small/{train,val} at 512 px, DATA/matte and DATA/bg for composites), what
training/configs/device_L7.toml, device_L8.toml (small/ alone) and `training.pack` read. Until stop 40 those last
steps were typed by hand on each new machine, which is the hour a session lent a GPU cannot spare.

`realsets` expects SRC/humanseg (VikramShenoy97/Human-Segmentation-Dataset), SRC/davis (MathLee/EOR-VOS),
SRC/horse (shenshutao/image_segmentation) and SRC/cats (pcashman21/feral-cat-segmentation-dataset-and-model),
each the repository's tree at the commit the cards name, and writes RAW/<set>/{images,masks}; then `training.split`
with the commands in docs/MODELS.md. The cat masks are drawn with PIL's polygon fill at float coordinates, one
polygon after another: OpenCV's fillPoly (rounded or truncated corners) moves the edge by a pixel and the cats'
held-out mBA by up to 0.5 points.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mos_studio.core.errors import MosError

MIN_SHORT_SIDE = 256


def extract_pool_source(git_dir: Path, commit: str, slug: str, pattern: str, out: Path,
                        exclude: str | None = None, take: Callable[[list[str]], list[str]] | None = None) -> dict:
    """Write one pool source's photos to out/slug; returns counts (matched, absent, dup, notimg, small, kept).

    `take`: given the matching paths in sorted order, the ones to keep (clothing takes a recorded subset)."""
    git = ["git", f"--git-dir={git_dir}"]
    listing = subprocess.run(git + ["ls-tree", "-r", "-z", commit], capture_output=True)
    if listing.returncode != 0:
        raise MosError(f"{git_dir}: cannot list commit {commit} ({listing.stderr.decode().strip()})")
    entries = []
    for line in listing.stdout.decode().split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        _, kind, sha = meta.split()
        if kind == "blob" and re.fullmatch(pattern, path) and not (exclude and re.search(exclude, path)):
            entries.append((path, sha))
    entries.sort()
    if take is not None:
        chosen = set(take([path for path, _ in entries]))
        entries = [e for e in entries if e[0] in chosen]
    dest = out / slug
    dest.mkdir(parents=True, exist_ok=True)
    stats = dict(matched=len(entries), absent=0, dup=0, notimg=0, small=0, kept=0)
    seen: set[str] = set()
    names: dict[str, str] = {}
    for path, sha in entries:
        if sha in seen:
            stats["dup"] += 1
            continue
        seen.add(sha)
        blob = subprocess.run(git + ["cat-file", "blob", sha], capture_output=True)
        if blob.returncode != 0:  # snapshots drop some large blobs
            stats["absent"] += 1
            continue
        try:
            with Image.open(io.BytesIO(blob.stdout)) as im:
                fmt, (w, h) = im.format, im.size
                im.load()
        except Exception:  # noqa: BLE001 - any undecodable file is simply not a photo
            stats["notimg"] += 1
            continue
        if fmt not in ("JPEG", "PNG", "MPO"):
            stats["notimg"] += 1
            continue
        if min(w, h) < MIN_SHORT_SIDE:
            stats["small"] += 1
            continue
        name = path.rsplit("/", 1)[-1]
        if name in names:  # never seen in the ten recorded sources; kept apart rather than overwritten
            name = path.replace("/", "__")
        names[name] = path
        (dest / name).write_bytes(blob.stdout)
        stats["kept"] += 1
    return stats


def _binary(mask: Image.Image) -> Image.Image:
    return Image.fromarray(np.where(np.asarray(mask.convert("L")) > 127, 255, 0).astype(np.uint8), "L")


def _dirs(raw: Path, name: str) -> tuple[Path, Path]:
    images, masks = raw / name / "images", raw / name / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    return images, masks


def _same_aspect(a: tuple[int, int], b: tuple[int, int], what: Path) -> None:
    if abs(a[0] / a[1] - b[0] / b[1]) / (b[0] / b[1]) >= 0.01:
        raise MosError(f"{what}: image {a} and mask {b} differ in aspect ratio")


def _write_pair(ip: Path, mp: Path, images: Path, masks: Path) -> None:
    """Image and thresholded mask at the smaller of their two sizes (same aspect ratio required): the larger one is
    shrunk, an image with Lanczos and saved as JPEG 95, a mask bilinearly; an image that is not resized is copied
    byte for byte."""
    with Image.open(ip) as im, Image.open(mp) as mk:
        mask = mk.convert("L")
        if im.size == mk.size:
            (images / ip.name).write_bytes(ip.read_bytes())
        else:
            _same_aspect(im.size, mk.size, ip)
            if im.size[0] * im.size[1] > mk.size[0] * mk.size[1]:
                im.convert("RGB").resize(mk.size, Image.LANCZOS).save(images / ip.name, quality=95)
            else:
                mask = mask.resize(im.size, Image.BILINEAR)
                (images / ip.name).write_bytes(ip.read_bytes())
    _binary(mask).save(masks / f"{ip.stem}.png")


def build_humanseg(src: Path, raw: Path) -> int:
    """198 photos are larger than their mask (same aspect): shrunk to it (`_write_pair`)."""
    images, masks = _dirs(raw, "humanseg")
    n = 0
    for ip in sorted((src / "Training_Images").glob("*.jpg")):
        mp = src / "Ground_Truth" / f"{ip.stem}.png"
        if mp.exists():
            _write_pair(ip, mp, images, masks)
            n += 1
    return n


def build_davis(src: Path, raw: Path) -> int:
    """Stem <sequence>_<frame>, so training.split can group a clip's frames."""
    images, masks = _dirs(raw, "davis")
    root = src / "DAVIS"
    n = 0
    for seq in sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir()):
        for ip in sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg")):
            mp = root / "Annotations" / "480p" / seq / f"{ip.stem}.png"
            if not mp.exists():
                continue
            (images / f"{seq}_{ip.stem}.jpg").write_bytes(ip.read_bytes())
            with Image.open(mp) as mk:
                _binary(mk).save(masks / f"{seq}_{ip.stem}.png")
            n += 1
    return n


def build_horse(src: Path, raw: Path) -> int:
    """The larger of image and mask is shrunk to the smaller (`_write_pair`)."""
    images, masks = _dirs(raw, "horse")
    root = src / "weizmann_horse_db"
    n = 0
    for ip in sorted((root / "rgb").glob("*.jpg")):
        mp = root / "figure_ground" / ip.name
        if mp.exists():
            _write_pair(ip, mp, images, masks)
            n += 1
    return n


CAT_NAME = re.compile(r"^(.+?)_[a-z]+\.rf\.([0-9a-f]{32})$")


def cat_mask(label_text: str, size: tuple[int, int]) -> Image.Image | None:
    """Union of a YOLOv8 label file's polygons (normalised x y pairs) at `size`; None when it has none."""
    w, h = size
    polygons = []
    for line in label_text.splitlines():
        v = line.split()
        if len(v) >= 7:  # class + at least three points
            polygons.append(np.asarray(v[1:], np.float64).reshape(-1, 2) * (w, h))
    if not polygons:
        return None
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for p in polygons:
        draw.polygon([(float(x), float(y)) for x, y in p], fill=255)
    return mask


def build_cats(src: Path, raw: Path) -> int:
    """Stem <source id>_<8 hex of Roboflow's hash>; photos whose label file holds no polygon are left out."""
    images, masks = _dirs(raw, "cats")
    root = src / "feral-cat-segmentation.v1i.yolov8"
    pairs = [(f"train/images_{k}", f"train/labels_{k}") for k in ("1st_500", "2nd_500", "3rd_500", "4th_500",
                                                                    "remainder")]
    pairs += [("valid/images", "valid/labels"), ("test/images", "test/labels")]
    n = 0
    for idir, ldir in pairs:
        for ip in sorted((root / idir).glob("*.jpg")):
            m = CAT_NAME.match(ip.stem)
            if m is None:
                raise MosError(f"{ip}: not a Roboflow export name (<id>_<ext>.rf.<hash>)")
            label = root / ldir / f"{ip.stem}.txt"
            with Image.open(ip) as im:
                size = im.size
            mask = cat_mask(label.read_text(encoding="utf-8"), size) if label.exists() else None
            if mask is None:
                continue
            stem = f"{m.group(1)}_{m.group(2)[:8]}"
            (images / f"{stem}.jpg").write_bytes(ip.read_bytes())
            mask.save(masks / f"{stem}.png")
            n += 1
    return n


BUILDERS = {"humanseg": build_humanseg, "davis": build_davis, "horse": build_horse, "cats": build_cats}


# ------------------------------------------------------------------------------------------- the whole rebuild
def _clothing_take(paths: list[str]) -> list[str]:
    """Stop 32's clothing subset: every third photo from the first in sorted order, then the first 1,700 of the rest."""
    rest = [p for i, p in enumerate(paths) if i % 3]
    return paths[::3] + rest[:1700]


CLOTHING = "clothing_cc0"


def training_list(pool: Path, held: list[str], clothing: str = CLOTHING, clothing_every: int = 8) -> list[str]:
    """Stop 33's training side in labelling order: every pool photo not held out, only every eighth clothing photo
    (3,619 near-alike product shots would crowd out the rest), round-robin over the sources so that any first part
    of the list is as diverse as the whole."""
    from .teacher import list_photos, round_robin

    skip = set(held)
    groups: dict[str, list[str]] = {}
    for photo in list_photos(pool):
        rel = photo.relative_to(pool).as_posix()
        if rel not in skip and "/" in rel:
            groups.setdefault(rel.split("/", 1)[0], []).append(rel)
    if clothing in groups:
        groups[clothing] = groups[clothing][::clothing_every]
    return round_robin(groups)


def device_data(out: Path, max_side: int = 512, clothing: str = CLOTHING,
                log: Callable[[str], None] = print) -> dict:
    """L's training copies of the split: out/small/{train,val} shrunk to `max_side` (L sees 336 px; decoding full
    photos per sample would spend the CPU on pixels it throws away), out/matte/{fg,alpha} (every kept training photo,
    named <source>__<stem>, cut out by its mask) and out/bg (the training photos that are not clothing, as
    backgrounds for those cut-outs). The two link folders are remade whole each run; the shrunk copies resume."""
    from .pool import shrink

    counts: dict = {}
    for side in ("train", "val"):
        if (out / "split" / side).is_dir():
            counts[side] = shrink(out / "split" / side, out / "small" / side, max_side)
            log(f"{out / 'small' / side}: {sum(counts[side].values())} photos at {max_side} px "
                f"({json.dumps(counts[side])})")
    train = out / "small" / "train"
    if not train.is_dir():
        log(f"{train}: no training photos kept yet, so no composites")
        return counts
    matte, bg = _fresh(out / ".matte.partial"), _fresh(out / ".bg.partial")
    for d in (matte / "fg", matte / "alpha"):
        d.mkdir()
    n_fg = n_bg = 0
    for images in sorted(train.glob("*/images")):
        source = images.parent.name
        for photo in sorted(images.glob("*.jpg")):
            mask = images.parent / "masks" / f"{photo.stem}.png"
            if not mask.is_file():
                continue
            name = f"{source}__{photo.stem}"
            (matte / "fg" / f"{name}.jpg").symlink_to(photo.resolve())
            (matte / "alpha" / f"{name}.png").symlink_to(mask.resolve())
            n_fg += 1
            if source != clothing:
                (bg / f"{name}.jpg").symlink_to(photo.resolve())
                n_bg += 1
    for tmp, dest in ((matte, out / "matte"), (bg, out / "bg")):
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    counts["matte"], counts["bg"] = n_fg, n_bg
    log(f"{out / 'matte'}: {n_fg} cut-outs; {out / 'bg'}: {n_bg} backgrounds")
    return counts


@dataclass(frozen=True)
class PoolSource:
    """One pool source as stop 32 rebuilt it (docs/DATA_ENGINE.md, "Stop 32"); `count` is the photos it kept."""
    slug: str
    repo: str
    commit: str
    pattern: str
    count: int
    exclude: str | None = None
    take: Callable[[list[str]], list[str]] | None = None
    # BSDS500 leaves out the photos that the denoising sets' CBSD68 also holds: (repo, commit, folder) listed then.
    exclude_stems_of: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class RealSet:
    """One round-1 real-truth set: its repository tree at a commit (only `paths`), then training.split's settings."""
    name: str
    repo: str
    commit: str
    paths: tuple[str, ...]
    val_fraction: float
    group: str | None = None


DENOISE = ("majedelhelou/denoising_datasets", "58234876fef6f1b56306705c78dfd40cdb837b86")
POOL_RECIPE: tuple[PoolSource, ...] = (
    PoolSource("imagenet_sample", "EliSchwartz/imagenet-sample-images", "bc69043e2862758a1906c6a24a792bb28c6bb2ff",
               r"[^/]*\.JPEG", 903),
    PoolSource("sr_denoise_benchmarks", *DENOISE, r"(CUrban100|CBSD68|CSun_Hays80|CSet14|CSet5)/[^/]+", 264,
               exclude=r"CSet14/(comic|ppt3)"),
    PoolSource("imagenet_det200_imagen", "ajschumacher/imagen", "2e8718956e", r"imagen/[^/]*\.jpg", 906),
    PoolSource("bsds500", "BIDS/BSDS500", "a04b7c6c3a", r"BSDS500/data/images/(train|val|test)/[^/]*\.jpg", 432,
               exclude_stems_of=(*DENOISE, "CBSD68")),
    PoolSource("hymenoptera_ants_bees", "zhangtao7750/syn", "f050309148",
               r"hymenoptera_data/(train|val)/(ants|bees)/[^/]*\.jpg", 384),
    PoolSource("unsplash_nature_wallpapers", "xiwenc/nature-wallpapers", "35b5449f1e", r"src/[^/]*-unsplash\.jpg", 19),
    PoolSource("camera_samples_metadata_extractor", "drewnoakes/metadata-extractor-images", "4beba64048",
               r"jpg/[^/]*\.jpg", 223),
    PoolSource("exif_samples_ianare", "ianare/exif-samples", "5332a9cf02", r"jpg/.*\.jpg", 45,
               exclude=r"^jpg/(invalid|orientation)/"),
    PoolSource("immich_test_assets", "immich-app/test-assets", "ec56cc6c1d", r"(albums|nature|metadata)/.*\.jpg", 16,
               exclude=r"handwritten|Solvay"),
    PoolSource("clothing_cc0", "alexeygrigorev/clothing-dataset", "7ed86a9cc5", r"images/[^/]*\.jpg", 3619,
               take=_clothing_take),
)
REAL_RECIPE: tuple[RealSet, ...] = (
    RealSet("davis", "MathLee/EOR-VOS", "1bde4d5f9363", ("DAVIS",), 0.15, r"^(.+)_\d+$"),
    RealSet("cats", "pcashman21/feral-cat-segmentation-dataset-and-model", "c7cdfa43c095",
            ("feral-cat-segmentation.v1i.yolov8",), 0.10, r"^(group\d+)_"),
    RealSet("humanseg", "VikramShenoy97/Human-Segmentation-Dataset", "fe4efc560030",
            ("Training_Images", "Ground_Truth"), 0.15),
    RealSet("horse", "shenshutao/image_segmentation", "2653401d6ea6", ("weizmann_horse_db",), 0.15),
)


def mirror_git_dir(mirrors: Path, repo: str) -> Path | None:
    """The git dir the search tool's fetch left for owner/name (`<owner>+<name>/repo`, bare or with a .git)."""
    base = mirrors / repo.replace("/", "+") / "repo"
    for d in (base / ".git", base):
        if (d / "HEAD").is_file() and (d / "objects").is_dir():
            return d
    return None


def needed_repos(pool: tuple[PoolSource, ...] = POOL_RECIPE, real: tuple[RealSet, ...] = REAL_RECIPE) -> list[str]:
    names = [s.repo for s in pool] + [s.exclude_stems_of[0] for s in pool if s.exclude_stems_of]
    return list(dict.fromkeys(names + [r.repo for r in real]))


def _git_dirs(mirrors: Path, repos: list[str]) -> dict[str, Path]:
    found = {r: mirror_git_dir(mirrors, r) for r in repos}
    missing = [r for r, d in found.items() if d is None]
    if missing:
        raise MosError(f"{mirrors}: {len(missing)} of {len(repos)} repositories have not been fetched; fetch them "
                       "with the search tool, then run this again:\n" + "\n".join(f"  github:{r}" for r in missing))
    return {r: d for r, d in found.items() if d is not None}


def _stems_exclude(git_dir: Path, commit: str, folder: str) -> str:
    listing = subprocess.run(["git", f"--git-dir={git_dir}", "ls-tree", "--name-only", commit, f"{folder}/"],
                             capture_output=True, text=True)
    stems = [Path(n).stem for n in listing.stdout.split("\n") if n]
    if listing.returncode != 0 or not stems:
        raise MosError(f"{git_dir}: cannot list {folder}/ at {commit} ({listing.stderr.strip()})")
    return "/(" + "|".join(re.escape(s) for s in stems) + r")\.jpg$"


def _archive(git_dir: Path, commit: str, paths: tuple[str, ...], dest: Path) -> None:
    """`git archive COMMIT PATHS | tar -x`: the tree as the cards name it, without a work tree."""
    dest.mkdir(parents=True, exist_ok=True)
    arch = subprocess.Popen(["git", f"--git-dir={git_dir}", "archive", commit, *paths], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=arch.stdout, capture_output=True)
    assert arch.stdout is not None
    arch.stdout.close()
    err = arch.stderr.read().decode() if arch.stderr else ""
    if arch.wait() != 0 or tar.returncode != 0:
        raise MosError(f"{git_dir}: git archive {commit} {' '.join(paths)} failed ({err.strip()}"
                       f"{tar.stderr.decode().strip()})")


def _filled(d: Path) -> bool:
    return d.is_dir() and any(d.iterdir())


def _fresh(d: Path) -> Path:
    """An empty folder at `d`, removing what an interrupted run left there."""
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def _move_in(done: Path, dest: Path) -> None:
    """Put a finished folder in place of `dest`, which holds at most an unfinished, and so unused, attempt."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    done.rename(dest)


def rebuild_all(mirrors: Path, out: Path, pool: tuple[PoolSource, ...] = POOL_RECIPE,
                real: tuple[RealSet, ...] = REAL_RECIPE, teacher: bool = True, teacher_package: Path | None = None,
                teacher_model: Path | None = None, label_workers: int = 0, label_train: int = 0,
                log: Callable[[str], None] = print) -> dict:
    """Bring a new machine's data to where the held-out numbers can be measured; what is already there is kept.

    Writes out/pool/<slug>, out/src/<set> (the trees), out/raw/<set>, out/realgt/split/{train,val}/<set>,
    out/held_out.txt, out/train_list.txt, out/teacher/isnet_medium.onnx, and with `label_workers` out/labels,
    out/filter.json, out/split/{train,val}/<source> and out/val_nc (links to the held-out sources other than
    clothing); with `label_train` as well the first that many photos of the
    training list are labelled and `device_data` writes L's training copies."""
    from .pool import held_out_photos, make_split, run_filter
    from .split import make_split as make_real_split

    if label_workers < 0:
        raise MosError(f"--label-held-out must be 0 or more processes, not {label_workers}")
    if label_train < 0:
        raise MosError(f"--label-train must be 0 or more photos, not {label_train}")
    if label_train and not label_workers:
        raise MosError("--label-train needs --label-held-out N: the held-out photos are labelled first, by the same "
                       "N processes")
    if label_workers and not teacher and teacher_model is None:
        raise MosError("labelling needs the teacher: drop --no-teacher or give --teacher-model")
    git = _git_dirs(mirrors, needed_repos(pool, real))
    summary: dict = {"pool": {}, "real": {}}
    partial = out / "pool" / ".partial"
    for src in pool:
        dest = out / "pool" / src.slug
        if _filled(dest):
            summary["pool"][src.slug] = {"kept": len(list(dest.iterdir())), "present": True}
            log(f"pool {src.slug}: {summary['pool'][src.slug]['kept']} photos already there")
            continue
        exclude = src.exclude
        if src.exclude_stems_of:
            repo, commit, folder = src.exclude_stems_of
            exclude = _stems_exclude(git[repo], commit, folder)
        stats = extract_pool_source(git[src.repo], src.commit, src.slug, src.pattern, _fresh(partial), exclude,
                                    src.take)
        _move_in(partial / src.slug, dest)  # whole sources only: an interrupted one is redone, not taken half
        summary["pool"][src.slug] = stats
        note = "" if stats["kept"] == src.count else f" (stop 32 kept {src.count})"
        log(f"pool {src.slug}: {json.dumps(stats)}{note}")
    if partial.exists():
        partial.rmdir()
    for rs in real:
        if _filled(out / "realgt" / "split" / "val" / rs.name):
            summary["real"][rs.name] = {"present": True}
            log(f"real set {rs.name}: split already there")
            continue
        # The tree and the built set are written aside and moved in whole, as a pool source is: a run cut off
        # half way leaves nothing that a later run would take for done.
        tree = out / "src" / rs.name
        if not _filled(tree):
            part = _fresh(out / "src" / f".{rs.name}.partial")
            _archive(git[rs.repo], rs.commit, rs.paths, part)
            _move_in(part, tree)
        raw = out / "raw"
        if not _filled(raw / rs.name / "images"):
            part = _fresh(out / ".raw.partial")
            n = BUILDERS[rs.name](tree, part)
            _move_in(part / rs.name, raw / rs.name)
            part.rmdir()
        else:
            n = len(list((raw / rs.name / "images").iterdir()))
        rec = make_real_split(raw / rs.name, out / "realgt" / "split", rs.val_fraction, rs.group, rs.name)
        summary["real"][rs.name] = {"pairs": n, "train": len(rec["train"]), "val": len(rec["val"])}
        log(f"real set {rs.name}: {n} pairs, {len(rec['train'])} train, {len(rec['val'])} held out")
    held = held_out_photos(out / "pool", 0.07)
    (out / "held_out.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
    summary["held_out"] = len(held)
    log(f"{out / 'held_out.txt'}: {len(held)} held-out photos (label these first)")
    train_list = training_list(out / "pool", held)
    (out / "train_list.txt").write_text("\n".join(train_list) + "\n", encoding="utf-8")
    summary["train_list"] = len(train_list)
    log(f"{out / 'train_list.txt'}: {len(train_list)} training-side photos in labelling order")
    model = teacher_model
    if model is None and teacher:
        model = out / "teacher" / "isnet_medium.onnx"
        if not model.is_file():
            from .teacher import fetch

            model = fetch(out / "teacher", teacher_package)
        log(f"teacher: {model}")
    summary["teacher"] = str(model) if model else None
    if label_workers:
        assert model is not None
        # The held-out photos (and the first `label_train` of the training list) alone, linked under their pool
        # paths: the shards share exactly them and each mask lands where labelling the whole pool would put it.
        # `--first` twice: every held-out photo before any training photo, the training list in its own order.
        view = out / ".held_out_view"
        if view.exists():
            shutil.rmtree(view)
        for rel in held + train_list[:label_train]:
            (view / rel).parent.mkdir(parents=True, exist_ok=True)
            (view / rel).symlink_to((out / "pool" / rel).resolve())
        cmd = [sys.executable, "-m", "training.teacher", "label", str(view), "--model", str(model),
               "--out", str(out / "labels"), "--first", str(out / "held_out.txt"),
               "--first", str(out / "train_list.txt")]
        # Their progress lines go to this run's output: labelling the held-out side takes minutes.
        procs = [subprocess.Popen(cmd + ["--shard", f"{k}/{label_workers}"]) for k in range(label_workers)]
        failed = [p.wait() != 0 for p in procs]
        shutil.rmtree(view)
        if any(failed):
            raise MosError(f"{out / 'labels'}: a labelling process failed (its error is above)")
        rec = run_filter(out / "pool", out / "labels", out / "filter.json")
        log(f"{out / 'filter.json'}: kept {rec['kept']}, dropped {rec['dropped']}")
        old = out / "split" / "split.json"
        n_old = None
        if old.is_file():
            o = json.loads(old.read_text())
            n_old = o.get("n_train", 0) + o.get("n_val", 0)
        if n_old == rec["kept"]:
            log(f"{out / 'split'}: already there, left as it is (the {n_old} photos the filter keeps)")
        else:
            # More labels, more kept photos: a new split is written aside and swapped in whole. Each photo's side
            # is a hash of its name, so no photo changes side; the split only grows.
            part = _fresh(out / ".split.partial")
            part.rmdir()
            split = make_split(out / "pool", out / "labels", out / "filter.json", part)
            if (out / "split").exists():
                shutil.rmtree(out / "split")
            part.rename(out / "split")
            summary["split"] = {"train": split["n_train"], "val": split["n_val"], "val_counts": split["counts"]["val"]}
            log(f"{out / 'split'}: {split['n_train']} train, {split['n_val']} held out "
                f"({json.dumps(split['counts']['val'])})" + (f"; replaced the split of {n_old}" if n_old else ""))
        summary["kept"] = rec["kept"]
        # The held-out photos that are not clothing: the set every held-out number since stop 32 is measured on
        # (benchmarks/eval_teacher.py out/val_nc), remade as links each run.
        nc = _fresh(out / "val_nc")
        for side in sorted((out / "split" / "val").iterdir()):
            if side.is_dir() and side.name != CLOTHING:
                (nc / side.name).symlink_to(side.resolve())
        summary["val_nc"] = sum(len(list((d / "images").iterdir())) for d in nc.iterdir())
        log(f"{nc}: {summary['val_nc']} held-out photos that are not clothing")
        if label_train:
            summary["device_data"] = device_data(out, log=log)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.rebuild", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool", help="one photo-pool source from a fetched repository (bare git dir)")
    p.add_argument("git_dir", type=Path)
    p.add_argument("commit")
    p.add_argument("slug")
    p.add_argument("pattern", help="regular expression a repository path must match whole")
    p.add_argument("--exclude", help="leave out paths this expression finds")
    p.add_argument("--out", type=Path, required=True, help="the pool folder")
    r = sub.add_parser("realsets", help="the four round-1 real-truth sets from their repositories' trees")
    r.add_argument("src", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--sets", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    w = sub.add_parser("all", help="the whole rebuild of a new machine: pool, real sets and splits, held-out list, "
                                   "teacher (and optionally the held-out labels, filter and split)")
    w.add_argument("--mirrors", type=Path, required=True,
                   help="where the search tool's fetch put the repositories (<owner>+<name>/repo)")
    w.add_argument("--out", type=Path, required=True, help="the data folder (outside the checkout)")
    w.add_argument("--no-teacher", action="store_true", help="do not fetch the teacher (npm pack)")
    w.add_argument("--teacher-package", type=Path, help="the teacher's npm tarball or unpacked folder, if at hand")
    w.add_argument("--teacher-model", type=Path, help="an ONNX teacher file already assembled (no fetch)")
    w.add_argument("--label-held-out", type=int, default=0, metavar="N",
                   help="also label the held-out photos with N processes, then filter and split")
    w.add_argument("--label-train", type=int, default=0, metavar="COUNT",
                   help="then label the first COUNT photos of train_list.txt too (with --label-held-out's processes) "
                        "and write L's training copies (small/, matte/, bg/)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "all":
            rebuild_all(args.mirrors, args.out, teacher=not args.no_teacher, teacher_package=args.teacher_package,
                        teacher_model=args.teacher_model, label_workers=args.label_held_out,
                        label_train=args.label_train)
        elif args.cmd == "pool":
            stats = extract_pool_source(args.git_dir, args.commit, args.slug, args.pattern, args.out, args.exclude)
            print(args.slug, json.dumps(stats))
        else:
            for name in args.sets:
                if not (args.src / name).is_dir():
                    raise MosError(f"{args.src / name}: the {name} repository's tree is not there")
                print(name, BUILDERS[name](args.src / name, args.out), "pairs")
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
