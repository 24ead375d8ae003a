"""training.rebuild: the data recipes that reproduced the shipped held-out numbers on a new machine."""

import subprocess

import numpy as np
import pytest
from PIL import Image

from training.pool import held_out
from training.rebuild import build_cats, cat_mask, extract_pool_source, main


def test_cat_mask_is_the_union_of_the_label_polygons_at_float_coordinates():
    text = "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n0 0.4 0.4 0.9 0.4 0.9 0.9\n\n0 0.2 0.2\n"  # last line: no polygon
    mask = np.asarray(cat_mask(text, (100, 50)))
    assert mask.shape == (50, 100) and set(np.unique(mask)) == {0, 255}
    assert mask[10:25, 10:50].all() and mask[35:40, 85:89].all()  # inside the square, inside the triangle
    assert not mask[45:, :5].any() and not mask[:4].any()
    assert cat_mask("0 0.2 0.2\n", (10, 10)) is None  # no polygon at all: the photo is left out


def test_build_cats_names_pairs_by_source_id_and_leaves_out_unlabelled_photos(tmp_path):
    root = tmp_path / "src" / "feral-cat-segmentation.v1i.yolov8"
    for idir, ldir in (("train/images_1st_500", "train/labels_1st_500"), ("valid/images", "valid/labels")):
        (root / idir).mkdir(parents=True)
        (root / ldir).mkdir(parents=True)
    hashes = ["a" * 32, "b" * 32, "c" * 32]
    for k, (idir, ldir, label) in enumerate([
        ("train/images_1st_500", "train/labels_1st_500", "0 0.1 0.1 0.9 0.1 0.9 0.9\n"),
        ("train/images_1st_500", "train/labels_1st_500", ""),  # an empty label file
        ("valid/images", "valid/labels", "0 0 0 1 0 1 1 0 1\n"),
    ]):
        stem = f"group000{k}_jpg.rf.{hashes[k]}"
        Image.new("RGB", (64, 48), (k * 40, 0, 0)).save(root / idir / f"{stem}.jpg")
        (root / ldir / f"{stem}.txt").write_text(label)
    assert build_cats(tmp_path / "src", tmp_path / "raw") == 2
    names = sorted(p.name for p in (tmp_path / "raw" / "cats" / "masks").iterdir())
    assert names == ["group0000_aaaaaaaa.png", "group0002_cccccccc.png"]
    full = np.asarray(Image.open(tmp_path / "raw" / "cats" / "masks" / "group0002_cccccccc.png"))
    assert full.shape == (48, 64) and full.mean() > 250  # the whole frame


def test_pool_source_takes_matching_photos_once_and_skips_small_ones(tmp_path):
    repo = tmp_path / "repo"
    (repo / "jpg" / "sub").mkdir(parents=True)
    big = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    Image.fromarray(big).save(repo / "jpg" / "a.jpg")
    (repo / "jpg" / "copy.jpg").write_bytes((repo / "jpg" / "a.jpg").read_bytes())  # the same blob
    Image.fromarray(big[:200]).save(repo / "jpg" / "small.jpg")  # short side 200 < 256
    Image.fromarray(big).save(repo / "jpg" / "sub" / "b.png")
    (repo / "jpg" / "notes.jpg").write_text("not a photo")
    (repo / "jpg" / "skip.jpg").write_bytes((repo / "jpg" / "sub" / "b.png").read_bytes()[:10])
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "photos"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    stats = extract_pool_source(repo / ".git", commit, "cams", r"jpg/.*\.(jpg|png)", tmp_path / "pool",
                                exclude=r"skip")
    assert stats == dict(matched=5, absent=0, dup=1, notimg=1, small=1, kept=2)
    assert sorted(p.name for p in (tmp_path / "pool" / "cams").iterdir()) == ["a.jpg", "b.png"]
    # The flat name is what decides a photo's held-out side.
    assert isinstance(held_out("cams", "b.png", 0.07), bool)


def test_cli_names_a_missing_tree_and_a_bad_commit(tmp_path, capsys):
    assert main(["realsets", str(tmp_path), "--out", str(tmp_path / "raw"), "--sets", "horse"]) == 2
    assert "horse repository's tree is not there" in capsys.readouterr().err
    (tmp_path / "g").mkdir()
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "g")], check=True)
    assert main(["pool", str(tmp_path / "g"), "deadbeef", "x", ".*", "--out", str(tmp_path / "p")]) == 2
    assert "cannot list commit deadbeef" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["group0001_jpg", "x.jpg"])
def test_build_cats_refuses_names_it_cannot_read(tmp_path, name):
    root = tmp_path / "src" / "feral-cat-segmentation.v1i.yolov8" / "valid" / "images"
    root.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / f"{name}.jpg")
    from mos_studio.core.errors import MosError

    with pytest.raises(MosError, match="not a Roboflow export name"):
        build_cats(tmp_path / "src", tmp_path / "raw")


def test_horse_pairs_meet_at_the_smaller_size_and_a_different_shape_is_refused(tmp_path):
    from mos_studio.core.errors import MosError
    from training.rebuild import build_horse

    root = tmp_path / "src" / "weizmann_horse_db"
    (root / "rgb").mkdir(parents=True)
    (root / "figure_ground").mkdir()
    Image.new("RGB", (200, 100), (9, 9, 9)).save(root / "rgb" / "a.jpg")  # image larger: shrunk to the mask
    Image.new("L", (100, 50), 200).save(root / "figure_ground" / "a.jpg")
    Image.new("RGB", (100, 50), (9, 9, 9)).save(root / "rgb" / "b.jpg")  # mask larger: shrunk to the image
    Image.new("L", (200, 100), 90).save(root / "figure_ground" / "b.jpg")
    Image.new("RGB", (64, 64)).save(root / "rgb" / "c.jpg")  # no mask: left out
    assert build_horse(tmp_path / "src", tmp_path / "raw") == 2
    out = tmp_path / "raw" / "horse"
    assert Image.open(out / "images" / "a.jpg").size == (100, 50)
    assert (out / "images" / "b.jpg").read_bytes() == (root / "rgb" / "b.jpg").read_bytes()
    a, b = (np.asarray(Image.open(out / "masks" / f"{k}.png")) for k in "ab")
    assert a.shape == b.shape == (50, 100) and (a == 255).all() and (b == 0).all()  # thresholded at 127
    Image.new("L", (100, 60)).save(root / "figure_ground" / "c.jpg")  # 5:3 against 1:1
    with pytest.raises(MosError, match="c.jpg: image .* differ in aspect ratio"):
        build_horse(tmp_path / "src", tmp_path / "raw2")
