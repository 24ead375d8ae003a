"""Training end to end on the CPU with the real MobileNetV3 MeticulousNet: loss falls, resume is exact, Ctrl-C
checkpoints, exported weights load through the app's own loaders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import training.train as tt
from mos_studio.core.cascade import Cascade
from mos_studio.core.model import MeticulousNet
from mos_studio.core.weights import load_model
from training.export import export, read_checkpoint
from training.losses import gradient_loss, soft_iou_loss, stage_losses


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning barriers turn a second thread (competing
    with the DataLoader worker and other jobs) into a 10-20× slowdown."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(tmp_path: Path, stage: str, name: str, **train) -> Path:
    size_key = "size" if stage == "L" else "patch"
    settings = {"iterations": 30, "batch": 2, "log_every": 5, "checkpoint_every": 100, "amp": False, **train}
    lines = [f'stage = "{stage}"', "[data]", f"{size_key} = 64", "num_workers = 0", "fixed_samples = 2",
             "[[data.sources]]", 'kind = "synth"', "size = 96",
             "[val]", "every = 1000", "count = 2", "grid = 2",
             "[[val.sources]]", 'kind = "synth"', "size = 96", "seed_offset = 1000000000", "[train]"]
    lines += [f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}" for k, v in settings.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _losses(run: Path) -> list[float]:
    with open(run / "losses.csv", newline="") as f:
        return [float(r["total"]) for r in csv.DictReader(f)]


def test_train_l_then_h_loss_falls_and_export_loads(tmp_path) -> None:
    cfg_l = _config(tmp_path, "L", "tiny_L", iterations=30, lr=1e-3, num_workers=1)
    assert tt.main(["--stage", "L", "--config", str(cfg_l), "--out", str(tmp_path / "L")]) == 0
    losses = _losses(tmp_path / "L")
    assert len(losses) == 30
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"L loss: first-5 mean {first:.4f} → last-5 mean {last:.4f}")
    assert last < 0.8 * first
    assert (tmp_path / "L" / "val_0000030.png").is_file()

    cfg_h = _config(tmp_path, "H", "tiny_H", iterations=20, lr=1e-3)
    rc = tt.main(["--stage", "H", "--config", str(cfg_h), "--out", str(tmp_path / "H"),
                  "--init-from", str(tmp_path / "L" / "last.pt")])
    assert rc == 0
    h_losses = _losses(tmp_path / "H")
    print(f"H loss: first-5 mean {np.mean(h_losses[:5]):.4f} → last-5 mean {np.mean(h_losses[-5:]):.4f}")
    assert np.mean(h_losses[-5:]) < np.mean(h_losses[:5])

    models = tmp_path / "models"
    (tmp_path / "prov.json").write_text(json.dumps([{"name": "synth", "pairs_kept": 0}]))
    p_l = export(tmp_path / "L" / "last.pt", "L", models, provenance=tmp_path / "prov.json", notes="smoke run")
    p_h = export(tmp_path / "H" / "last.pt", "H", models, fp16=True)
    assert p_l.name == "meticulousnet_mobile_L.safetensors" and p_h.name == "meticulousnet_mobile_H.safetensors"
    card = json.loads(p_l.with_suffix(".json").read_text())
    assert card["iterations"] == 30 and card["stage"] == "L" and "iou" in card["metrics"]
    assert "training.train" in card["command"] and card["hardware"].startswith("CPU")
    assert "procedural" in card["training_data"][0]
    assert card["inference"]["l_size"] == 64  # the cascade will run L at its training size
    assert card["data_provenance"] == [{"name": "synth", "pairs_kept": 0}] and card["notes"] == "smoke run"
    assert json.loads(p_h.with_suffix(".json").read_text())["initialised_from"].endswith("last.pt")
    trained = torch.load(tmp_path / "L" / "last.pt", weights_only=True)["model"]
    loaded = load_model(p_l)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in trained.items())
    cascade = Cascade.from_pretrained(models)
    assert cascade.config.l_size == card["inference"]["l_size"]
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    result = cascade(image)
    assert result.mask.shape == (48, 64) and result.h_weights == "H"
    with pytest.raises(tt.MosError, match="already exists"):
        export(tmp_path / "L" / "last.pt", "L", models)
    with pytest.raises(tt.MosError, match="holds a stage-L model, not Hs"):
        export(tmp_path / "L" / "last.pt", "Hs", models)
    # The same H checkpoint shipped as H's small-photo weights: the cut of a small photo now runs it.
    p_hs = export(tmp_path / "H" / "last.pt", "Hs", models, fp16=True)
    assert p_hs.name == "meticulousnet_mobile_Hs.safetensors"
    assert json.loads(p_hs.with_suffix(".json").read_text())["stage"] == "Hs"
    assert Cascade.from_pretrained(models)(image).h_weights == "Hs"


def test_resume_reproduces_the_same_losses(tmp_path) -> None:
    """6 steps straight == 3 steps, checkpoint, resume, 3 steps (H: weight decay, multistep LR, perturbed masks)."""
    cfg = _config(tmp_path, "H", "resume_H", iterations=6, lr=1e-3, milestones=[0.375, 0.625])
    tt.train("H", cfg, tmp_path / "straight")
    first = tt.train("H", cfg, tmp_path / "split", stop_at=3)
    assert first["step"] == 3
    with pytest.raises(tt.MosError, match="--resume"):
        tt.train("H", cfg, tmp_path / "split")
    second = tt.train("H", cfg, tmp_path / "split", resume=True)
    assert second["step"] == 6
    straight, split = _losses(tmp_path / "straight"), _losses(tmp_path / "split")
    assert len(straight) == len(split) == 6
    assert straight == split


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, monkeypatch) -> None:
    cfg = _config(tmp_path, "L", "int_L", iterations=10)
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return stage_losses(*args, **kwargs)

    monkeypatch.setattr(tt, "stage_losses", interrupting)
    assert tt.main(["--stage", "L", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 130
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 2


def test_init_h_from_l_copies_rgb_filters_and_zeroes_mask_channel() -> None:
    low, high = MeticulousNet.tiny(3), MeticulousNet.tiny(4)
    report = tt.init_h_from_l(high, low.state_dict())
    w_h, w_l = high.encoder.first_conv.weight, low.encoder.first_conv.weight
    assert torch.equal(w_h[:, :3], w_l) and not w_h[:, 3].any()
    assert not report["skipped"]
    for k, v in low.state_dict().items():
        if v.shape == high.state_dict()[k].shape:
            assert torch.equal(high.state_dict()[k], v)


def test_losses_and_schedules() -> None:
    gt = torch.zeros(1, 1, 16, 16)
    gt[..., 4:12, 4:12] = 1
    assert gradient_loss(gt, gt).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_loss(torch.full_like(gt, 0.5), gt).item() > 0.01
    net = MeticulousNet.tiny(4)
    out = net(torch.rand(1, 4, 16, 16))
    h = stage_losses(out, gt, "H")
    low = stage_losses(out, gt, "L")
    assert h["grad"].item() > 0 and h["l1"].item() > 0 and low["l1"].item() == 0
    h["total"].backward()
    cos = {"lr": 1.0, "iterations": 100, "schedule": "cosine"}
    assert tt.lr_at(0, cos) == 1.0 and tt.lr_at(50, cos) == pytest.approx(0.5) and tt.lr_at(100, cos) == 0.0
    ms = {"lr": 2.25e-4, "iterations": 60000, "schedule": "multistep", "milestones": [0.375, 0.625], "gamma": 0.1}
    assert tt.lr_at(22499, ms) == 2.25e-4
    assert tt.lr_at(22500, ms) == pytest.approx(2.25e-5) and tt.lr_at(37500, ms) == pytest.approx(2.25e-6)


def test_soft_iou_loss_counts_per_object() -> None:
    """The IoU term is 0 for a right answer and the same for a wrong half of a small object as of a large one, where
    BCE (a pixel mean) charges the small object's mistake far less."""
    big = torch.zeros(1, 1, 64, 64)
    big[..., 8:56, 8:56] = 1
    small = torch.zeros(1, 1, 64, 64)
    small[..., 28:36, 28:36] = 1
    sure = 20.0
    assert soft_iou_loss((big * 2 - 1) * sure, big).item() == pytest.approx(0.0, abs=1e-3)
    assert soft_iou_loss(torch.full_like(big, -sure), torch.zeros_like(big)).item() == pytest.approx(0.0, abs=1e-3)
    half_big, half_small = big.clone(), small.clone()
    half_big[..., 8:32, :] = 0
    half_small[..., 28:32, :] = 0
    lb, ls = soft_iou_loss((half_big * 2 - 1) * sure, big), soft_iou_loss((half_small * 2 - 1) * sure, small)
    assert lb.item() == pytest.approx(0.5, abs=0.02) and ls.item() == pytest.approx(0.5, abs=0.05)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert bce((half_small * 2 - 1) * sure, small) < bce((half_big * 2 - 1) * sure, big) / 5
    net = MeticulousNet.tiny(3)
    out = net(torch.rand(2, 3, 64, 64))
    off, on = stage_losses(out, big.expand(2, -1, -1, -1), "L"), stage_losses(out, big.expand(2, -1, -1, -1), "L",
                                                                           iou_weight=1.0)
    assert off["iou"].item() == 0 and on["iou"].item() > 0
    assert on["total"].item() == pytest.approx(off["total"].item() + on["iou"].item(), rel=1e-5)
    on["total"].backward()


