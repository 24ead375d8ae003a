"""core.stages: the HierPR maps as a sheet and as arrays (real StageMaps of a real cascade pass, and drawn maps)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from mos_studio.core.cascade import StageMap
from mos_studio.core.errors import ExportError
from mos_studio.core.stages import save_stages, stage_arrays, stage_montage


def maps(h: int = 40, w: int = 60) -> dict[str, list[StageMap]]:
    yy, xx = np.mgrid[0:h, 0:w]
    disc = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 3) ** 2).astype(np.float32)
    out = {}
    for net in ("L", "H"):
        blocks = []
        for name, div in (("S8_0", 4), ("S4_2", 2), ("S2_3", 1)):
            p = disc[::div, ::div] * 0.5 + 0.25  # a faint map: 0.25 to 0.75
            blocks.append(StageMap(name, (1 - np.abs(2 * p - 1)).astype(np.float32), p.astype(np.float32)))
        out[net] = blocks
    return out


def test_the_sheet_has_a_tile_per_block_at_its_own_resolution():
    m = maps()
    sheet = stage_montage(m, tile_height=64)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    # 2 networks × (title + 2 rows of 64 px); 3 columns of tiles 96 px wide (the finest map's 60:40 shape)
    assert sheet.shape[0] == 2 * (26 + 2 * (64 + 4)) + 4
    top = 26 + 64 + 4  # L's prediction row
    tile = sheet[top:top + 64, 112:112 + 96, 0]  # its S8_0 map, 10 × 15 values
    assert set(np.unique(tile)) == {64, 191}  # enlarged nearest-neighbour: the block's two values, nothing between
    stretched = stage_montage(m, tile_height=64, stretch=True)[top:top + 64, 112:112 + 96, 0]
    assert set(np.unique(stretched)) == {0, 255}  # the faint map rescaled to its own range


def test_uncertainty_is_drawn_in_the_inspectors_heat_colours():
    from PySide6.QtGui import QColor

    from mos_studio.app.imaging import HEAT_TABLE
    from mos_studio.core.stages import heat_lut

    table = np.array([QColor.fromRgba(c).getRgb()[:3] for c in HEAT_TABLE], np.int16)
    assert np.abs(heat_lut().astype(np.int16) - table).max() <= 1  # the same ramp as the app's panel
    m = maps()
    sheet = stage_montage(m, tile_height=64)
    tile = sheet[26 + 20:26 + 64, 112:112 + 96]  # L's S8_0 uncertainty, below its label: 0.5 everywhere
    assert np.array_equal(np.unique(tile.reshape(-1, 3), axis=0), heat_lut()[[128]])


def test_arrays_keep_every_map_exactly():
    m = maps()
    arrays = stage_arrays(m)
    assert len(arrays) == 2 * 3 * 2
    assert np.array_equal(arrays["H/S4_2/prediction"], m["H"][1].prediction)
    assert arrays["L/S8_0/uncertainty"].shape == (10, 15)


def test_save_writes_both_files_whole_and_refuses_before_writing_anything(tmp_path):
    m = maps()
    sheet, arrays = tmp_path / "s.png", tmp_path / "s.npz"
    written = save_stages(m, sheet, arrays, regions={"H": (1, 2, 30, 40), "L": None})
    assert written == [sheet, arrays]
    assert Image.open(sheet).mode == "RGB"
    got = np.load(arrays)
    assert got["H/region"].tolist() == [1, 2, 30, 40] and "L/region" not in got
    assert stat.S_IMODE(os.stat(arrays).st_mode) & 0o044  # the user's usual permissions, not mkstemp's 0600
    sheet.unlink()
    with pytest.raises(ExportError, match="s.npz: exists"):
        save_stages(m, sheet, arrays)
    assert not sheet.exists()  # nothing half done
    save_stages(m, sheet, arrays, overwrite=True)
    with pytest.raises(ExportError, match=".npz"):
        save_stages(m, tmp_path / "t.png", tmp_path / "t.txt")
    with pytest.raises(ExportError, match="input image"):
        save_stages(m, tmp_path / "photo.png", protect=[tmp_path / "photo.png"])
    with pytest.raises(ExportError, match="no stage maps"):
        save_stages({"L": [], "H": []}, tmp_path / "u.png")
    with pytest.raises(ValueError, match="tile_height"):
        stage_montage(m, tile_height=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "s.png"]  # no temporary files left
