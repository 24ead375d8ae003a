"""Shared test set-up. Qt must be told to run offscreen before anything imports it."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture
def crops_seen(monkeypatch) -> list[bool]:
    """Each Cascade call's `local_passes` setting, in call order: how a test sees which way a front end asked for
    H's crops without timing or mocking the cut itself."""
    from mos_studio.core.cascade import Cascade

    seen: list[bool] = []
    orig = Cascade.__call__

    def spy(self, *a, **k):
        seen.append(self.config.local_passes)
        return orig(self, *a, **k)

    monkeypatch.setattr(Cascade, "__call__", spy)
    return seen


@pytest.fixture
def cup_val_root(tmp_path):
    """A held-out root in eval_teacher.py's layout holding `make run`'s photo, its checked mask standing in for the
    teacher's (tests/data/refine_good/README.md)."""
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "val"
    (root / "cup" / "images").mkdir(parents=True)
    (root / "cup" / "masks").mkdir()
    shutil.copy(repo / "resources" / "samples" / "sample.jpg", root / "cup" / "images" / "sample.jpg")
    shutil.copy(repo / "tests" / "data" / "refine_good" / "sample_mask.png", root / "cup" / "masks" / "sample.png")
    return root
