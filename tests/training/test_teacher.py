"""The data engine without network or the real teacher: chunk assembly, labelling with a tiny ONNX model the test
builds itself, the filter rule, the contact sheet and the stable held-out split."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mos_studio.core.errors import MosError
from training import pool, teacher

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


# ------------------------------------------------------------------------------------------------------ the package
def _fake_package(root: Path, blob: bytes, chunk: int = 1000) -> Path:
    """An unpacked package in the npm layout: dist/resources.json + sha256-named chunks of `blob`."""
    dist = root / "package" / "dist"
    dist.mkdir(parents=True)
    chunks = []
    for start in range(0, len(blob), chunk):
        data = blob[start: start + chunk]
        name = hashlib.sha256(data).hexdigest()
        (dist / name).write_bytes(data)
        chunks.append({"hash": name, "offsets": [start, start + len(data)]})
    chunks.reverse()  # the assembler must order by offset, not by list order
    (dist / "resources.json").write_text(json.dumps({"/models/medium": {"chunks": chunks, "size": len(blob)}}))
    return root / "package"


def test_assemble_good_chunks(tmp_path: Path) -> None:
    blob = np.random.default_rng(0).integers(0, 256, 4321, dtype=np.uint8).tobytes()
    pkg = _fake_package(tmp_path / "pkg", blob)
    rec = teacher.assemble(pkg, "medium", tmp_path / "out" / "m.onnx")
    assert (tmp_path / "out" / "m.onnx").read_bytes() == blob
    assert rec["sha256"] == hashlib.sha256(blob).hexdigest() and rec["chunks"] == 5 and rec["bytes"] == 4321
    assert "AGPL-3.0" in rec["licences"]["package"] and "MIT" in rec["licences"]["model"]


def test_fetch_from_tarball_writes_record(tmp_path: Path) -> None:
    blob = b"x" * 2500
    pkg = _fake_package(tmp_path / "pkg", blob)
    tgz = tmp_path / "data.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(pkg, arcname="package")
    path = teacher.fetch(tmp_path / "teacher", tgz, "medium")
    assert path.read_bytes() == blob
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == hashlib.sha256(blob).hexdigest()
    assert not list((tmp_path / "teacher").glob("tmp*")), "the unpacked package is not left behind"


def test_missing_chunk_is_a_clear_error(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path / "pkg", b"y" * 3000)
    res = json.loads((pkg / "dist" / "resources.json").read_text())
    victim = res["/models/medium"]["chunks"][1]["hash"]
    (pkg / "dist" / victim).unlink()
    with pytest.raises(MosError, match=f"{victim}.*missing"):
        teacher.assemble(pkg, "medium", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.part").exists()


def test_corrupt_chunk_is_a_clear_error(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path / "pkg", bytes(range(256)) * 10)
    name = json.loads((pkg / "dist" / "resources.json").read_text())["/models/medium"]["chunks"][0]["hash"]
    data = bytearray((pkg / "dist" / name).read_bytes())
    data[7] ^= 0xFF
    (pkg / "dist" / name).write_bytes(bytes(data))
    with pytest.raises(MosError, match="corrupt"):
        teacher.assemble(pkg, "medium", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_fetch_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert teacher.main(["fetch", "--out", str(tmp_path / "t"), "--package", str(tmp_path / "nope.tgz")]) == 2
    assert "nope.tgz" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------- labelling
def _tiny_teacher(path: Path, name: str = "tiny") -> Path:
    """input [1,3,1024,1024] → output [1,1,1024,1024] = mean over channels (brightness): IS-Net's signature."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 1024, 1024])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 1024, 1024])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceMean", ["input", "axes"], ["output"], keepdims=1)
    graph = helper.make_graph([node], name, [inp], [out], initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _photo(path: Path, w: int, h: int, box: tuple[int, int, int, int]) -> None:
    a = np.full((h, w, 3), 20, np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = 230
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_label_writes_soft_masks_at_photo_size_and_resumes(tmp_path: Path) -> None:
    model = _tiny_teacher(tmp_path / "tiny.onnx")
    photos = tmp_path / "pool"
    _photo(photos / "a" / "one.jpg", 300, 200, (100, 50, 200, 150))
    _photo(photos / "b" / "two.png", 160, 240, (20, 20, 80, 200))
    (photos / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "labels"
    s = teacher.label(photos, model, out, threads=1, progress=False)
    assert s["labelled_now"] == 2 and s["failed_now"] == 1
    m = np.array(Image.open(out / "a" / "one.png"))
    assert m.shape == (200, 300) and m.dtype == np.uint8
    assert m[100, 150] > 240 and m[10, 10] < 15  # object bright, background dark (min–max normalised)
    assert np.array(Image.open(out / "b" / "two.png")).shape == (240, 160)
    man = json.loads((out / "manifest.json").read_text())
    assert man["teacher_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert man["input_size"] == 1024 and man["threads"] == 1 and man["seconds_per_photo_now"] > 0
    log = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert any("broken.jpg" in r.get("photo", "") and "error" in r for r in log)
    # Resumable: a second run labels only what is new.
    before = (out / "a" / "one.png").stat().st_mtime_ns
    _photo(photos / "a" / "three.jpg", 100, 100, (10, 10, 50, 50))
    s2 = teacher.label(photos, model, out, threads=1, progress=False)
    assert s2["labelled_now"] == 1 and s2["skipped_already_done"] == 2 and s2["labelled_total"] == 3
    assert (out / "a" / "one.png").stat().st_mtime_ns == before


def test_label_refuses_a_folder_labelled_by_another_teacher(tmp_path: Path) -> None:
    photos = tmp_path / "p"
    _photo(photos / "x.jpg", 64, 64, (8, 8, 40, 40))
    out = tmp_path / "labels"
    teacher.label(photos, _tiny_teacher(tmp_path / "t1.onnx"), out, progress=False)
    other = _tiny_teacher(tmp_path / "t2.onnx", "another")  # same function, different file (sha256)
    _photo(photos / "y.jpg", 64, 64, (8, 8, 40, 40))
    with pytest.raises(MosError, match="another teacher"):
        teacher.label(photos, other, out, progress=False)


def test_label_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "p").mkdir()
    rc = teacher.main(["label", str(tmp_path / "p"), "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path)])
    assert rc == 2 and "none.onnx" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    _photo(tmp_path / "p" / "x.jpg", 32, 32, (0, 0, 8, 8))
    rc = teacher.main(["label", str(tmp_path / "p"), "--model", str(bad), "--out", str(tmp_path / "l")])
    assert rc == 2 and "bad.onnx" in capsys.readouterr().err


def test_interleave_round_robins_sources(tmp_path: Path) -> None:
    files = [tmp_path / s / f"{i}.jpg" for s in ("a", "b") for i in range(3)] + [tmp_path / "c" / "0.jpg"]
    order = teacher.interleave_sources(files, tmp_path)
    assert [p.parent.name for p in order[:3]] == ["a", "b", "c"] and len(order) == 7


# ---------------------------------------------------------------------------------------------------- the filter
def _disk(h: int = 400, w: int = 600, r: int = 120) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (w // 2, h // 2), r, 255, -1)
    return cv2.GaussianBlur(m, (3, 3), 0)


def test_filter_keeps_a_crisp_object_and_thin_strands() -> None:
    assert pool.judge(pool.mask_stats(_disk())) is None
    strands = _disk()
    for k in range(12):  # a crisp body with 12 thin 2-px antennae: a long edge, little grey, must stay
        a = k * np.pi / 6
        cv2.line(strands, (300, 200), (int(300 + 190 * np.cos(a)), int(200 + 190 * np.sin(a))), 255, 2)
    assert pool.judge(pool.mask_stats(strands)) is None


@pytest.mark.parametrize(
    ("mask", "reason"),
    [
        (np.zeros((300, 300), np.uint8), "empty"),
        (np.full((300, 300), 250, np.uint8), "full"),
        (cv2.GaussianBlur(_disk(), (0, 0), 25), "unsure"),  # the teacher hedged: a wide grey rim
        # 64 separate blobs over the photo
        (np.kron(np.full((8, 8), 255, np.uint8), np.pad(np.ones((20, 20), np.uint8), 10)), "fragmented"),
    ],
)
def test_filter_drops_what_the_teacher_got_wrong(mask: np.ndarray, reason: str) -> None:
    assert pool.judge(pool.mask_stats(mask)) == reason


def test_filter_drops_scenes_touching_the_border() -> None:
    m = np.zeros((300, 400), np.uint8)
    m[120:] = 255  # ground covering the bottom half and both sides
    m[:, :60] = 255
    assert pool.judge(pool.mask_stats(m)) == "scene"


def _labelled_pool(tmp_path: Path) -> tuple[Path, Path]:
    photos, labels = tmp_path / "pool", tmp_path / "labels"
    for src in ("animals", "tools"):
        for i in range(12):
            _photo(photos / src / f"p{i:02d}.jpg", 96, 64, (20, 10, 70, 50))
            m = _disk(64, 96, 20) if i % 4 else np.zeros((64, 96), np.uint8)
            (labels / src).mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(labels / src / f"p{i:02d}.png")  # every 4th: the teacher found nothing
    return photos, labels


def test_filter_counts_per_source_and_sheet(tmp_path: Path) -> None:
    photos, labels = _labelled_pool(tmp_path)
    _photo(photos / "tools" / "unlabelled.jpg", 96, 64, (0, 0, 10, 10))
    rec = pool.run_filter(photos, labels, tmp_path / "filter.json")
    assert rec["per_source"]["animals"] == {"kept": 9, "dropped": 3, "reasons": {"empty": 3}}
    assert rec["kept"] == 18 and rec["dropped"] == 6 and "tools/unlabelled.jpg" not in rec["photos"]
    assert json.loads((tmp_path / "filter.json").read_text())["rule"]["max_band"] == pool.Rule().max_band
    info = pool.contact_sheet(photos, labels, tmp_path / "filter.json", tmp_path / "sheet.png", n_kept=8,
                              n_dropped=4, side=48, columns=4)
    assert info["kept_shown"] == 8 and info["dropped_shown"] == 4
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and (sheet.shape[1], sheet.shape[0]) == tuple(info["size"])


# ----------------------------------------------------------------------------------------------------- the split
def test_split_is_stable_as_the_pool_grows(tmp_path: Path) -> None:
    photos, labels = _labelled_pool(tmp_path)
    pool.run_filter(photos, labels, tmp_path / "f1.json")
    a = pool.make_split(photos, labels, tmp_path / "f1.json", tmp_path / "s1", val_fraction=0.3)
    assert a["n_train"] + a["n_val"] == 18 and a["n_val"] > 0 and a["n_train"] > 0
    for side in ("train", "val"):
        for src, rels in a[side].items():
            for rel in rels:
                stem = Path(rel).stem
                assert (tmp_path / "s1" / side / src / "images" / f"{stem}.jpg").resolve() == (photos / rel).resolve()
                assert (tmp_path / "s1" / side / src / "masks" / f"{stem}.png").is_file()
    with pytest.raises(MosError, match="already exists"):
        pool.make_split(photos, labels, tmp_path / "f1.json", tmp_path / "s1")
    # More photos later: every earlier photo keeps its side.
    for i in range(12, 30):
        _photo(photos / "animals" / f"p{i:02d}.jpg", 96, 64, (20, 10, 70, 50))
        Image.fromarray(_disk(64, 96, 20)).save(labels / "animals" / f"p{i:02d}.png")
    pool.run_filter(photos, labels, tmp_path / "f2.json")
    b = pool.make_split(photos, labels, tmp_path / "f2.json", tmp_path / "s2", val_fraction=0.3)
    side_a = {r: s for s in ("train", "val") for rels in a[s].values() for r in rels}
    side_b = {r: s for s in ("train", "val") for rels in b[s].values() for r in rels}
    assert all(side_b[r] == s for r, s in side_a.items())


def test_pool_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos, labels = _labelled_pool(tmp_path)
    assert pool.main(["filter", str(photos), str(labels), "--out", str(tmp_path / "f.json")]) == 0
    assert "kept" in capsys.readouterr().out
    assert pool.main(["split", str(photos), str(labels), str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_held_out_photos_are_labelled_first(tmp_path: Path) -> None:
    photos = tmp_path / "pool"
    for src in ("a", "b"):
        for i in range(20):
            _photo(photos / src / f"{i:02d}.jpg", 32, 32, (4, 4, 20, 20))
    first = pool.held_out_photos(photos, 0.2)
    assert 0 < len(first) < 40
    assert all(pool.held_out(Path(r).parts[0], Path(r).name, 0.2) for r in first)
    out = tmp_path / "labels"
    teacher.label(photos, _tiny_teacher(tmp_path / "t.onnx"), out, limit=len(first), progress=False, first=first)
    done = sorted(p.relative_to(out).with_suffix(".jpg").as_posix() for p in out.rglob("*.png"))
    assert done == sorted(first)


def test_two_first_lists_are_labelled_one_after_the_other(tmp_path: Path) -> None:
    """The held-out list, then a training list: every held-out photo is done before any of the second list."""
    photos, out, model = tmp_path / "pool", tmp_path / "labels", _tiny_teacher(tmp_path / "t.onnx")
    for src in ("a", "b"):
        for i in range(6):
            _photo(photos / src / f"{i:02d}.jpg", 32, 32, (4, 4, 20, 20))
    held, train = ["b/05.jpg", "a/04.jpg"], ["a/00.jpg", "b/01.jpg", "a/02.jpg"]
    (tmp_path / "held.txt").write_text("\n".join(held) + "\n")
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    args = ["label", str(photos), "--model", str(model), "--out", str(out), "--limit", "4",
            "--first", str(tmp_path / "held.txt"), "--first", str(tmp_path / "train.txt")]
    assert teacher.main(args) == 0
    order = [json.loads(line)["photo"] + ".jpg" for line in (out / "labels.jsonl").read_text().splitlines()]
    assert sorted(order[:2]) == sorted(held)
    assert set(order[2:]) <= set(train) and len(order) == 4


def test_two_shards_share_one_pool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos, out, model = tmp_path / "pool", tmp_path / "labels", _tiny_teacher(tmp_path / "t.onnx")
    for i in range(5):
        _photo(photos / f"{i}.jpg", 32, 32, (4, 4, 20, 20))
    a = teacher.label(photos, model, out, progress=False, shard=(0, 2))
    b = teacher.label(photos, model, out, progress=False, shard=(1, 2))
    assert (a["labelled_now"], b["labelled_now"]) == (3, 2) and b["labelled_total"] == 5
    assert len(list(out.glob("*.png"))) == 5
    assert teacher.main(["label", str(photos), "--model", str(model), "--out", str(out), "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------- the shrink
def test_shrink_copies_a_split_side_small_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    side = tmp_path / "split" / "train"
    for src, (w, h) in (("big", (1200, 800)), ("small", (300, 200))):
        _photo(side / src / "images" / "a.jpg", w, h, (w // 4, h // 4, w // 2, h // 2))
        m = np.zeros((h, w), np.uint8)
        m[h // 4: h // 2, w // 4: w // 2] = 255
        (side / src / "masks").mkdir(parents=True)
        Image.fromarray(m).save(side / src / "masks" / "a.png")
    out = tmp_path / "small"
    assert pool.main(["shrink", str(side), "--out", str(out), "--max-side", "400"]) == 0
    assert "2 photos" in capsys.readouterr().out
    img, mask = cv2.imread(str(out / "big/images/a.jpg")), cv2.imread(str(out / "big/masks/a.png"), 0)
    assert img.shape[:2] == mask.shape == (267, 400)
    assert abs(int(mask[100, 150]) - 255) <= 1 and mask[10, 10] == 0  # the mask follows the photo
    assert cv2.imread(str(out / "small/images/a.jpg")).shape[:2] == (200, 300)  # small photos keep their size
    # --min-side leaves small photos out; an existing output is kept, not rewritten.
    big = pool.shrink(side, tmp_path / "big", max_side=2000, min_side=1000)
    assert big == {"big": 1} and not (tmp_path / "big" / "small").exists()
    before = (out / "big/images/a.jpg").stat().st_mtime_ns
    assert pool.shrink(side, out, max_side=400) == {"big": 1, "small": 1}
    assert (out / "big/images/a.jpg").stat().st_mtime_ns == before
    # A photo without its mask is an error naming the photo.
    _photo(side / "big" / "images" / "b.jpg", 64, 64, (0, 0, 8, 8))
    assert pool.main(["shrink", str(side), "--out", str(out)]) == 2
    assert "b.jpg" in capsys.readouterr().err
