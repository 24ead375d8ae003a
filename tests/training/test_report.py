"""training.report: the curves PNG and the held-out gallery, drawn from real run folders and real model passes."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from mos_studio.core.errors import MosError
from mos_studio.core.testing import write_tiny_models
from training.report import boundary_ratio, main, make_gallery, pick_images


def _run(folder, val_keys):
    folder.mkdir()
    with open(folder / "losses.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "lr", "total"])
        for s in range(1, 61):
            w.writerow([s, 1e-3, 2.0 / s + 0.1])
    with open(folder / "val.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *val_keys])
        for s in (20, 40, 60):
            w.writerow([s, *[0.3 + s / 200] * len(val_keys)])


def test_curves_png_has_a_row_per_run(tmp_path):
    _run(tmp_path / "ship_L", ["iou", "mba", "mq"])
    _run(tmp_path / "ship_H", ["iou", "input_iou", "mba", "mq"])
    out = tmp_path / "curves.png"
    assert main(["curves", str(tmp_path / "ship_L"), str(tmp_path / "ship_H"), "--out", str(out)]) == 0
    img = np.asarray(Image.open(out).convert("L"))
    assert img.shape[0] > img.shape[1] * 0.5 and img.std() > 20  # two rows of plots, not a blank canvas
    assert main(["curves", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def _dataset(root, n, rng):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        mask = np.zeros((120, 160), np.uint8)
        mask[30:90, 40:40 + 20 * (i + 1)] = 255
        if i == 1:
            mask[30:90:4, 20:40] = 255  # a comb: the longest boundary for its area
        Image.fromarray(img).save(root / "images" / f"p{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"p{i}.png")


def test_gallery_picks_by_boundary_and_runs_both_stages(tmp_path):
    rng = np.random.default_rng(0)
    _dataset(tmp_path / "a", 3, rng)
    _dataset(tmp_path / "b", 2, rng)
    picked = pick_images([tmp_path / "a", tmp_path / "b"], 3)
    assert [p[0].stem for p in picked] == ["p1", "p1", "p0"]  # round robin, most ragged outline first
    square = np.zeros((50, 50))
    square[10:40, 10:40] = 1
    comb = square.copy()
    comb[10:40:3] = 0
    assert boundary_ratio(comb) > 2 * boundary_ratio(square) and boundary_ratio(np.zeros((5, 5))) == 0.0
    models = write_tiny_models(tmp_path / "models")
    out, info = make_gallery([tmp_path / "a", tmp_path / "b"], tmp_path / "g.png", models, n=4, crop=64)
    gallery = np.asarray(Image.open(out))
    assert len(info) == 4 and gallery.shape[0] == 4 * (64 + 4)
    for row in info:
        x0, y0, x1, y1 = row["crop"]
        assert x1 - x0 == 64 and y1 - y0 == 64 and 0 <= x0 and x1 <= 160 and y1 <= 120
        assert 0 <= row["mba_L"] <= 1 and 0 <= row["mba_LH"] <= 1
    with pytest.raises(MosError, match="no held-out images"):
        make_gallery([], tmp_path / "g2.png", models)


def test_gallery_of_big_photos_with_a_before_column(tmp_path):
    rng = np.random.default_rng(1)
    _dataset(tmp_path / "a", 2, rng)
    big = np.zeros((120, 400, 3), np.uint8)
    Image.fromarray(big).save(tmp_path / "a" / "images" / "wide.png")
    wide = np.zeros((120, 400), np.uint8)
    wide[20:100, 50:300] = 255
    Image.fromarray(wide).save(tmp_path / "a" / "masks" / "wide.png")
    assert [p[0].stem for p in pick_images([tmp_path / "a"], 5, min_side=300)] == ["wide"]
    models = write_tiny_models(tmp_path / "models")
    old = write_tiny_models(tmp_path / "old", seed=1)
    plain, _ = make_gallery([tmp_path / "a"], tmp_path / "g1.png", models, n=2, crop=64)
    out, info = make_gallery([tmp_path / "a"], tmp_path / "g2.png", models, n=2, crop=64, before_models_dir=old)
    # One more 64 px tile (plus its 4 px gap) per row for the older weights' L+H.
    assert np.asarray(Image.open(out)).shape[1] == np.asarray(Image.open(plain)).shape[1] + 68 and len(info) == 2


def test_gallery_with_fine_detail_sets_the_pair_without_crops_beside_it(tmp_path, crops_seen):
    """--fine-detail: the new column is the same pair with H's crops on, the extra column the pair as its cards run
    it, and the crop goes where the two cuts differ most."""
    rng = np.random.default_rng(2)
    _dataset(tmp_path / "a", 1, rng)
    models = write_tiny_models(tmp_path / "models")
    for card in models.glob("*_H.json"):  # crops off, as the shipped H's card has them
        data = json.loads(card.read_text())
        data["inference"] = {**data.get("inference", {}), "local_passes": False}
        card.write_text(json.dumps(data))
    seen = crops_seen
    plain, _ = make_gallery([tmp_path / "a"], tmp_path / "g1.png", models, n=1, crop=64)
    assert seen == [False]
    seen.clear()
    out, info = make_gallery([tmp_path / "a"], tmp_path / "g2.png", models, n=1, crop=64, fine_detail=True)
    assert sorted(seen) == [False, True] and len(info) == 1
    assert np.asarray(Image.open(out)).shape[1] == np.asarray(Image.open(plain)).shape[1] + 68
