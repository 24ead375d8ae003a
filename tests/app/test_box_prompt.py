"""The box prompt (X) with the shipped weights (offscreen): H sees the box's surroundings, the cut stays in the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui
TIMEOUT = 120_000
CUP = Path(__file__).resolve().parents[2] / "resources" / "samples" / "sample.jpg"


def test_box_prompt_is_the_cascades_box_with_hs_card_context(make_window, shipped_cascade, qtbot):
    """A box drawn round `make_run`'s cup: the mask is the cascade's box prompt with H's card settings (box_context
    1.0: H refines the box grown by its long side, within the 600 px photo that is all of it), nothing outside the
    box is object, and the inspector lays H's maps over the rectangle H saw, L's over the box."""
    assert shipped_cascade.config.box_context == 1.0  # H's card
    win = make_window(lambda: shipped_cascade)
    assert win.open_path(CUP)
    box = (60, 10, 500, 395)
    with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
        win.canvas.box_drawn.emit(box)
    got = win.doc.mask > 0
    want = shipped_cascade(win.doc.rgb, box=box)
    assert want.region is None  # the box grown by 440 px on each side, clipped to the photo: all of it
    assert np.array_equal(got, want.mask) and got.sum() > 20_000
    outside = np.ones(got.shape, bool)
    outside[10:395, 60:500] = False
    assert not got[outside].any()
    assert win.doc.stages["L"].extent == box and win.doc.stages["H"].extent is None
    # H on the box alone (box_context 0) is another cut: the setting reached the app's job.
    shipped_cascade.config.box_context = 0.0
    try:
        alone = shipped_cascade(win.doc.rgb, box=box)
    finally:
        shipped_cascade.config.box_context = 1.0
    assert alone.region == box and (alone.mask != got).sum() > 500
    assert win.doc.undo_stack.undoText() == "Box prompt"