def test_loss_log_gains_a_column_on_resume(tmp_path: Path) -> None:
    """A run resumed after a loss column was added keeps its old rows, blank in the new column."""
    log = tmp_path / "losses.csv"
    log.write_text("step,total\n1,0.5\n2,0.4\n3,0.3\n")
    tt._truncate_csv(log, 2, ["step", "total", "iou"])
    tt._append_csv(log, ["step", "total", "iou"], {"step": 3, "total": 0.2, "iou": 0.1})
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0] == {"step": "1", "total": "0.5", "iou": ""} and rows[2]["iou"] == "0.1"


def test_paper_and_cpu_configs_parse() -> None:
    root = Path(tt.__file__).parent / "configs"
    for name, stage in [("paper_L", "L"), ("paper_H", "H"), ("cpu_L", "L"), ("cpu_H", "H"), ("ship_L", "L"),
                        ("ship_H", "H")]:
        cfg = tt.load_config(root / f"{name}.toml", stage)
        assert cfg["train"]["iterations"] > 0
    paper_h = tt.load_config(root / "paper_H.toml", "H")
    assert paper_h["train"]["batch"] == 24 and paper_h["train"]["weight_decay"] == 1e-4
    assert sum(s.get("weight", 1) for s in paper_h["data"]["sources"]) == 36572 + 46300
    with pytest.raises(tt.MosError, match="stage L"):
        tt.load_config(root / "paper_L.toml", "H")


