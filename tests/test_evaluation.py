"""Dataset evaluation: each pair is predicted once, and Ctrl-C keeps the rows, summary and gallery done so far."""

import csv
import json

import cv2
import numpy as np
from PIL import Image

from mos_studio.cli.main import main
from mos_studio.core import evaluation as ev
from mos_studio.core import metrics

ROW_H = 256 + 4  # gallery tile height plus the padding between rows


def _pair(i: int, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt = np.zeros((size, size), np.uint8)
    cv2.circle(gt, (size // 2, size // 2), size // 4, 255, -1)
    pred = cv2.erode(gt, np.ones((1 + 2 * i, 1 + 2 * i), np.uint8))  # larger i: worse prediction
    return np.full((size, size, 3), 100, np.uint8), gt, pred


def test_each_pair_predicted_once_and_gallery_holds_the_worst(tmp_path):
    pairs = [ev.Pair(f"p{i}", None, tmp_path / f"p{i}.png") for i in range(10)]
    calls = []

    def predict(pair):
        calls.append(pair.name)
        return _pair(int(pair.name[1:]))

    summary, interrupted = ev.evaluate(pairs, predict, tmp_path / "out", "t")
    assert not interrupted and summary["n"] == 10
    assert calls == [p.name for p in pairs]  # no second model run for the gallery
    gallery = cv2.imread(str(tmp_path / "out" / "worst.png"))
    assert gallery.shape[0] == 8 * ROW_H
    # The gallery's rows are the 8 lowest-MQ pairs, worst first: p9 … p2 (the two best, p0 and p1, are left out).
    expected = sorted(range(10), key=lambda i: metrics.mq(_pair(i)[2], _pair(i)[1]))[:8]
    assert sorted(expected) == list(range(2, 10))
    first = ev.gallery_row("p9", *_pair(9))
    assert np.array_equal(gallery[: first.shape[0], : first.shape[1]], cv2.cvtColor(first, cv2.COLOR_RGB2BGR))


def test_interrupt_stops_at_once_and_keeps_what_was_done(tmp_path):
    pairs = [ev.Pair(f"p{i}", None, tmp_path / f"p{i}.png") for i in range(5)]
    calls = []

    def predict(pair):
        calls.append(pair.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _pair(len(calls))

    summary, interrupted = ev.evaluate(pairs, predict, tmp_path / "out", "t")
    assert interrupted and summary["n"] == 2 and calls == ["p0", "p1", "p2"]  # nothing runs after Ctrl-C
    rows = list(csv.DictReader(open(tmp_path / "out" / "per_image.csv")))
    assert [r["name"] for r in rows] == ["p0", "p1"]
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["n"] == 2 and saved["interrupted"] is True
    assert cv2.imread(str(tmp_path / "out" / "worst.png")).shape[0] == 2 * ROW_H


def test_cli_ctrl_c_exits_130_with_rows_kept(tmp_path, monkeypatch, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for i in range(3):
        _, gt, pred = _pair(i)
        Image.fromarray(gt).save(tmp_path / "gt" / f"im{i}.png")
        Image.fromarray(pred).save(tmp_path / "pred" / f"im{i}.png")
    real = metrics.score_pair
    seen = []

    def score_then_interrupt(pred, gt):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(pred, gt)

    monkeypatch.setattr(metrics, "score_pair", score_then_interrupt)
    out = tmp_path / "res"
    code = main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out)])
    assert code == 130 and len(seen) == 2
    assert "interrupted after 1 of 3 images" in capsys.readouterr().err
    assert [r["name"] for r in csv.DictReader(open(out / "per_image.csv"))] == ["im0"]
    assert json.loads((out / "summary.json").read_text())["n"] == 1
    assert (out / "table.md").is_file() and (out / "worst.png").is_file()
