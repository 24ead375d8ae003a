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


# ----------------------------------------------------------------------------------------- the whole rebuild (all)
def _repo(path, files: dict[str, bytes], bare: bool = False) -> str:
    """A git repository holding `files` in one commit, as fetch leaves it (<owner>+<name>/repo); returns the commit."""
    work = path.parent / (path.parent.name + "_work") if bare else path
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    git = ["git", "-C", str(work), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "files"], check=True)
    if bare:
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(path)], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


_SHADE = iter(range(1000))


def _jpeg(w: int, h: int) -> bytes:
    """A dark photo with a bright box (what the tiny teacher, brightness, labels as a crisp object); each one
    differs, since the pool takes one blob once."""
    import io as _io

    a = np.full((h, w, 3), 15, np.uint8)
    a[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 235
    a[:8, :8] = next(_SHADE) % 256  # a whole JPEG block: one pixel can vanish in the compression
    buf = _io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_all_names_every_repository_not_fetched(tmp_path, capsys):
    from training.rebuild import needed_repos

    assert main(["all", "--mirrors", str(tmp_path), "--out", str(tmp_path / "data"), "--no-teacher"]) == 2
    err = capsys.readouterr().err
    repos = needed_repos()
    assert len(repos) == 14 and f"{len(repos)} of {len(repos)} repositories have not been fetched" in err
    assert all(f"github:{r}\n" in err + "\n" for r in repos)
    assert not (tmp_path / "data").exists()  # nothing is written before every repository is there


def test_all_rebuilds_labels_the_held_out_side_and_keeps_what_is_there(tmp_path):
    from test_teacher import _tiny_teacher  # noqa: I001  (tests/training is on sys.path under pytest)

    from training.rebuild import PoolSource, RealSet, rebuild_all

    mirrors = tmp_path / "mirrors"
    # Names on both sides of the pool's stable split, so the held-out labelling has something to do.
    names = [f"p{i}" for i in range(400)]
    held = [n for n in names if held_out("cams", f"{n}.jpg", 0.07)][:3]
    train = [n for n in names if not held_out("cams", f"{n}.jpg", 0.07)][:3]
    files = {f"jpg/{n}.jpg": _jpeg(320, 260) for n in held + train}
    files["jpg/drop.jpg"] = _jpeg(320, 260)  # not taken by the source's `take` rule
    files["jpg/small.jpg"] = _jpeg(300, 200)  # short side under 256
    files["other/x.jpg"] = _jpeg(320, 260)  # outside the pattern
    c_photos = _repo(mirrors / "o+photos" / "repo", files)  # a work tree with .git, like one fetched repository
    c_stems = _repo(mirrors / "o+stems" / "repo", {f"CB/{train[0]}.png": b"x"}, bare=True)  # the rest are bare
    people = {}
    for k in range(10):
        people[f"Training_Images/a{k}.jpg"] = _jpeg(64, 48)
        buf = __import__("io").BytesIO()
        Image.fromarray(np.full((48, 64), 255 * (k % 2), np.uint8)).save(buf, "PNG")
        people[f"Ground_Truth/a{k}.png"] = buf.getvalue()
    people["README.md"] = b"not taken"
    c_people = _repo(mirrors / "o+people" / "repo", people, bare=True)
    seen: list[list[str]] = []

    def take(paths: list[str]) -> list[str]:
        seen.append(paths)
        return [p for p in paths if "drop" not in p]

    pool = (PoolSource("cams", "o/photos", c_photos, r"jpg/[^/]*\.jpg", 5, take=take,
                       exclude_stems_of=("o/stems", c_stems, "CB")),)
    real = (RealSet("humanseg", "o/people", c_people, ("Training_Images", "Ground_Truth"), 0.15),)
    out = tmp_path / "data"
    (out / "pool" / ".partial" / "cams").mkdir(parents=True)  # what an interrupted run left
    (out / "pool" / ".partial" / "cams" / "half.jpg").write_bytes(b"half")
    (out / "src" / ".humanseg.partial" / "Ground_Truth").mkdir(parents=True)  # an archive cut off
    (out / "src" / ".humanseg.partial" / "Ground_Truth" / "a0.png").write_bytes(b"half")
    (out / ".raw.partial" / "humanseg" / "masks").mkdir(parents=True)  # a build cut off
    (out / ".raw.partial" / "humanseg" / "masks" / "a0.png").write_bytes(b"half")
    lines: list[str] = []
    s = rebuild_all(mirrors, out, pool, real, teacher_model=_tiny_teacher(tmp_path / "t.onnx"), label_workers=2,
                    log=lines.append)
    # The pool: the pattern, minus CB's stems, as `take` chose from the sorted paths; small photos left out.
    assert seen[0] == sorted(seen[0]) and f"jpg/{train[0]}.jpg" not in seen[0]
    assert s["pool"]["cams"]["kept"] == 5 and s["pool"]["cams"]["small"] == 1
    assert sorted(p.name for p in (out / "pool" / "cams").iterdir()) == sorted(f"{n}.jpg" for n in held + train[1:])
    assert not (out / "pool" / ".partial").exists()
    assert not (out / "src" / ".humanseg.partial").exists() and not (out / ".raw.partial").exists()
    # The real set: only the named paths of the tree, built and split as training.split does.
    assert sorted(p.name for p in (out / "src" / "humanseg").iterdir()) == ["Ground_Truth", "Training_Images"]
    assert s["real"]["humanseg"]["pairs"] == 10
    val = sorted(p.name for p in (out / "realgt" / "split" / "val" / "humanseg" / "images").iterdir())
    assert len(val) == s["real"]["humanseg"]["val"] >= 1
    # The held-out list, its labels, the filter and the split.
    assert (out / "held_out.txt").read_text().split() == sorted(f"cams/{n}.jpg" for n in held)
    labelled = sorted(p.name for p in (out / "labels" / "cams").iterdir())
    assert labelled == sorted(f"{n}.png" for n in held)  # the held-out photos, and no training photo
    assert s["split"]["val"] == 3 and s["split"]["val_counts"] == {"cams": 3}
    assert sorted(p.name for p in (out / "split" / "val" / "cams" / "images").iterdir()) == sorted(
        f"{n}.jpg" for n in held)
    # Run again: everything is found and kept, nothing is redone or changed.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and not p.is_symlink()}
    lines.clear()
    s2 = rebuild_all(mirrors, out, pool, real, teacher_model=tmp_path / "t.onnx", label_workers=2, log=lines.append)
    assert s2["pool"]["cams"] == {"kept": 5, "present": True} and s2["real"]["humanseg"] == {"present": True}
    assert any("already there, left as it is" in line for line in lines)
    assert sorted(p.name for p in (out / "labels" / "cams").iterdir()) == labelled
    assert not (out / ".held_out_view").exists()
    after = {p: p.stat().st_mtime_ns for p in before}
    changed = {p.name for p in before if after[p] != before[p]}
    assert changed <= {"held_out.txt", "train_list.txt", "filter.json", "labels.jsonl", "manifest.json"}, changed


def test_all_refuses_to_label_without_a_teacher(tmp_path):
    from mos_studio.core.errors import MosError
    from training.rebuild import rebuild_all

    with pytest.raises(MosError, match="labelling needs the teacher"):
        rebuild_all(tmp_path, tmp_path / "d", (), (), teacher=False, label_workers=2)
    with pytest.raises(MosError, match="0 or more processes"):
        rebuild_all(tmp_path, tmp_path / "d", (), (), label_workers=-1)


def test_training_list_takes_every_eighth_clothing_photo_round_robin_and_skips_the_held_out(tmp_path):
    from training.rebuild import training_list

    pool = tmp_path / "pool"
    for source, n in (("ants", 3), ("clothing_cc0", 17), ("zebra", 1)):
        (pool / source).mkdir(parents=True)
        for i in range(n):
            (pool / source / f"{i:02d}.jpg").write_bytes(b"x")
    got = training_list(pool, held=["ants/01.jpg"])
    # clothing 00, 08, 16 of 17; ants without its held-out photo; one from each source in turn
    assert got == ["ants/00.jpg", "clothing_cc0/00.jpg", "zebra/00.jpg", "ants/02.jpg", "clothing_cc0/08.jpg",
                   "clothing_cc0/16.jpg"]


def test_all_labels_the_first_of_the_training_list_and_writes_l_copies(tmp_path):
    """`--label-train`: a GPU session on a new machine goes from fetched repositories to what a pack reads in one
    command (stop 40 typed the shrink and the composite links by hand)."""
    from test_teacher import _tiny_teacher  # noqa: I001

    from mos_studio.core.errors import MosError
    from training.rebuild import PoolSource, rebuild_all

    mirrors = tmp_path / "mirrors"
    names = [f"p{i}" for i in range(300)]
    held = {s: [n for n in names if held_out(s, f"{n}.jpg", 0.07)][:2] for s in ("cams", "clothing_cc0")}
    train = {s: [n for n in names if not held_out(s, f"{n}.jpg", 0.07)][:9] for s in ("cams", "clothing_cc0")}
    files = {f"{s}/{n}.jpg": _jpeg(640, 520) for s in held for n in held[s] + train[s]}
    commit = _repo(mirrors / "o+photos" / "repo", files)
    pool = (PoolSource("cams", "o/photos", commit, r"cams/[^/]*\.jpg", 11),
            PoolSource("clothing_cc0", "o/photos", commit, r"clothing_cc0/[^/]*\.jpg", 11))
    out = tmp_path / "data"
    teacher = _tiny_teacher(tmp_path / "t.onnx")
    with pytest.raises(MosError, match="needs --label-held-out"):
        rebuild_all(mirrors, out, pool, (), teacher_model=teacher, label_train=3)
    lines: list[str] = []
    s = rebuild_all(mirrors, out, pool, (), teacher_model=teacher, label_workers=2, label_train=3, log=lines.append)
    listed = (out / "train_list.txt").read_text().split()
    # 9 cams photos and clothing's every eighth of its 9 (the first and the ninth), cams first in each round
    assert len(listed) == s["train_list"] == 11 and listed[:3] == [f"cams/{train['cams'][0]}.jpg",
                                                                     f"clothing_cc0/{train['clothing_cc0'][0]}.jpg",
                                                                     f"cams/{train['cams'][1]}.jpg"]
    labelled = sorted(p.relative_to(out / "labels").as_posix() for p in (out / "labels").rglob("*.png"))
    expect = [f"{s}/{n}.png" for s in held for n in held[s]] + [x.replace(".jpg", ".png") for x in listed[:3]]
    assert labelled == sorted(expect)  # the held-out photos and the list's first three, nothing else
    assert s["split"]["train"] == 3 and s["split"]["val"] == 4
    assert [p.name for p in (out / "val_nc").iterdir()] == ["cams"] and s["val_nc"] == 2  # clothing left out
    # L's copies: shrunk to 512 px, every training photo a cut-out, the non-clothing ones backgrounds too
    small = sorted(p.relative_to(out / "small").as_posix() for p in (out / "small").rglob("*.jpg"))
    assert len(small) == 7 and all(max(Image.open(out / "small" / p).size) == 512 for p in small)
    assert sorted(p.name for p in (out / "matte" / "fg").iterdir()) == sorted(
        x.replace("/", "__") for x in listed[:3])
    assert sorted(p.stem for p in (out / "matte" / "alpha").iterdir()) == sorted(
        p.stem for p in (out / "matte" / "fg").iterdir())
    assert sorted(p.name for p in (out / "bg").iterdir()) == sorted(
        x.replace("/", "__") for x in listed[:3] if x.startswith("cams/"))
    # Two more: the labels resume, the split is replaced by a larger one, the links are remade whole.
    lines.clear()
    s2 = rebuild_all(mirrors, out, pool, (), teacher_model=teacher, label_workers=2, label_train=5, log=lines.append)
    assert s2["split"]["train"] == 5 and any("replaced the split of 7" in line for line in lines)
    assert len(list((out / "split" / "train").rglob("*.jpg"))) == 5
    assert len(list((out / "matte" / "fg").iterdir())) == 5 and not (out / ".split.partial").exists()
    s3 = rebuild_all(mirrors, out, pool, (), teacher_model=teacher, label_workers=2, label_train=5, log=lines.append)
    assert "split" not in s3 and s3["kept"] == 9