def test_a_config_names_a_base_and_says_only_what_differs(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        'stage = "L"\n[data]\nseed = 1\nsize = 320\n[[data.sources]]\nkind = "synth"\nweight = 3\n'
        '[[data.sources]]\nkind = "synth"\nsize = 256\n[train]\nlr = 1e-4\nbatch = 8\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.toml").write_text(  # a base path is relative to the file that names it
        'base = "../a.toml"\n[data]\nseed = 2\n[[data.sources]]\nkind = "synth"\nsize = 640\n[train]\nlr = 5e-5\n')
    (tmp_path / "c.toml").write_text('base = "sub/b.toml"\n[train]\nbatch = 4\n')
    cfg = tt.load_config(tmp_path / "c.toml", "L")
    assert cfg["data"]["seed"] == 2 and cfg["data"]["size"] == 320  # tables merge key by key, down the chain
    assert cfg["data"]["sources"] == [{"kind": "synth", "size": 640}]  # arrays of sources are replaced whole
    assert cfg["train"]["lr"] == 5e-5 and cfg["train"]["batch"] == 4
    assert cfg["train"]["schedule"] == "cosine"  # what no file sets still comes from the stage's defaults
    assert cfg["name"] == "c" and cfg["bases"] == [str(tmp_path / "sub" / "b.toml"), str(tmp_path / "a.toml")]
    raw, _ = tt.read_config(tmp_path / "c.toml")
    assert "base" not in raw and raw["stage"] == "L"  # what pack writes stands alone
    with pytest.raises(tt.MosError, match="stage L"):
        tt.load_config(tmp_path / "c.toml", "H")


