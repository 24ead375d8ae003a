"""Segment ▸ Decide unsure edges by colour: a real cut of `make run`'s cup with the shipped weights (offscreen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TIMEOUT = 120_000
CUP = Path(__file__).resolve().parents[2] / "resources" / "samples" / "sample.jpg"


def test_colour_assist_switch_runs_the_colour_model_and_is_remembered(make_window, shipped_cascade, qtbot,
                                                                     app_settings):
    """On, the cut is the cascade's with l_colour_mix 0.5 (the shipped L's card leaves it off); off, the plain cut;
    the card's own value is left as it was; the choice is remembered."""
    win = make_window(lambda: shipped_cascade)
    assert not win.act_colour_assist.isChecked()  # off by default, as L's card says
    assert win.open_path(CUP)
    masks = {}
    for on in (True, False):
        win.set_colour_assist(on)
        with qtbot.waitSignal(win.result_applied, timeout=TIMEOUT):
            assert win.run_cut()
        masks[on] = win.doc.mask > 0
    assert shipped_cascade.config.l_colour_mix == 0.0  # the last job ran with the card's value
    plain = shipped_cascade(win.doc.rgb).mask > 0
    assert np.array_equal(masks[False], plain)
    shipped_cascade.config.l_colour_mix = 0.5
    try:
        assisted = shipped_cascade(win.doc.rgb).mask > 0
    finally:
        shipped_cascade.config.l_colour_mix = 0.0
    assert np.array_equal(masks[True], assisted) and (assisted != plain).sum() > 1000
    win.act_colour_assist.trigger()  # on, as the menu item would
    assert win.act_colour_assist.isChecked() and app_settings.colour_assist()
    segment = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Segment")
    assert win.act_colour_assist in segment.actions()
