"""training.split: a reproducible, group-aware hold-out split made of links, never copies."""

import json

import numpy as np
import pytest
from PIL import Image

from mos_studio.core.errors import MosError
from training.split import make_split, split_groups


def _dataset(root, stems):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in stems:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / f"{s}.jpg")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / f"{s}.png")


def test_video_frames_of_one_sequence_stay_on_one_side():
    stems = [f"{seq}_{i:05d}" for seq in ("bear", "dog", "goat", "kite", "swan", "cows") for i in range(10)]
    train, val = split_groups(stems, 0.34, r"^(.+)_\d+$")
    seq = lambda names: {n.rsplit("_", 1)[0] for n in names}  # noqa: E731
    assert seq(train).isdisjoint(seq(val))
    assert len(seq(val)) == 3 and len(train) + len(val) == len(stems)
    assert split_groups(list(reversed(stems)), 0.34, r"^(.+)_\d+$") == (train, val)  # order-independent


def test_split_links_pairs_and_records_them(tmp_path):
    _dataset(tmp_path / "src", [str(i) for i in range(20)])
    rec = make_split(tmp_path / "src", tmp_path / "out", 0.2)
    assert len(rec["val"]) == 4 and len(rec["train"]) == 16
    val_images = sorted(p.stem for p in (tmp_path / "out/val/src/images").iterdir())
    assert val_images == sorted(rec["val"])
    link = tmp_path / "out/train/src/masks" / f"{rec['train'][0]}.png"
    assert link.is_symlink() and link.resolve() == (tmp_path / "src/masks" / link.name).resolve()
    assert json.loads((tmp_path / "out/src_split.json").read_text())["val"] == rec["val"]
    with pytest.raises(MosError, match="already exists"):
        make_split(tmp_path / "src", tmp_path / "out", 0.2)


def test_split_refuses_bad_fraction_and_empty_folders(tmp_path):
    with pytest.raises(MosError, match="strictly between 0 and 1"):
        split_groups(["a", "b"], 1.0)
    (tmp_path / "empty/images").mkdir(parents=True)
    (tmp_path / "empty/masks").mkdir()
    with pytest.raises(MosError, match="no image/mask pairs"):
        make_split(tmp_path / "empty", tmp_path / "out")
