"""Training packs (`training.pack`) and time-budgeted runs: the pack a GPU call would carry holds the config's data,
shrunk and shared, trains for real, and the device script brings back a checkpoint that exports to loadable weights."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import training.pack as pack_mod
import training.train as tt
from mos_studio.core.errors import MosError
from mos_studio.core.weights import load_model
from training.export import export
from training.pack import (
    MARGIN_MB,
    Pack,
    checkout_of,
    default_budget_mb,
    dump_toml,
    edge_tiles,
    keep_share,
    main,
    repo_relative,
    slim,
    travel_bytes,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pairs(folder: Path, n: int, seed: int, size: tuple[int, int] = (160, 120)) -> list[Path]:
    """n photos (noise with a bright disc) and soft masks of the disc, in images/ + masks/."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    w, h = size
    out = []
    for i in range(n):
        img = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        yy, xx = np.mgrid[:h, :w]
        r = np.hypot(xx - rng.uniform(40, w - 40), yy - rng.uniform(30, h - 30))
        soft = np.clip(25.5 - r, 0, 1)
        img[soft > 0.5] = 230
        cv2.imwrite(str(folder / "images" / f"p{seed}_{i}.jpg"), img)
        cv2.imwrite(str(folder / "masks" / f"p{seed}_{i}.png"), np.round(soft * 255).astype(np.uint8))
        out.append(folder / "images" / f"p{seed}_{i}.jpg")
    return out


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """A config shaped like stop 33's: two folder sources, a matte source on the first one's files (symlinks, as
    prep scripts make them), its backgrounds the first one's photos, a synthetic source and a validation folder."""
    root = tmp_path / "work"
    a = _pairs(root / "data/a", 8, 1)
    _pairs(root / "data/b", 5, 2, (90, 200))
    _pairs(root / "data/v", 4, 3)
    for sub in ("fg", "alpha", "bg"):
        (root / "data/matte" / sub).mkdir(parents=True)
    for p in a:
        os.symlink(p, root / "data/matte/fg" / p.name)
        os.symlink(p.parent.parent / "masks" / f"{p.stem}.png", root / "data/matte/alpha" / f"{p.stem}.png")
        os.symlink(p, root / "data/matte/bg" / p.name)
    cfg = {
        "stage": "L",
        "data": {"size": 64, "num_workers": 0, "sources": [
            {"kind": "folder", "root": "data/a", "weight": 8},
            {"kind": "folder", "root": "data/b", "weight": 2.5},
            {"kind": "synth", "size": 96, "weight": 1},
            {"kind": "matte", "root": "data/matte", "backgrounds": "data/matte/bg", "threshold": [0.4, 0.6],
             "weight": 4}]},
        "val": {"every": 1000, "count": 2, "grid": 2, "sources": [{"kind": "folder", "root": "data/v"}]},
        "train": {"iterations": 100000, "batch": 2, "lr": 1e-3, "log_every": 5, "checkpoint_every": 1000,
                  "amp": False},
    }
    (root / "cfg.toml").write_text(dump_toml(cfg))
    return root


def _build(root: Path, out: str, *extra: str) -> dict:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["build", "cfg.toml", "--out", out, *extra]) == 0
    finally:
        os.chdir(cwd)
    return json.loads((root / out / "pack.json").read_text())