@pytest.mark.parametrize("files, says", [
    ({"c.toml": 'base = "gone.toml"\n'}, r"gone.toml: base config of .*c.toml not found"),
    ({"c.toml": 'base = "d.toml"\n', "d.toml": 'base = "c.toml"\n'},
     r"c.toml: its base configs loop \(.*c.toml -> .*d.toml -> .*c.toml\)"),
    ({"c.toml": "base = 3\n"}, "base must be the file name of another config, got 3"),
    ({"c.toml": 'base = "d.toml"\nstage = "L"\n', "d.toml": 'stage = "H"\n'},
     "for stage L, but its base is for stage H"),
    ({"c.toml": 'base = "d.toml"\n', "d.toml": "stage = \n"}, r"d.toml: not valid TOML"),
])
def test_a_broken_base_chain_is_a_clear_error(tmp_path: Path, capsys, files: dict, says: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(tt.MosError, match=says):
        tt.read_config(tmp_path / "c.toml")
    assert tt.main(["--stage", "L", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_every_shipped_config_resolves_and_names_an_earlier_base() -> None:
    root = Path(tt.__file__).parent / "configs"
    for path in sorted(root.glob("*.toml")):
        raw, bases = tt.read_config(path)
        assert raw.get("stage") in ("L", "H"), path
        for b in bases:  # bases stay inside this folder, so a packed or copied set of configs keeps them
            assert Path(b).resolve().parent == root.resolve(), (path, b)
    # teacher_L336n is device_L8's recipe with a CPU's batch, workers and validation
    n, gpu = tt.load_config(root / "teacher_L336n.toml", "L"), tt.load_config(root / "device_L8.toml", "L")
    assert n["data"]["sources"] == gpu["data"]["sources"] and n["val"]["sources"] == gpu["val"]["sources"]
    assert (n["train"]["batch"], n["train"]["amp"], n["val"]["each_photo"]) == (8, False, False)
    assert (gpu["train"]["batch"], gpu["train"]["amp"], gpu["val"]["each_photo"]) == (32, True, True)


def test_missing_dataset_is_a_clear_error(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('stage = "L"\n[[data.sources]]\nkind = "folder"\nroot = "%s"\n' % (tmp_path / "DUTS-TR"))
    assert tt.main(["--stage", "L", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "DUTS-TR" in err and "not found" in err and "Traceback" not in err
    assert tt.main(["--stage", "L", "--config", str(tmp_path / "none.toml")]) == 2


@pytest.mark.parametrize("table, says", [
    ('kind = "matte"\nroot = "m"\ncolour_match = "half"', "colour_match is a probability from 0 to 1, not 'half'"),
    ('kind = "matte"\nroot = "m"\ncolour_match = true', "not True"),
    ('kind = "photos"\nroot = "p"', "unknown data source kind 'photos'"),
    ('kind = "folder"', "missing key 'root'"),
])
def test_a_wrong_source_table_is_a_clear_error(tmp_path, capsys, table: str, says: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'stage = "L"\n[[data.sources]]\nkind = "synth"\n[[data.sources]]\n{table}\n')
    assert tt.main(["--stage", "L", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: [[data.sources]], source 2" in err and says in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_ddp_under_torchrun_on_cpu(tmp_path) -> None:
    """Two gloo processes split each global batch; rank 0 logs, validates and checkpoints."""
    import os
    import subprocess
    import sys

    cfg = _config(tmp_path, "L", "ddp_L", iterations=3, batch=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--stage", "L", "--config", str(cfg), "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=Path(tt.__file__).parents[1], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "world 2" in proc.stdout
    assert len(_losses(tmp_path / "ddp")) == 3
    assert torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["step"] == 3


def test_hs4_config_pairs_every_photo_folder_with_ls_answers() -> None:
    """teacher_Hs4 (stop 28): half of H's inputs from L's answers, one coarse_dir per folder of photos."""
    cfg = tt.load_config(Path(tt.__file__).parent / "configs" / "teacher_Hs4.toml", "H")
    assert cfg["data"]["given_p"] == 0.5
    folders = [s for s in cfg["data"]["sources"] if s.get("kind", "folder") == "folder"]
    assert folders and all(s["coarse_dir"] == f"data/lpred/{Path(s['root']).name}" for s in folders)


def test_warmup_ramps_the_rate_and_at_start_scores_the_starting_weights(tmp_path: Path) -> None:
    """A fine-tuning run (stop 40's L on the GPU) needs to see its start: the curve begins with the starting weights'
    own validation, and `warmup` spares good weights Adam's full-rate first steps."""
    cos = {"lr": 1.0, "iterations": 100, "schedule": "cosine", "warmup": 4}
    assert [tt.lr_at(s, cos) for s in range(3)] == pytest.approx([0.25 * tt.lr_at(0, {**cos, "warmup": 0}),
                                                                  0.5 * tt.lr_at(1, {**cos, "warmup": 0}),
                                                                  0.75 * tt.lr_at(2, {**cos, "warmup": 0})])
    assert tt.lr_at(4, cos) == tt.lr_at(4, {**cos, "warmup": 0})  # after the ramp, the schedule as before
    cfg = _config(tmp_path, "L", "warm_L", iterations=4, lr=1e-3, schedule="constant", warmup=4)
    # each_photo (stop 42): the validation set is the sources' photos in order, capped at count
    val = "grid = 2\nat_start = true\nkeep_best = true\neach_photo = true\n"
    cfg.write_text(cfg.read_text().replace("grid = 2\n", val))
    tt.train("L", cfg, tmp_path / "run", stop_at=2)
    with open(tmp_path / "run" / "losses.csv", newline="") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == pytest.approx([2.5e-4, 5e-4])
    tt.train("L", cfg, tmp_path / "run", resume=True)
    with open(tmp_path / "run" / "losses.csv", newline="") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    with open(tmp_path / "run" / "val.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # step 0 once (a resumed run does not score its start again), then the run's last step
    assert [int(r["step"]) for r in rows] == [0, 2, 4] and all(0.0 <= float(r["iou"]) <= 1.0 for r in rows)
    assert (tmp_path / "run" / "val_0000000.png").is_file()
    # keep_best: best.pt holds the weights of the best-scoring validation (IoU + mBA), the start included, and is
    # read like any checkpoint (soup, export)
    score = {int(r["step"]): float(r["iou"]) + float(r["mba"]) for r in rows}
    top = max(score, key=lambda k: (score[k], -k))
    model, best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["step"] == top and best["best"]["step"] == top and "optimizer" not in best
    assert best["metrics"]["iou"] + best["metrics"]["mba"] == pytest.approx(score[top], abs=1e-4)
    assert isinstance(model, MeticulousNet)
    last = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    assert last["best"]["step"] == top  # a resumed run compares against it, not against nothing


def test_reset_best_rescores_a_resumed_run_under_its_new_validation(tmp_path: Path) -> None:
    """Stop 43 resumed a run with a changed validation: the old best score (on other photos) must not block every
    new best, and the resumed weights are scored first under the new validation."""
    cfg = _config(tmp_path, "L", "reset_L", iterations=4, lr=1e-3, schedule="constant")
    cfg.write_text(cfg.read_text().replace("grid = 2\n", "grid = 2\nat_start = true\nkeep_best = true\n"))
    with pytest.raises(tt.MosError, match="--resume"):
        tt.train("L", cfg, tmp_path / "run", reset_best=True)
    tt.train("L", cfg, tmp_path / "run", stop_at=2)
    ck_path = tmp_path / "run" / "last.pt"
    ck = torch.load(ck_path, map_location="cpu", weights_only=True)
    ck["best"] = {"step": 0, "score": 99.0, "metrics": {}}  # a score no validation here can beat
    torch.save(ck, ck_path)
    cfg.write_text(cfg.read_text().replace("keep_best = true\n", "keep_best = true\neach_photo = true\n"))
    assert tt.main(["--stage", "L", "--config", str(cfg), "--out", str(tmp_path / "run"), "--resume",
                    "--reset-best"]) == 0
    with open(tmp_path / "run" / "val.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [0, 2, 2, 4]  # the old validation at 0 and 2, the new one at the resumed step 2 and at 4
    last = torch.load(ck_path, map_location="cpu", weights_only=True)
    assert last["best"]["step"] in (2, 4) and last["best"]["score"] < 99.0
    _, best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["step"] == last["best"]["step"]
