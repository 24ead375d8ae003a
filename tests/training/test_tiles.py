"""The teacher at 1:1 (training/tiles.py): tiles redraw the whole-photo label's edge band, and only where they agree."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mos_studio.core.errors import MosError
from training import teacher, tiles

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _scene(w: int = 1800, h: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc with a 2-px antenna on a dark photo, and a second bright blob far off; the truth is the
    disc and its antenna (the blob is not the object)."""
    truth = np.zeros((h, w), np.uint8)
    cv2.circle(truth, (700, 600), 300, 255, -1)
    cv2.line(truth, (700 + 300, 600), (700 + 300 + 40, 560), 255, 2)  # leaves the disc's edge: inside the band
    rgb = np.full((h, w, 3), 25, np.uint8)
    rgb[truth > 0] = 225
    cv2.circle(rgb, (1550, 250), 60, (225, 225, 225), -1)
    return rgb, truth


def _whole_photo_label(truth: np.ndarray) -> np.ndarray:
    """What the teacher gives at 1024 px of a larger photo: the truth shrunk and enlarged again (the antenna lost)."""
    h, w = truth.shape
    s = 1024 / max(h, w) / 2  # a little coarser than the teacher's own view, so the loss is plain
    small = cv2.resize(truth, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _bright(crop: np.ndarray) -> np.ndarray:
    """A labeller that draws every bright pixel crisply: right at 1:1, blind to which bright thing is the object."""
    return np.where(crop.mean(-1) > 128, 255, 0).astype(np.uint8)


def test_tiles_redraw_the_edge_band_and_keep_the_whole_photo_choice_of_parts() -> None:
    rgb, truth = _scene()
    glob = _whole_photo_label(truth)
    sharp, rec = tiles.sharpen(_bright, rgb, glob, tiles=(512,))
    t, g, s = truth > 127, glob > 127, sharp > 127
    assert rec["used"] >= 2 and rec["used"] + rec["refused"] == len(rec["tiles"])
    assert (s != t).sum() < (g != t).sum() / 10  # the whole-photo label is off along the whole edge
    win = np.s_[550:610, 995:1045]
    assert (s[win] == t[win]).all() and (g[win] != t[win]).sum() > 20  # the antenna drawn as it is
    # crisp: almost no half-sure pixels left along the disc's edge (the whole-photo label has a wide ramp there)
    ramp = lambda m: int(((m > 25) & (m < 230)).sum())  # noqa: E731
    assert ramp(sharp) < ramp(glob) / 4
    # the far blob is bright and crisp to the labeller, but not the object: outside the band nothing changes
    assert (sharp[150:350, 1450:1650] == glob[150:350, 1450:1650]).all() and not s[250, 1550]


def test_a_ramp_wider_than_the_band_is_redrawn_whole_and_leaves_no_ring() -> None:
    rgb, truth = _scene()
    glob = cv2.GaussianBlur(truth, (0, 0), 12)  # a teacher unsure over 30 px or more; the band is 5 px here
    sharp, _ = tiles.sharpen(_bright, rgb, glob, tiles=(512,))
    edge = cv2.morphologyEx((truth > 127).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    grey = (sharp > 25) & (sharp < 230)
    assert not (grey & ~edge).any()  # half-sure only right at the edge: no ring where the old ramp ended
    assert ((glob > 25) & (glob < 230) & ~edge).sum() > 10000


def test_a_finer_tile_wins_where_it_agrees_and_a_coarser_one_fills_in_where_it_does_not() -> None:
    rgb, truth = _scene()
    glob = _whole_photo_label(truth)

    def picky(crop: np.ndarray) -> np.ndarray:  # crisp on large tiles; on small ones only where the tile is dark left
        out = _bright(crop)
        return out if crop.shape[0] > 512 or crop[:, :8].mean() < 128 else 255 - out

    sharp, rec = tiles.sharpen(picky, rgb, glob, tiles=(512, 1024, 4096))  # any order; 4096 > the photo: skipped
    assert {r["size"] for r in rec["tiles"]} == {1024, 512}
    assert any(r["size"] == 512 and "refused" in r for r in rec["tiles"])
    assert any(r["size"] == 512 and "refused" not in r for r in rec["tiles"])
    assert ((sharp > 127) != (truth > 127)).sum() < ((glob > 127) != (truth > 127)).sum() / 10


def test_a_tile_that_disagrees_away_from_the_edge_is_refused() -> None:
    rgb, truth = _scene()
    glob = _whole_photo_label(truth)
    blind, rec = tiles.sharpen(lambda c: np.zeros(c.shape[:2], np.uint8), rgb, glob, tiles=(512,))
    assert rec["used"] == 0 and rec["refused"] > 0 and (blind == glob).all()
    grey, rec = tiles.sharpen(lambda c: np.where(c.mean(-1) > 128, 128, 0).astype(np.uint8), rgb, glob, tiles=(512,))
    assert rec["used"] == 0 and (grey == glob).all()
    assert all("refused" in r for r in rec["tiles"])
    with pytest.raises(MosError, match="differ in size"):
        tiles.sharpen(_bright, rgb[:-1], glob)


def test_the_cli_sharpens_large_photos_with_the_real_teacher_resumably(tmp_path: Path, capsys) -> None:
    from test_teacher import _tiny_teacher  # noqa: I001  (tests/training is on sys.path under pytest)

    model = _tiny_teacher(tmp_path / "t.onnx")  # brightness: IS-Net's signature, crisp at any size
    photos, labels, out = tmp_path / "pool", tmp_path / "labels", tmp_path / "sharp"
    rgb, truth = _scene(2400, 1600)
    (photos / "cam").mkdir(parents=True)
    Image.fromarray(rgb).save(photos / "cam" / "big.png")
    Image.fromarray(rgb[:600, :900]).save(photos / "cam" / "small.png")
    teacher.label(photos, model, labels, progress=False)  # the whole-photo labels, at 1024 px
    Image.fromarray(rgb).save(photos / "cam" / "unlabelled.png")
    glob = np.array(Image.open(labels / "cam" / "big.png"))
    assert tiles.main([str(photos), str(labels), "--model", str(model), "--out", str(out)]) == 0
    assert "1 sharpened now, 1 smaller than 1500 px, 1 without a label, 0 failed" in capsys.readouterr().out
    sharp = np.array(Image.open(out / "cam" / "big.png"))
    assert sharp.shape == glob.shape and not (out / "cam" / "small.png").exists()
    ramp = lambda m: int(((m > 25) & (m < 230)).sum())  # noqa: E731
    assert ramp(sharp) < ramp(glob) / 2  # the whole-photo label's edge is a ramp at 2400 px; the tiles' is not
    assert (sharp[800, 50:300] == glob[800, 50:300]).all()  # far from every edge: the whole-photo label's own
    rec = [json.loads(x) for x in (out / "tiles.jsonl").read_text().splitlines()]
    assert rec[0]["photo"] == "cam/big.png" and rec[0]["used"] >= 1
    man = json.loads((out / "manifest.json").read_text())
    assert man["sharpened_now"] == 1 and man["options"] == {"band": 3.0, "min_gap": 0.8, "tiles": [2048, 1024]}
    # resumable: nothing is redone; another teacher's run into the same folder is refused
    before = (out / "cam" / "big.png").stat().st_mtime_ns
    assert tiles.main([str(photos), str(labels), "--model", str(model), "--out", str(out)]) == 0
    assert "0 sharpened now" in capsys.readouterr().out
    assert (out / "cam" / "big.png").stat().st_mtime_ns == before
    other = _tiny_teacher(tmp_path / "t2.onnx", "another")
    assert tiles.main([str(photos), str(labels), "--model", str(other), "--out", str(out)]) == 2
    assert "sharpened by another teacher" in capsys.readouterr().err
    assert tiles.main([str(photos), str(tmp_path / "none"), "--model", str(model), "--out", str(out)]) == 2
    assert "none: no folder of teacher labels" in capsys.readouterr().err
    assert tiles.main([str(photos), str(labels), "--model", str(model), "--out", str(out), "--min-gap", "2"]) == 2
    assert "--min-gap must be in (0, 1]" in capsys.readouterr().err
    assert tiles.main([str(photos), str(labels), "--model", str(model), "--out", str(out), "--tiles", "big"]) == 2
    assert "--tiles must be tile sides" in capsys.readouterr().err
    # shards: two runs side by side share the photos (path order, every second one)
    assert tiles.main([str(photos), str(labels), "--model", str(model), "--out", str(tmp_path / "s1"),
                       "--shard", "1/2"]) == 0
    assert "0 sharpened now, 1 smaller than 1500 px, 0 without a label" in capsys.readouterr().out
    assert tiles.main([str(photos), str(labels), "--model", str(model), "--out", str(out), "--shard", "2/2"]) == 2
    assert "--shard must look like K/N" in capsys.readouterr().err
