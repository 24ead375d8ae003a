"""`mos eval` and `mos complexity` on small real datasets written to disk."""

import csv
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from mos_studio.cli.main import main
from mos_studio.core.testing import write_tiny_models


def _dataset(root, n=3, size=(80, 64)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, (w // 2, h // 2), 12 + 4 * i, 255, -1)
        img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        img[m > 0] += 150
        Image.fromarray(img).save(root / "images" / f"im{i}.jpg")
        Image.fromarray(m).save(root / "masks" / f"im{i}.png")
    return root


def _predictions(ds, pred, change):
    """A folder of predictions: the dataset's masks, those named in `change` passed through its function."""
    pred.mkdir()
    for p in (ds / "masks").iterdir():
        m = np.array(Image.open(p))
        Image.fromarray(change.get(p.stem, lambda a: a)(m)).save(pred / p.name)
    return pred


def test_pred_gt_mode_scores_and_writes_outputs(tmp_path, capsys):
    ds = _dataset(tmp_path / "ds")
    pred = _predictions(ds, tmp_path / "pred", {"im1": lambda m: cv2.erode(m, np.ones((5, 5), np.uint8))})
    out = tmp_path / "res"
    assert main(["eval", "--pred", str(pred), "--gt", str(ds / "masks"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("n", "mae", "s_measure", "iou", "iou_pooled", "mba", "mq"):
        assert key in summary
    assert summary["n"] == 3 and summary["iou"] < 1.0 and summary["mq"] < 1.0
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert {r["name"] for r in rows} == {"im0", "im1", "im2"}
    perfect = [r for r in rows if r["name"] != "im1"]
    assert all(float(r["iou"]) == 1.0 and float(r["mq"]) == 1.0 for r in perfect)
    gallery = np.array(Image.open(out / "worst.png"))
    assert gallery.shape[0] >= 3 * 256 and gallery.std() > 10
    table = capsys.readouterr().out
    assert "| MAE | S-m | IoU | IoU pooled | mBA | MQ |" in table and "×10⁻²" in table


@pytest.mark.parametrize("stage", [["L"], ["L-up"], ["LH"]])
def test_model_stages_run_with_tiny_weights(tmp_path, stage):
    ds = _dataset(tmp_path / "ds", n=2)
    models = write_tiny_models(tmp_path / "models")
    out = tmp_path / "o"
    code = main(["eval", str(ds), "--stage", *stage, "--models-dir", str(models), "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 2 and 0 <= summary["mq"] <= 1
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    if stage == ["L"]:
        assert all(r["width"] == "336" and r["height"] == "336" for r in rows)
    else:
        assert all(r["width"] == "80" and r["height"] == "64" for r in rows)


def test_l_stage_scores_the_blended_l_at_its_square_size(tmp_path):
    """With `inference.l_blend` L's answer comes from two inputs of different shapes; `--stage L` scores their
    average, shrunk to the square input, so it measures what the cascade actually starts from."""
    ds = _dataset(tmp_path / "ds", n=2)
    models = write_tiny_models(tmp_path / "models")
    outs = {}
    for blend in (False, True):
        card_file = next(models.glob("*_L.json"))
        card = json.loads(card_file.read_text())
        card["inference"] = {"l_blend": blend}
        card_file.write_text(json.dumps(card))
        out = tmp_path / f"o{blend}"
        assert main(["eval", str(ds), "--stage", "L", "--models-dir", str(models), "--out", str(out)]) == 0
        rows = list(csv.DictReader(open(out / "per_image.csv")))
        assert all(r["width"] == "336" and r["height"] == "336" for r in rows)
        outs[blend] = json.loads((out / "summary.json").read_text())
    assert outs[True]["n"] == 2 and outs[True]["mae"] != outs[False]["mae"]
    # `inference.l_zoom` looks closer at part of the full photo, so `--stage L` runs it there too, scored the same way.
    card["inference"] = {"l_zoom": True, "l_zoom_max": 1.0}
    card_file.write_text(json.dumps(card))
    out = tmp_path / "ozoom"
    assert main(["eval", str(ds), "--stage", "L", "--models-dir", str(models), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 2 and all(r["width"] == "336" and r["height"] == "336" for r in rows)


def test_h_from_refines_given_masks(tmp_path):
    ds = _dataset(tmp_path / "ds", n=2)
    models = write_tiny_models(tmp_path / "models")
    code = main(["eval", str(ds), "--stage", "H-from", str(ds / "masks"), "--models-dir", str(models),
                 "--out", str(tmp_path / "o")])
    assert code == 0 and json.loads((tmp_path / "o" / "summary.json").read_text())["n"] == 2


def test_switches_a_stage_never_reads_are_refused(tmp_path, capsys):
    """--edge-snap with H-from (refine never snaps), --crops with L or --colour-assist with H-from (L never runs)
    would measure the same thing twice."""
    ds = _dataset(tmp_path / "ds", n=1)
    models = write_tiny_models(tmp_path / "models")
    base = ["eval", str(ds), "--models-dir", str(models), "--out", str(tmp_path / "o")]
    assert main(base + ["--stage", "H-from", str(ds / "masks"), "--edge-snap"]) == 1
    assert "--edge-snap applies to --stage LH only" in capsys.readouterr().err
    assert main(base + ["--stage", "L-up", "--no-edge-snap"]) == 1
    assert "--no-edge-snap applies to --stage LH only" in capsys.readouterr().err
    assert main(base + ["--stage", "L", "--crops"]) == 1
    assert "--crops applies to --stage LH and H-from" in capsys.readouterr().err
    assert main(base + ["--stage", "H-from", str(ds / "masks"), "--colour-assist"]) == 1
    assert "--colour-assist applies where L runs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(base + ["--stage", "LH", "--no-edge-snap", "--no-crops", "--colour-assist"]) == 0


def test_bad_datasets(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    ds = _dataset(tmp_path / "ds", n=2)
    (ds / "masks" / "im1.png").unlink()
    assert main(["eval", str(ds), "--models-dir", str(tmp_path)]) == 1
    assert "1 of the images have no mask" in capsys.readouterr().err
    assert main(["eval", "--pred", str(ds / "masks")]) == 1
    assert "--pred and --gt go together" in capsys.readouterr().err


def test_complexity_table(tmp_path, capsys):
    ds = tmp_path / "c"
    (ds / "masks").mkdir(parents=True)
    disk = np.zeros((200, 200), np.uint8)
    cv2.circle(disk, (100, 100), 80, 255, -1)
    comb = np.zeros((200, 200), np.uint8)
    comb[:30] = 255
    comb[:, ::12] = 255
    Image.fromarray(disk).save(ds / "masks" / "disk.png")
    Image.fromarray(comb).save(ds / "masks" / "comb.png")
    assert main(["complexity", str(ds)]) == 0
    out = capsys.readouterr().out
    assert "| disk |" in out and "| comb |" in out and "mean C_IPQ" in out


def test_max_images_scores_an_evenly_spaced_subset(tmp_path, capsys):
    from mos_studio.cli.evaluate import subsample

    assert subsample(list(range(10)), 4) == [0, 2, 5, 7] and subsample([1, 2], 5) == [1, 2]
    ds = _dataset(tmp_path / "ds", n=3)
    out = tmp_path / "o"
    assert main(["eval", "--pred", str(ds / "masks"), "--gt", str(ds / "masks"), "--max-images", "2",
                 "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["n"] == 2
    assert main(["eval", "--pred", str(ds / "masks"), "--gt", str(ds / "masks"), "--max-images", "0"]) == 1
    assert "--max-images 0" in capsys.readouterr().err


def test_error_split_columns_summary_and_table(tmp_path, capsys):
    """--error-split: an edge one pixel off is thin, a missed corner is thick, and each shows where it should."""
    def strip_missed(m):  # a 12-px strip of the object missed
        ys, xs = np.nonzero(m)
        m[ys.min():ys.min() + 12, xs.min():xs.max() + 1] = 0
        return m

    ds = _dataset(tmp_path / "ds")
    pred = _predictions(ds, tmp_path / "pred", {"im1": lambda m: np.roll(m, 1, axis=0),  # the edge a pixel off
                                                "im2": strip_missed})
    out = tmp_path / "res"
    assert main(["eval", "--pred", str(pred), "--gt", str(ds / "masks"), "--out", str(out), "--error-split"]) == 0
    rows = {r["name"]: r for r in csv.DictReader(open(out / "per_image.csv"))}
    assert float(rows["im1"]["thin_px"]) > 0 and float(rows["im1"]["thick_px"]) == 0
    assert float(rows["im1"]["mba_without_thin"]) == 1.0 and float(rows["im1"]["mba"]) < 1.0
    assert float(rows["im2"]["thick_px"]) > 0 and float(rows["im2"]["iou_without_thick"]) == 1.0
    assert float(rows["im0"]["thin_px"]) == float(rows["im0"]["thick_px"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mba"] < summary["mba_without_thin"] and summary["mba"] < summary["mba_without_thick"]
    assert summary["iou_without_thick"] > summary["iou"]
    table = capsys.readouterr().out
    assert "without thin" in table and "thin share of wrong pixels" in table
    assert "without thin" in (out / "table.md").read_text(encoding="utf-8")

    plain = tmp_path / "plain"  # without the switch: the columns and the table stay as they were
    assert main(["eval", "--pred", str(pred), "--gt", str(ds / "masks"), "--out", str(plain)]) == 0
    assert "thin_px" not in open(plain / "per_image.csv").readline()
    assert "without thin" not in (plain / "table.md").read_text(encoding="utf-8")
