"""Fixtures shared by the training tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


def _disc_source(root: Path, n: int, seed: int) -> Path:
    """n photo/mask pairs of 90×120 under root/images and root/masks: a bright disc on noise, the mask the disc."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = rng.integers(0, 120, (90, 120, 3), dtype=np.uint8)
        mask = np.zeros((90, 120), np.uint8)
        cv2.circle(mask, (40 + 10 * i, 45), 20, 255, -1)
        img[mask > 0] = (230, 200, 60)
        cv2.imwrite(str(root / "images" / f"p{i}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"p{i}.png"), mask)
    return root


@pytest.fixture
def disc_source() -> Callable[[Path, int, int], Path]:
    return _disc_source