def test_a_full_pack_shares_photos_and_loads_as_the_config_did(data: Path) -> None:
    report = _build(data, "pack", "--long", "64")
    pack = data / "pack"
    folders = sorted(p.relative_to(pack).as_posix() for p in pack.glob("*/*") if p.is_dir())
    assert folders == ["part1/data_a", "part1/data_b", "val/val_data_v"]  # the matte source adds no file
    assert report["photos"] == 8 + 5 + 4
    cfg = tt.load_config(pack / "config.toml", "L")
    kinds = [s["kind"] for s in cfg["data"]["sources"]]
    assert kinds == ["folder", "folder", "synth", "matte"]
    matte = cfg["data"]["sources"][3]
    assert matte["root"] == ["pack/part1/data_a"] and matte["backgrounds"] == ["pack/part1/data_a"]
    assert cfg["data"]["sources"][0]["root"] == ["pack/part1/data_a"] and cfg["data"]["sources"][0]["missing_ok"]
    assert report["calls"] == [{"carry": ["pack/part1", "pack/val", "pack/config.toml", "pack/pack.json"],
                                "bytes": report["calls"][0]["bytes"]}]
    assert matte["threshold"] == [0.4, 0.6] and matte["weight"] == 4
    assert cfg["train"]["iterations"] == 100000 and cfg["data"]["size"] == 64
    cwd = os.getcwd()
    os.chdir(data)
    try:
        ds = tt.make_dataset(cfg, "L")
        assert [len(s) for s in ds.sources[:2]] == [8, 5] and len(ds.sources[3]) == 8
        assert len(ds.sources[3].backgrounds) == 8
        sample = ds[0]
        assert sample["image"].shape[-2:] == (64, 64)
        vset = tt.make_dataset(cfg, "L", val=True)
        assert len(vset.sources[0]) == 4
    finally:
        os.chdir(cwd)
    for jpg in (pack / "part1" / "data_b").glob("*.jpg"):
        img, mask = cv2.imread(str(jpg)), cv2.imread(str(jpg.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert max(img.shape[:2]) == 64 and mask.shape == img.shape[:2]
        assert 0 < (mask > 127).mean() < 1  # the disc survived the shrink


def test_a_config_with_a_base_packs_its_whole_chain(data: Path) -> None:
    (data / "configs").mkdir()
    (data / "configs" / "cpu.toml").write_text('base = "../cfg.toml"\n[data]\nsize = 48\n[train]\nbatch = 1\n')
    cwd = os.getcwd()
    os.chdir(data)
    try:
        assert main(["build", "configs/cpu.toml", "--out", "pack"]) == 0
    finally:
        os.chdir(cwd)
    text = (data / "pack" / "config.toml").read_text()
    assert "\nbase =" not in "\n" + text  # the packed config stands alone on the device machine
    cfg = tt.load_config(data / "pack" / "config.toml", "L")
    assert cfg["data"]["size"] == 48 and cfg["train"]["batch"] == 1 and cfg["train"]["iterations"] == 100000
    assert [s["kind"] for s in cfg["data"]["sources"]] == ["folder", "folder", "synth", "matte"]


def test_a_budget_keeps_photos_by_weight_and_a_larger_one_a_superset(data: Path) -> None:
    full = _build(data, "full", "--long", "64")["bytes"]
    small = _build(data, "small", "--long", "64", "--max-mb", str(full * 0.5 / 2**20), "--val-share", "0.3")
    assert small["bytes"] <= full * 0.5
    kept = {n: r["packed"] for n, r in small["sources"].items()}
    assert 0 < kept["val:data/v"] < 4
    assert 0 < kept["train:data/a"] < 8
    # weight per photo: a 8/8 = 1, b 2.5/5 = 0.5, so b keeps no larger a share of its photos than a
    assert kept["train:data/b"] / 5 <= kept["train:data/a"] / 8 + 1e-9  # 0: dropped from the pack's config
    names = [s["root"] for s in tt.load_config(data / "small" / "config.toml", "L")["data"]["sources"]
             if s["kind"] == "folder"]
    assert names == [["small/part1/data_a"]] + ([["small/part1/data_b"]] if kept["train:data/b"] else [])
    assert kept["train:data/matte"] == kept["train:data/a"]  # the matte source draws on exactly a's kept photos
    small_names = {p.name for p in (data / "small").rglob("*.jpg")}
    full_names = {p.name for p in (data / "full").rglob("*.jpg")}
    assert small_names < full_names
    assert 0.0 <= keep_share("x") < 1.0 and keep_share("x") == keep_share("x")


def test_parts_each_fit_a_call_and_a_missing_part_is_skipped(data: Path) -> None:
    full = _build(data, "whole", "--long", "160")["bytes"]
    budget = full * 0.45
    report = _build(data, "parts", "--long", "160", "--parts", "2", "--max-mb", str(budget / 2**20),
                    "--val-share", "0.25")
    assert [c["carry"] for c in report["calls"]] == [
        ["parts/part1"], ["parts/part2", "parts/val", "parts/config.toml", "parts/pack.json"]]
    for call in report["calls"]:
        sent = sum(f.stat().st_size for c in call["carry"] for f in ([data / c] if (data / c).is_file()
                                                                        else (data / c).rglob("*")) if f.is_file())
        assert sent <= budget
    one = _build(data, "one", "--long", "160", "--max-mb", str(budget / 2**20), "--val-share", "0.25")
    assert report["photos"] > one["photos"]  # two calls carry more than one
    assert all(any((data / "parts" / f"part{i}").rglob("*.jpg")) for i in (1, 2))
    cfg = tt.load_config(data / "parts" / "config.toml", "L")
    a = cfg["data"]["sources"][0]
    assert a["root"] == ["parts/part1/data_a", "parts/part2/data_a"] and a["missing_ok"] is True
    cwd = os.getcwd()
    os.chdir(data)
    try:
        whole = [len(s) for s in tt.make_dataset(cfg, "L").sources]
        import shutil

        shutil.rmtree("parts/part1")  # the staging call's part did not survive on the device
        ds = tt.make_dataset(cfg, "L")
        left = [len(s) for s in ds.sources]
        assert 0 < left[0] < whole[0] and 0 < left[3] < whole[3]
        assert "folder(s) missing: parts/part1/data_a" in ds.sources[0].describe()
        strict = {**a, "missing_ok": False}
        with pytest.raises(MosError, match="part1/data_a: training data folder not found"):
            tt.make_dataset({**cfg, "data": {**cfg["data"], "sources": [strict]}}, "L")
    finally:
        os.chdir(cwd)


def test_pack_refuses_other_stages_tiles_for_l_and_existing_output(data: Path, capsys) -> None:
    (data / "x.toml").write_text('stage = "X"\n')
    cwd = os.getcwd()
    os.chdir(data)
    try:
        with pytest.raises(MosError, match="stage must be L or H"):
            Pack("x.toml")
        assert main(["build", "cfg.toml", "--out", "t", "--tiles", "2"]) == 2
        assert "--tiles is for H packs" in capsys.readouterr().err
        assert not (data / "t").exists()
        assert main(["build", "missing.toml", "--out", "p"]) == 2
        assert "training config not found" in capsys.readouterr().err
        (data / "busy").mkdir()
        (data / "busy" / "keep.txt").write_text("mine")
        assert main(["build", "cfg.toml", "--out", "busy"]) == 2
        assert "not empty" in capsys.readouterr().err
        assert (data / "busy" / "keep.txt").read_text() == "mine"
    finally:
        os.chdir(cwd)


def test_edge_tiles_sit_on_the_edge_and_spread_over_it() -> None:
    h, w = 600, 900
    yy, xx = np.mgrid[:h, :w]
    disc = (np.hypot(xx - 450, yy - 300) < 220).astype(np.float32)
    tiles = edge_tiles(disc, 128, 5, "a photo")
    assert len(tiles) == 5 and tiles == edge_tiles(disc, 128, 5, "a photo")  # the same crops every time
    centres = []
    for y0, x0, side in tiles:
        assert side == 128 and 0 <= y0 <= h - side and 0 <= x0 <= w - side
        crop = disc[y0:y0 + side, x0:x0 + side]
        assert 0.05 < crop.mean() < 0.95  # object and background both: the crop holds edge
        centres.append((y0 + side / 2, x0 + side / 2))
    gaps = [np.hypot(a[0] - b[0], a[1] - b[1]) for i, a in enumerate(centres) for b in centres[i + 1:]]
    assert min(gaps) >= 64  # spread round the outline, not piled up in one place
    assert edge_tiles(np.zeros((h, w), np.float32), 128, 5, "x") == []
    assert edge_tiles(np.ones((h, w), np.float32), 128, 5, "x") == []
    small = (np.hypot(xx - 100, yy - 100) < 30).astype(np.float32)  # a small edge: fewer crops than asked
    assert 1 <= len(edge_tiles(small, 128, 5, "x")) <= 2
    assert edge_tiles(small[:120, :90], 128, 3, "x")[0][2] == 90  # a crop is never larger than the photo


def test_an_h_pack_holds_the_whole_photo_and_full_resolution_edge_crops_and_trains(data: Path) -> None:
    """An H config on large photos: each kept photo travels shrunk to --long beside up to --tiles crops of its
    edge at full resolution; the packed config loads, and the device script trains H on it for real."""
    big = _pairs(data / "data/big", 3, 7, (720, 540))
    _pairs(data / "data/hv", 2, 8)
    cfg = {
        "stage": "H",
        "data": {"patch": 64, "iou_range": [0.7, 1.0], "scales": [1.0, 0.5], "keep_p": 0.3, "num_workers": 0,
                 "sources": [{"kind": "folder", "root": "data/big", "weight": 3},
                             {"kind": "folder", "root": "data/a", "weight": 1},
                             {"kind": "synth", "size": 96, "weight": 1}]},
        "val": {"every": 1000, "count": 2, "grid": 2, "sources": [{"kind": "folder", "root": "data/hv"}]},
        "train": {"iterations": 100000, "batch": 2, "lr": 1e-4, "log_every": 5, "checkpoint_every": 1000,
                  "amp": False},
    }
    (data / "h.toml").write_text(dump_toml(cfg))
    cwd = os.getcwd()
    os.chdir(data)
    try:
        assert main(["build", "h.toml", "--out", "hpack", "--long", "200", "--tiles", "3", "--tile", "96"]) == 0
    finally:
        os.chdir(cwd)
    report = json.loads((data / "hpack" / "pack.json").read_text())
    assert report["stage"] == "H" and report["tiles"] == 3 and report["tile"] == 96 and report["long_side"] == 200
    packed = sorted((data / "hpack" / "part1").glob("*big*/*.jpg"))
    wholes = [p for p in packed if "_t" not in p.stem]
    crops = [p for p in packed if "_t" in p.stem]
    assert len(wholes) == 3 and 3 <= len(crops) <= 9  # every photo kept, each with its crops
    for p in wholes:
        assert max(cv2.imread(str(p)).shape[:2]) == 200
    src = {q.stem: cv2.imread(str(q)) for q in big}
    for p in crops:
        img = cv2.imread(str(p))
        m = cv2.imread(str(p.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
        assert img.shape[:2] == m.shape == (96, 96)
        assert 0 < (m > 127).mean() < 1  # on the edge
        whole = src[p.stem.rsplit("_t", 1)[0]]  # a crop of the photo at full resolution, not of its shrunk copy
        hit = cv2.matchTemplate(whole, img, cv2.TM_SQDIFF_NORMED).min()
        assert hit < 0.02, p
    small = sorted((data / "hpack" / "part1").glob("*data_a*/*.jpg"))
    assert small and not any("_t" in p.stem for p in small)  # photos no larger than --long get no crops
    text = (data / "hpack" / "config.toml").read_text()
    assert text.startswith("# A training pack") and 'stage = "H"' in text and "crops" in text.splitlines()[0]

    out = data / "hdev"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "RUN_DIR": str(data / "hrun"),
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    wrong = subprocess.run(["bash", str(REPO / "training" / "device_L.sh"), "hpack", "3", "none"], cwd=data,
                           env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "a stage H pack, not L" in wrong.stderr
    proc = subprocess.run(["bash", str(REPO / "training" / "device_L.sh"), "hpack", "3", "none"], cwd=data,
                          env={**env, "STAGE": "H"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stage H from none" in (out / "train.log").read_text()
    model = load_model(export(out / "run.pt", "H", data / "hmodels"))
    assert model.in_channels == 4  # an H came back: photo and mask in


def test_time_budget_compresses_the_schedule_and_stops(data: Path) -> None:
    cos = {"lr": 1.0, "iterations": 100, "schedule": "cosine"}
    assert tt.lr_at(0, cos, 0.5) == pytest.approx(0.5)
    assert tt.lr_at(80, cos, 0.5) == pytest.approx(tt.lr_at(80, cos))  # whichever is further on
    assert tt.lr_at(0, cos, 1.0) == pytest.approx(0.0)
    _build(data, "pack", "--long", "64")
    cwd = os.getcwd()
    os.chdir(data)
    try:
        assert tt.main(["--stage", "L", "--config", "pack/config.toml", "--out", "run", "--max-seconds", "4"]) == 0
    finally:
        os.chdir(cwd)
    ckpt = torch.load(data / "run" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["out_of_time"] is True and 0 < ckpt["step"] < 100000 and ckpt["max_seconds"] == 4
    with open(data / "run" / "losses.csv", newline="") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert len(lrs) == ckpt["step"] and lrs[-1] < 0.5 * lrs[0]  # the cosine ran down with the clock
    assert (data / "run" / f"val_{ckpt['step']:07d}.png").is_file()  # validated where it stopped
    assert ckpt["schedule_pos"] >= 0.99
    os.chdir(data)
    try:  # resumed, the schedule goes on from where it stood instead of climbing back to the top
        assert tt.main(["--stage", "L", "--config", "pack/config.toml", "--out", "run", "--resume",
                        "--max-seconds", "2"]) == 0
    finally:
        os.chdir(cwd)
    with open(data / "run" / "losses.csv", newline="") as f:
        after = [float(r["lr"]) for r in csv.DictReader(f)][len(lrs):]
    assert after and max(after) <= lrs[-1] + 1e-12
    with pytest.raises(MosError, match="positive"):
        tt.train("L", data / "pack" / "config.toml", data / "run2", max_seconds=0)


def test_device_script_trains_and_brings_back_loadable_weights(data: Path) -> None:
    _build(data, "pack", "--long", "64")
    cfg = data / "pack" / "config.toml"
    assert "\n[val]\n" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("\n[val]\n", "\n[val]\nkeep_best = true\n"))
    out = data / "device_out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "RUN_DIR": str(data / "devrun"),
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "training" / "device_L.sh"), "pack", "3", "none"], cwd=data,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (out / "train.log").read_text()
    assert "device cpu (no CUDA)" in log and "time budget of 3 s spent" in log
    assert {p.name for p in out.iterdir()} >= {"run.pt", "best.pt", "losses.csv", "val.csv", "val_last.png",
                                               "train.log"}
    assert export(out / "best.pt", "L", data / "best_models").is_file()  # the best weights export like run.pt
    full = (data / "devrun" / "last.pt").stat().st_size
    assert (out / "run.pt").stat().st_size < full  # no optimizer state
    path = export(out / "run.pt", "L", data / "models")
    model = load_model(path)
    trained = torch.load(out / "run.pt", map_location="cpu", weights_only=True)["model"]
    for name, tensor in model.state_dict().items():  # the weights that came back are the ones trained there
        assert torch.equal(tensor, trained[name].float()), name
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["iterations"] > 0 and card["config_name"] == "config"
    with pytest.raises(MosError, match="config.toml: not a readable training checkpoint"):
        slim(data / "pack" / "config.toml", data / "x.pt")
    assert not (data / "x.pt").exists()

    missing = subprocess.run(["bash", str(REPO / "training" / "device_L.sh"), "nopack", "3"], cwd=data, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "nopack/config.toml not found" in missing.stderr


def test_the_device_recipe_parses_and_is_sized_for_a_gpu() -> None:
    cfg = tt.load_config(REPO / "training" / "configs" / "device_L.toml", "L")
    assert cfg["train"]["batch"] == 32 and cfg["data"]["num_workers"] == 14 and cfg["data"]["size"] == 336
    assert cfg["train"]["checkpoint_every"] >= 500  # a 39 MB checkpoint every few GPU steps would stall the run
    kinds = {s["kind"] for s in cfg["data"]["sources"]}
    assert kinds == {"folder", "synth", "matte"}  # all of which a pack can hold


def test_the_next_device_recipe_fine_tunes_gently_on_what_the_rebuild_writes() -> None:
    """Stop 40's lesson: 3e-4 from the shipped L cost 4 IoU points at once. device_L7 starts lower, ramps in, scores
    the shipped L first, and reads the folders `training.rebuild all --label-train` makes on a new machine."""
    from training.rebuild import POOL_RECIPE

    cfg = tt.load_config(REPO / "training" / "configs" / "device_L7.toml", "L")
    assert cfg["train"]["lr"] <= 5e-5 and cfg["train"]["warmup"] >= 100 and cfg["val"]["at_start"] is True
    assert tt.lr_at(0, cfg["train"]) < tt.lr_at(cfg["train"]["warmup"], cfg["train"])
    slugs = {src.slug for src in POOL_RECIPE}
    pool_roots = [s["root"] for s in cfg["data"]["sources"] if s.get("root", "").startswith("data/small/")]
    assert {r.rsplit("/", 1)[1] for r in pool_roots} == slugs
    assert all(r.startswith("data/small/train/") for r in pool_roots)
    matte = [s for s in cfg["data"]["sources"] if s["kind"] == "matte"]
    assert [(m["root"], m["backgrounds"]) for m in matte] == [("data/matte", "data/bg")]
    val_roots = [s["root"] for s in cfg["val"]["sources"]]
    assert val_roots and all(r.startswith("data/small/val/") and r.rsplit("/", 1)[1] in slugs for r in val_roots)


def test_the_pool_only_device_recipe_trains_on_the_teachers_photos_alone() -> None:
    """Stop 42: from the shipped L, device_L7's mix (a third hand-drawn sets, a fifth composites) lost IoU on the
    held-out photos within 60 CPU steps where the teacher's photos alone gained; device_L8 keeps only those, gently."""
    from training.rebuild import POOL_RECIPE

    cfg = tt.load_config(REPO / "training" / "configs" / "device_L8.toml", "L")
    slugs = {src.slug for src in POOL_RECIPE}
    sources = cfg["data"]["sources"]
    assert sources and all(s["kind"] == "folder" and s["root"].startswith("data/small/train/") for s in sources)
    assert {s["root"].rsplit("/", 1)[1] for s in sources} == slugs
    assert cfg["train"]["lr"] <= 5e-5 and cfg["train"]["warmup"] >= 100
    assert cfg["val"]["at_start"] is True and cfg["val"]["keep_best"] is True
    val_roots = [s["root"] for s in cfg["val"]["sources"]]
    assert val_roots and all(r.startswith("data/small/val/") and r.rsplit("/", 1)[1] in slugs for r in val_roots)
    assert not any("clothing" in r for r in val_roots)


def test_the_h_device_recipes_train_gently_from_the_shipped_hs_on_the_teachers_photos() -> None:
    """Stop 52: device_Hs1 (the small-photo H) and device_H7 (the large-photo H, on the teacher's 1:1 labels) read
    what the rebuild and `training.tiles` write, hold only sources a pack can carry, and validate on held-out photos
    that are not clothing."""
    from training.rebuild import POOL_RECIPE

    slugs = {src.slug for src in POOL_RECIPE}
    for name in ("device_Hs1.toml", "device_H7.toml"):
        cfg = tt.load_config(REPO / "training" / "configs" / name, "H")
        assert cfg["train"]["batch"] == 32 and cfg["data"]["num_workers"] == 14, name
        assert cfg["train"]["lr"] <= 5e-5 and cfg["train"]["warmup"] >= 100, name
        assert cfg["val"]["at_start"] is True and cfg["val"]["keep_best"] is True, name
        assert float(cfg["model"].get("mask_skip", 0.0)) == 0.0, name  # the cut's H, as shipped (stop 50)
        sources = cfg["data"]["sources"]
        assert {s["kind"] for s in sources} == {"folder", "synth"}, name
        folders = [s["root"] for s in sources if s["kind"] == "folder"]
        assert all(r.startswith(("data/small/train/", "data/split/train/")) for r in folders), name
        assert {r.rsplit("/", 1)[1] for r in folders} <= slugs, name
        val_roots = [s["root"] for s in cfg["val"]["sources"]]
        assert val_roots and all("/val/" in r and "clothing" not in r for r in val_roots), name
    hs = tt.load_config(REPO / "training" / "configs" / "device_Hs1.toml", "H")
    assert {s["root"].rsplit("/", 1)[1] for s in hs["data"]["sources"] if s["kind"] == "folder"} == slugs
    assert 1.5 in hs["data"]["scales"]  # the enlarged edge pass's view of a small photo
    h7 = tt.load_config(REPO / "training" / "configs" / "device_H7.toml", "H")
    sharp = [s for s in h7["data"]["sources"] if s.get("mask_dir")]
    assert sharp and all(s["root"].startswith("data/split/train/") and s["mask_dir"].endswith(
        "/sharp/train/" + s["root"].rsplit("/", 1)[1]) for s in sharp)
    assert 0.25 in h7["data"]["scales"]  # a 4K photo's global pass


def test_travel_counts_tracked_untracked_and_carried_but_not_ignored(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / ".gitignore").write_text("/data/\n")
    (repo / "code.py").write_bytes(b"x" * 1000)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    (repo / "new.py").write_bytes(b"y" * 500)
    (repo / "data" / "pack").mkdir(parents=True)
    (repo / "data" / "pack" / "a.jpg").write_bytes(b"z" * 300)
    (repo / "data" / "other.bin").write_bytes(b"w" * 9999)
    tr = travel_bytes(["data/pack"], repo)
    gitignore = len("/data/\n")
    assert tr["tree"] == 1000 + 500 + gitignore and tr["carried"] == 300
    assert tr["total"] == tr["tree"] + 300 and tr["limit"] == 64 * 2**20
    with pytest.raises(MosError, match="carried path not found"):
        travel_bytes(["data/none"], repo)
    # a part's default budget is what the call leaves beside this tree, less a margin for what it gains
    tree_mib = tr["tree"] / 2**20
    assert default_budget_mb(repo / "data" / "pack_new") == pytest.approx(64 - tree_mib - MARGIN_MB)
    assert default_budget_mb(tmp_path / "elsewhere") == 22.0  # no checkout: no tree to subtract
    monkeypatch.setattr(pack_mod, "TRAVEL_LIMIT", int((tree_mib + MARGIN_MB + 0.5) * 2**20))
    with pytest.raises(MosError, match="too little for a pack"):
        default_budget_mb(repo / "data" / "pack_new")


def test_a_pack_into_a_folder_not_yet_made_is_named_from_the_checkout_root(tmp_path: Path) -> None:
    """Stop 40's first pack went into a `data/` that did not exist yet: git was asked from a missing folder, failed,
    and the config's roots kept the builder's prefix (`main/data/...`), which the device call could not find."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    out = repo / "data" / "nested" / "pack"
    assert repo_relative(out) == Path("data/nested/pack")
    assert checkout_of(out) == repo.resolve()
    outside = tmp_path / "elsewhere" / "pack"
    assert checkout_of(outside) is None and repo_relative(outside) == outside
