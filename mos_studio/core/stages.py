"""The HierPR blocks' maps written out: a Figure-6-style sheet to look at and the float maps to compute with.

The paper shows, for each block of the recursive decoder (S8_0 … S2_3), where it was unsure and what it predicted;
researchers comparing runs want those maps as files, at each block's own resolution, not only on screen. The sheet
draws each map enlarged with nearest-neighbour sampling, so a block's real resolution stays visible; values are
absolute (0 black, 1 white) unless `stretch`, which rescales each map to its own range as the app's inspector can.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ExportError
from .io import _atomic_save, _check_target, write_atomic

NET_TITLES = {"L": "L (segmenter)", "H": "H (refiner)"}
KINDS = ("uncertainty", "prediction")
LABEL_W = 112  # px left of the tiles for the row names
TITLE_H = 26  # px above each network's rows
GAP = 4
# Uncertainty in the inspector's heat colours (black, purple, orange, pale yellow; mos_studio.app.imaging.HEAT_TABLE,
# kept equal by tests/test_stages.py), predictions in grey, as the app shows them.
HEAT_STOPS = ((0.0, (0, 0, 4)), (0.3, (87, 16, 110)), (0.6, (221, 81, 58)), (1.0, (252, 255, 164)))


def heat_lut() -> np.ndarray:
    """256 × 3 uint8: the heat colour of each 8-bit uncertainty value."""
    x = np.arange(256) / 255.0
    xs = [a for a, _ in HEAT_STOPS]
    return np.stack([np.rint(np.interp(x, xs, [c[i] for _, c in HEAT_STOPS])) for i in range(3)], 1).astype(np.uint8)


def _values(a: np.ndarray, stretch: bool) -> np.ndarray:
    a = np.nan_to_num(np.asarray(a, np.float32), nan=0.0)
    if stretch:
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float = 0.45, color=(235, 235, 235)) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def stage_montage(stages: Mapping[str, Sequence], tile_height: int = 160, stretch: bool = False) -> np.ndarray:
    """One RGB sheet: per network (L, then H), a row of uncertainty maps (heat colours) and a row of predictions
    (grey), one column per block, each map enlarged to `tile_height` px. `stages` maps "L"/"H" to lists of objects
    with `name`, `uncertainty` and `prediction` (core.cascade.StageMap, or the app's StageView)."""
    nets = [n for n in ("L", "H") if stages.get(n)] + [n for n in stages if n not in ("L", "H") and stages[n]]
    if not nets:
        raise ValueError("no stage maps: the cascade ran with stage_maps off, or nothing was segmented")
    if tile_height < 16:
        raise ValueError(f"tile_height must be at least 16 px, not {tile_height}")
    blocks = []
    for net in nets:
        maps = list(stages[net])
        h, w = max((np.asarray(m.prediction).shape for m in maps), key=lambda s: s[0] * s[1])
        tile_w = max(16, round(tile_height * w / h))
        blocks.append((net, maps, tile_w, (h, w)))
    cols = max(len(maps) for _, maps, _, _ in blocks)
    width = LABEL_W + cols * (max(tw for *_, tw, _ in blocks) + GAP)
    height = sum(TITLE_H + 2 * (tile_height + GAP) for _ in blocks) + GAP
    sheet = np.full((height, width, 3), 32, np.uint8)
    lut = heat_lut()
    y = 0
    for net, maps, tile_w, (h, w) in blocks:
        _text(sheet, f"{NET_TITLES.get(net, net)}: {len(maps)} blocks, finest map {w}x{h}, drawn as the network "
                     "saw its input" + (", each map stretched to its own range" if stretch else ""), 6, y + 18, 0.5)
        y += TITLE_H
        for row, kind in enumerate(KINDS):
            ty = y + row * (tile_height + GAP)
            _text(sheet, kind, 6, ty + tile_height // 2 + 5)
            for c, m in enumerate(maps):
                tx = LABEL_W + c * (tile_w + GAP)
                v = _values(getattr(m, kind), stretch)
                tile = cv2.resize(v, (tile_w, tile_height), interpolation=cv2.INTER_NEAREST)
                sheet[ty:ty + tile_height, tx:tx + tile_w] = lut[tile] if kind == "uncertainty" else tile[..., None]
                if row == 0:
                    mh, mw = v.shape
                    cv2.rectangle(sheet, (tx, ty), (tx + 92, ty + 16), (0, 0, 0), -1)
                    _text(sheet, f"{m.name} {mw}x{mh}", tx + 3, ty + 12, 0.38, (255, 220, 90))
        y += 2 * (tile_height + GAP)
    return sheet


def stage_arrays(stages: Mapping[str, Sequence]) -> dict[str, np.ndarray]:
    """The maps as float32 arrays named `NET/BLOCK/kind` (e.g. `H/S2_3/uncertainty`), at each block's resolution."""
    out = {}
    for net, maps in stages.items():
        for m in maps:
            for kind in KINDS:
                out[f"{net}/{m.name}/{kind}"] = np.asarray(getattr(m, kind), np.float32)
    return out


def save_stages(stages: Mapping[str, Sequence], sheet_path: str | Path, arrays_path: str | Path | None = None, *,
                regions: Mapping[str, tuple[int, int, int, int] | None] | None = None, stretch: bool = False,
                overwrite: bool = False, protect: Iterable[str | Path] = ()) -> list[Path]:
    """Write the sheet (PNG/JPEG/TIFF/WebP) and, if `arrays_path`, the float maps (.npz; `regions` adds
    `NET/region`, the rectangle x0 y0 x1 y1 of the photo a network's maps cover when a box or region ran). Each file
    is written whole or not at all; an existing file is replaced only with `overwrite`."""
    sheet_path = Path(sheet_path)
    if not any(stages.get(n) for n in stages):
        raise ExportError(f"{sheet_path}: no stage maps to write (the cascade ran without them)")
    targets = [sheet_path] + ([Path(arrays_path)] if arrays_path is not None else [])
    if arrays_path is not None and Path(arrays_path).suffix.lower() != ".npz":
        raise ExportError(f"{arrays_path}: the stage maps' arrays are written as .npz")
    for t in targets:  # refuse before writing anything
        _check_target(t, overwrite, protect)
    sheet = stage_montage(stages, stretch=stretch)
    written = [_atomic_save(Image.fromarray(sheet, "RGB"), sheet_path, overwrite, protect)]
    if arrays_path is not None:
        path = Path(arrays_path)
        arrays = stage_arrays(stages)
        for net, rect in (regions or {}).items():
            if rect is not None:
                arrays[f"{net}/region"] = np.asarray(rect, np.int64)
        write_atomic(path, lambda fp: np.savez_compressed(fp, **arrays))
        written.append(path)
    return written
