"""`python -m training.lpred`: L's own answers for training photos, at each photo's size, resumable."""

from __future__ import annotations

import cv2
import numpy as np

from mos_studio.core.testing import write_tiny_models
from training.data import FolderSource, generate_pair
from training.lpred import main


def test_writes_ls_answers_that_a_folder_source_reads(tmp_path, capsys) -> None:
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, size in enumerate(((90, 60), (50, 70))):
        img, mask = generate_pair(k, 96)
        cv2.imwrite(str(root / "images" / f"p{k}.jpg"), cv2.resize(img, size)[..., ::-1])
        cv2.imwrite(str(root / "masks" / f"p{k}.png"), (cv2.resize(mask, size) * 255).astype(np.uint8))
    models = write_tiny_models(tmp_path / "models")
    out = tmp_path / "lpred"
    assert main([str(root), "--out", str(out), "--models-dir", str(models), "--encoder", "mobilenetv3"]) == 0
    assert "2 written, 0 kept" in capsys.readouterr().out
    for k, (w, h) in enumerate(((90, 60), (50, 70))):
        answer = cv2.imread(str(out / f"p{k}.png"), cv2.IMREAD_UNCHANGED)
        assert answer.shape == (h, w) and answer.dtype == np.uint8 and answer.std() > 0
    src = FolderSource(root, coarse_dir=out)
    assert src.load_coarse(0).shape == (60, 90)
    # A second run keeps what is there (an interrupted run resumes); a changed file is not overwritten.
    cv2.imwrite(str(out / "p0.png"), np.zeros((60, 90), np.uint8))
    assert main([str(root), "--out", str(out), "--models-dir", str(models), "--encoder", "mobilenetv3"]) == 0
    assert "0 written, 2 kept" in capsys.readouterr().out
    assert cv2.imread(str(out / "p0.png"), cv2.IMREAD_UNCHANGED).max() == 0
    # Several roots: one sub-folder each.
    assert main([str(root), str(root), "--out", str(tmp_path / "many"), "--models-dir", str(models),
                 "--encoder", "mobilenetv3"]) == 0
    assert (tmp_path / "many" / "set" / "p1.png").is_file()


def test_bad_folders_are_named(tmp_path, capsys) -> None:
    models = write_tiny_models(tmp_path / "models")
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--models-dir", str(models),
                 "--encoder", "mobilenetv3"]) == 2
    assert "nope/images: folder of training photos not found" in capsys.readouterr().err
    (tmp_path / "empty" / "images").mkdir(parents=True)
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--models-dir", str(models),
                 "--encoder", "mobilenetv3"]) == 2
    assert "no photos in it" in capsys.readouterr().err
