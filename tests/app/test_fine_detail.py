"""Segment ▸ Fine detail: real cuts of a 1200 px photo with the shipped weights (offscreen), crops on and off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TIMEOUT = 120_000
CUP = Path(__file__).resolve().parents[2] / "resources" / "samples" / "sample.jpg"


@pytest.fixture
def large_cup(tmp_path) -> Path:
    """`make run`'s cup enlarged to 1200 × 800: larger than H's 1024 px pass, so its crops have work to do."""
    path = tmp_path / "cup_1200.png"
    Image.open(CUP).convert("RGB").resize((1200, 800), Image.LANCZOS).save(path)
    return path


def test_fine_detail_switch_runs_hs_crops_and_is_remembered(make_window, shipped_cascade, qtbot, app_settings,
                                                            large_cup):
    """On, a cut is the cascade's with local_passes on (H's card turns them off) and H's crops ran; off, the plain
    cut; the card's value is restored for the next job; a region re-refine takes the switch too; remembered."""
    win = make_window(lambda: shipped_cascade)
    assert not win.act_fine_detail.isChecked()  # off by default, as H's card says
    assert win.open_path(large_cup)
    masks = {}
    for on in (True, False):
        win.set_fine_detail(on)
        with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
            assert win.run_cut()
        masks[on] = win.doc.mask > 0
    assert not shipped_cascade.config.local_passes  # the last job ran with the card's value
    plain = shipped_cascade(win.doc.rgb)
    assert np.array_equal(masks[False], plain.mask) and plain.crops == []
    shipped_cascade.config.local_passes = True
    try:
        fine = shipped_cascade(win.doc.rgb)
    finally:
        shipped_cascade.config.local_passes = False
    assert len(fine.crops) >= 4 and (fine.mask != plain.mask).sum() > 1000
    assert np.array_equal(masks[True], fine.mask)
    win.act_fine_detail.trigger()  # on, as the menu item would
    assert win.act_fine_detail.isChecked() and app_settings.fine_detail()
    jobs = []
    win.controller.started.connect(jobs.append)
    with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
        assert win.run_refine((100, 100, 1100, 700))
    assert jobs and jobs[-1].kind == "refine" and jobs[-1].fine_detail is True
    segment = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Segment")
    assert win.act_fine_detail in segment.actions()
