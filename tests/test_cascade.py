"""The L/H cascade with tiny random models: full-size output, ROI, box, user mask, progress, cancel, device."""

import threading

import cv2
import numpy as np
import pytest

from mos_studio.core.cascade import Cascade, CascadeConfig, crop_starts
from mos_studio.core.errors import Cancelled, MaskError, MosError
from mos_studio.core.testing import tiny_models


@pytest.fixture(scope="module")
def cascade():
    low, high = tiny_models(0)
    return Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384))


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((h // 8 + 1, w // 8 + 1, 3)) * 255).astype(np.uint8)
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def test_full_size_mask_on_3000x2000(cascade):
    img = _image(2000, 3000)
    events = []
    res = cascade(img, progress=lambda s, f: events.append((s, f)))
    assert res.mask.shape == (2000, 3000) and res.mask.dtype == bool
    assert res.probability.shape == (2000, 3000) and res.probability.dtype == np.float32
    assert np.isfinite(res.probability).all()
    assert 0.0 <= res.probability.min() and res.probability.max() <= 1.0
    assert set(res.stages) == {"L", "H"}
    assert [s.name for s in res.stages["H"]] == ["S8_0", "S8_1", "S8_2", "S4_2", "S8_3", "S4_3", "S2_3"]
    # The H global pass ran at a bounded size: its final stage map is at most global_size on the long side.
    assert max(res.stages["H"][-1].prediction.shape) == 512
    assert res.timings["H crops"] >= 1
    stages_seen = [s for s, _ in events]
    assert stages_seen[0] == "L" and "H global" in stages_seen and "H local" in stages_seen
    assert stages_seen[-1] == "done"
    assert res.device.startswith("CPU")


def test_mask_skips_l_and_roi_limits_changes(cascade):
    img = _image(600, 800, 1)
    user = np.zeros((600, 800), bool)
    user[150:450, 200:600] = True
    res = cascade(img, mask=user, roi=(100, 100, 500, 400))
    assert "L" not in res.stages
    outside = np.ones_like(user)
    outside[100:400, 100:500] = False
    assert np.array_equal(res.mask[outside], user[outside])
    assert np.array_equal(res.probability[outside], user[outside].astype(np.float32))


def test_region_re_refine_runs_h_at_most_at_region_size():
    """The app's region re-refine runs H's pass at most at `region_size` (a whole cut still uses `global_size`)."""
    low, high = tiny_models(0)
    img = _image(600, 800, 1)
    user = np.zeros((600, 800), bool)
    user[150:450, 200:600] = True
    roi = (100, 100, 500, 400)  # 400 × 300
    for region_size, side in ((200, 200), (None, 400), (1000, 400)):
        c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, region_size=region_size))
        res = c(img, mask=user, roi=roi)
        assert max(res.stages["H"][-1].prediction.shape) == side
        assert res.mask.shape == (600, 800) and np.array_equal(res.mask[:100], user[:100])
        assert max(c(img).stages["H"][-1].prediction.shape) == 512  # a whole cut: global_size


def _cut_with_fixed_l(left: float, right: float, **config) -> np.ndarray:
    """A cut by random tiny weights whose L answer is fixed so a test knows it: `left` on the left half, `right` on
    the right half."""
    low, high = tiny_models(0)
    coarse = np.full((300, 400), left, np.float32)
    coarse[:, 200:] = right
    c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=256, local_passes=False, **config))
    c.run_low = lambda rgb: (coarse, [])  # what the cut's L step returns
    return c(_image(300, 400, 3)).probability


def test_add_floor_keeps_h_from_adding_object_where_l_saw_background():
    # sure background on the left, some object (0.3) on the right
    free, capped = _cut_with_fixed_l(0.0, 0.3), _cut_with_fixed_l(0.0, 0.3, add_floor=0.05)
    assert free[:, :190].max() > 0.1  # the (random) H does add object where L saw none...
    assert capped[:, :200].max() == 0.0  # ...and the cap takes it away
    assert np.array_equal(capped[:, 210:], free[:, 210:])  # where L saw some object, H is untouched


def test_keep_floor_keeps_h_from_removing_object_where_l_was_sure_of_it():
    # sure object on the left, some object (0.7) on the right
    free, kept = _cut_with_fixed_l(1.0, 0.7), _cut_with_fixed_l(1.0, 0.7, keep_floor=0.05)
    assert free[:, :190].min() < 0.9  # the (random) H does remove object where L was sure of it...
    assert kept[:, :200].min() == 1.0  # ...and the floor puts it back
    assert np.array_equal(kept[:, 210:], free[:, 210:])  # where L was unsure, H is untouched


def test_box_limits_object_to_box(cascade):
    img = _image(400, 500, 2)
    res = cascade(img, box=(100, 50, 300, 250))
    outside = np.ones((400, 500), bool)
    outside[50:250, 100:300] = False
    assert not res.mask[outside].any()


def test_box_prompt_looks_past_the_box_and_keeps_nothing_outside_it():
    """box_whole_mix hands H L's look at the box mixed with its look at the whole photo (weighted by the share of
    that look's object inside the box); box_context runs H on the
    box grown by that share (its maps and `Result.region` cover the grown box); nothing outside the box is object
    either way, and a rough refine's box is left as it was."""
    low, high = tiny_models(0)
    img = _image(400, 600, 7)
    box = (200, 100, 400, 300)
    x0, y0, x1, y1 = box
    cfg = CascadeConfig(global_size=512, crop_size=384, box_whole_mix=0.3, box_context=0.25)
    c = Cascade(low, high, device="cpu", config=cfg)
    seen: list[tuple[tuple[int, int], np.ndarray]] = []
    real_refine = c._refine
    c._refine = lambda rgb, coarse, *a, **k: (seen.append((rgb.shape[:2], coarse.copy())),
                                              real_refine(rgb, coarse, *a, **k))[1]
    res = c(img, box=box)
    del c._refine
    whole, crop = c.run_low(img)[0], c.run_low(img[y0:y1, x0:x1])[0]
    grown = (150, 50, 450, 350)  # 0.25 of the box's 200 px long side on each side
    assert res.region == grown
    (shape, coarse), = seen
    assert shape == (300, 300)
    # The whole photo's look counts box_whole_mix times the share of its object inside the box.
    share = float(whole[y0:y1, x0:x1].sum(dtype=np.float64) / whole.sum(dtype=np.float64))
    assert 0.05 < share < 0.95
    k = np.float32(0.3 * share)
    want = np.zeros((300, 300), np.float32)
    want[50:250, 50:250] = (1 - k) * crop + k * whole[y0:y1, x0:x1]
    np.testing.assert_allclose(coarse, want, atol=1e-5)
    outside = np.ones((400, 600), bool)
    outside[y0:y1, x0:x1] = False
    assert not res.probability[outside].any() and res.probability[~outside].any()
    assert res.stages["H"][-1].prediction.shape == (300, 300)
    # Grown past the photo's edge it is clipped; off (the default) H sees the box alone.
    assert c(img, box=(0, 0, 200, 200)).region == (0, 0, 250, 250)
    assert Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384))(
        img, box=box).region == box
    # A rough refine's box is the stop-46 path, untouched by both settings.
    given = np.zeros((400, 600), np.float32)
    given[120:280, 220:380] = 1.0
    rough = dict(global_size=512, crop_size=384, refine_rough=True)
    with_box = Cascade(low, high, device="cpu", config=CascadeConfig(**rough, box_whole_mix=0.3, box_context=0.25))
    without = Cascade(low, high, device="cpu", config=CascadeConfig(**rough))
    a, b = with_box(img, mask=given), without(img, mask=given)
    assert a.region == b.region and np.array_equal(a.probability, b.probability)


def test_box_l_context_lets_l_see_past_a_tight_box():
    """box_l_context: L looks at the box grown by that share of its long side (clipped to the photo) and its answer
    inside the box is what H is handed; 0 (the default) is L's look at the box alone."""
    low, high = tiny_models(0)
    img = _image(400, 600, 7)
    box = (200, 100, 400, 300)
    c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384, box_l_context=0.1))
    sub, maps = c.look_at_box(img, box)
    assert sub.shape == (200, 200)
    _, whole_maps = c.run_low(img[80:320, 180:420])  # L's maps cut to the box (240 px seen, 200 kept)
    assert maps and all(m.prediction.shape == (round(w.prediction.shape[0] * 200 / 240),) * 2
                        for m, w in zip(maps, whole_maps, strict=True))
    np.testing.assert_allclose(sub, c.run_low(img[80:320, 180:420])[0][20:220, 20:220], atol=1e-6)
    corner, _ = c.look_at_box(img, (0, 0, 100, 100))  # clipped at the photo's corner
    np.testing.assert_allclose(corner, c.run_low(img[0:110, 0:110])[0][:100, :100], atol=1e-6)
    c.config.box_l_context = 0.0
    np.testing.assert_allclose(c.look_at_box(img, box)[0], c.run_low(img[100:300, 200:400])[0], atol=1e-6)
    seen: list[np.ndarray] = []
    real_refine = c._refine
    c.config.box_l_context = 0.1
    c._refine = lambda rgb, coarse, *a, **k: (seen.append(coarse.copy()), real_refine(rgb, coarse, *a, **k))[1]
    c(img, box=box)
    np.testing.assert_allclose(seen[0], sub, atol=1e-6)  # without box_context H is handed the box alone


def test_cancel_between_crops(cascade):
    img = _image(1200, 1600, 3)
    stop = threading.Event()

    def progress(stage, frac):
        if stage == "H local":
            stop.set()

    with pytest.raises(Cancelled):
        cascade(img, progress=progress, cancel=stop)
    with pytest.raises(Cancelled):
        cascade(img, cancel=lambda: True)


def test_bad_mask_and_rects(cascade):
    img = _image(100, 120)
    with pytest.raises(MaskError, match="120×100"):
        cascade(img, mask=np.zeros((90, 120), bool))
    with pytest.raises(MosError, match="smaller than 8×8"):
        cascade(img, roi=(10, 10, 12, 12))
    with pytest.raises(MosError, match="RGB"):
        cascade(np.zeros((10, 10), np.uint8))


def test_local_pass_blend_has_no_seams():
    """A constant image and constant mask: every crop predicts the same, so the blend must be exactly flat."""
    low, high = tiny_models(0)
    c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=128, crop_size=96, crop_overlap=32,
                                                               min_uncertain_fraction=0.0, uncertain_band=(0, 1),
                                                               refine_local_passes=True, refine_confidence=None,
                                                               refine_band=None))  # the raw blend, unguarded
    img = np.full((300, 400, 3), 128, np.uint8)
    res = c(img, mask=np.full((300, 400), 0.5, np.float32))
    p = res.probability[40:-40, 40:-40]  # away from padding effects at the image border
    assert res.timings["H crops"] > 4
    assert float(np.abs(np.diff(p, axis=1)).max()) < 0.05
    assert float(np.abs(np.diff(p, axis=0)).max()) < 0.05


def test_crop_starts_cover_everything():
    for length in (100, 512, 513, 1999):
        starts = crop_starts(length, 256, 200)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + 256] = True
        assert covered.all() and max(starts) + min(256, length) == length


def test_l_flip_averages_the_mirrored_pass():
    """With l_flip, L's probability is the mean of the plain pass and the un-mirrored pass on the mirror image."""
    low, high = tiny_models(0)
    img = np.random.default_rng(3).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    plain = Cascade(low, high, device="cpu", config=CascadeConfig(l_size=64))
    both = Cascade(low, high, device="cpu", config=CascadeConfig(l_size=64, l_flip=True))
    p0 = plain.run_low(img)[0]
    p_mirror = plain.run_low(np.ascontiguousarray(img[:, ::-1]))[0][:, ::-1]
    np.testing.assert_allclose(both.run_low(img)[0], 0.5 * (p0 + p_mirror), atol=1e-5)
    assert not np.allclose(p0, p_mirror, atol=1e-4)  # the tiny model is not mirror-symmetric: the test means something


def test_cut_band_keeps_l_far_from_its_edge():
    """cut_band: H may move L's answer only near L's edge; far from it the cut is L's, at the edge it is H's."""
    import cv2

    low, high = tiny_models(5)
    img = (np.random.default_rng(3).random((120, 160, 3)) * 255).astype(np.uint8)
    disk = np.zeros((120, 160), np.float32)
    cv2.circle(disk, (80, 60), 35, 1.0, -1)
    cuts = []
    for band in (None, 0.05):
        c = Cascade(low, high, device="cpu", config=CascadeConfig(local_passes=False, cut_band=band))
        c.run_low = lambda image: (disk.copy(), [])  # an L with a known edge; H is the real (tiny) network
        cuts.append(c(img).probability)
    free, banded = cuts
    binary = disk.astype(np.uint8)
    dist = np.where(binary > 0, cv2.distanceTransform(binary, cv2.DIST_L2, 3),
                    cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3))
    far, near = dist > 8, dist <= 2  # band = 5 % of 160 px = 8 px
    assert not np.allclose(free[far], disk[far], atol=1e-3)  # H alone does change pixels far from the edge
    assert np.allclose(banded[far], disk[far], atol=1e-5)
    assert np.allclose(banded[near], free[near], atol=1e-5)


def test_refine_keeps_the_users_edge_where_h_only_moves_it_by_its_own_resolution():
    """refine_min_change: a change thinner than H's global pixels is left as the user drew it, a thick one is H's."""
    from mos_studio.core.cascade import keep_thin_changes

    given = np.zeros((400, 800), np.float32)
    given[100:300, 100:500] = 1.0
    refined = given.copy()
    refined[100:300, 500:506] = 1.0  # the edge moved by 6 px: 1.5 global pixels at scale 1/4
    refined[150:250, 600:700] = 1.0  # a 100 px blob the user missed: 25 global pixels
    refined[120:160, 140:180] = 0.0  # a 40 px hole
    out = keep_thin_changes(given, refined, 1, 0.25)
    assert np.array_equal(out[:, 490:520], given[:, 490:520])  # the thin sliver stays the user's
    assert np.array_equal(out[150:250, 600:700], refined[150:250, 600:700])  # the blob is taken
    assert np.array_equal(out[120:160, 140:180], refined[120:160, 140:180])  # so is the hole
    assert np.array_equal(keep_thin_changes(given, given, 1, 0.25), given)  # nothing changed: the user's mask
    # In the cascade: the same guard through CascadeConfig, on a whole-mask refine only.
    low, high = tiny_models(0)
    img = _image(400, 800, 4)
    c = Cascade(None, high, device="cpu", config=CascadeConfig(global_size=200, refine_min_change=2,
                                                              refine_confidence=None, refine_band=None))
    res = c(img, mask=given > 0.5)
    free = Cascade(None, high, device="cpu", config=CascadeConfig(global_size=200, refine_confidence=None,
                                                                 refine_band=None))(img, mask=given > 0.5)
    moved = (res.probability > 0.5) != (given > 0.5)
    free_moved = (free.probability > 0.5) != (given > 0.5)
    assert 0 < moved.sum() < free_moved.sum()  # the (random) H moves things; the guard keeps some of it
    thin = moved & ~cv2.morphologyEx(moved.astype(np.uint8), cv2.MORPH_OPEN, np.ones((9, 9), np.uint8)).astype(bool)
    assert thin.sum() <= 0.05 * max(1, moved.sum()) + 200  # what H moved is in thick patches, not a thin rim


def test_h_flip_makes_the_cut_mirror_symmetric():
    """h_flip averages H's global pass with its mirror, so mirroring the photo mirrors the answer (a random H is
    far from that on its own)."""
    low, high = tiny_models(0)
    img = _image(240, 320, 5)
    given = np.zeros((240, 320), np.float32)
    given[60:180, 80:260] = 1.0
    out = {}
    for flip in (False, True):
        c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=320, local_passes=False, h_flip=flip,
                                                                  refine_confidence=None, refine_band=None))
        a = c(img, mask=given).probability
        b = c(np.ascontiguousarray(img[:, ::-1]), mask=np.ascontiguousarray(given[:, ::-1])).probability[:, ::-1]
        out[flip] = float(np.abs(a - b).max())
    assert out[False] > 0.01 and out[True] < 1e-4


def test_h_upscale_adds_an_enlarged_pass_for_the_edge_of_small_photos():
    """h_upscale: a cut of a photo smaller than global_size runs H at 1:1 and on the photo enlarged to global_size
    (upscale_passes times, each with its mirror), and takes the enlarged answer only near the 1:1 answer's edge.
    Larger photos, a given mask and a region re-refine are as before."""
    low, high = tiny_models(0)
    cfg = CascadeConfig(global_size=256, local_passes=True, h_flip=True, h_upscale=True, upscale_passes=2,
                        upscale_size=None, upscale_flip=True, upscale_gain=None, refine_confidence=None,
                        refine_band=None)
    c = Cascade(low, high, device="cpu", config=cfg)
    calls: list[tuple[int, int]] = []
    forward = c._forward
    c._forward = lambda model, x, mask=None, stages=None: calls.append(x.shape[:2]) or forward(model, x, mask, stages)
    img = _image(120, 160, 7)
    res = c(img)
    assert calls == [(336, 336)] + [(120, 160)] * 2 + [(192, 256)] * 4  # L; H 1:1 and mirror; 2 enlarged passes
    assert res.probability.shape == (120, 160) and 0.0 <= res.probability.min() and res.probability.max() <= 1.0
    # Far from the 1:1 answer's edge the answer is the 1:1 pass's; near it, the enlarged pass's.
    c.config.h_upscale = False
    calls.clear()
    plain = c(img)
    assert calls == [(336, 336)] + [(120, 160)] * 2
    binary = (plain.probability > 0.5).astype(np.uint8)
    far = cv2.distanceTransform(binary, cv2.DIST_L2, 3) + cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3) > 8
    assert far.any() and np.allclose(res.probability[far], plain.probability[far], atol=1e-5)
    assert not np.allclose(res.probability[~far], plain.probability[~far], atol=1e-3)
    # upscale_gain caps the enlarged answer at that multiple of the 1:1 one (the card's 2 keeps a faint ghost from
    # turning solid). A random H answers about 0.5 everywhere, so a gain of 1 is what binds here.
    c.config.h_upscale, c.config.upscale_gain = True, 1.0
    capped = c(img).probability
    assert np.all(capped <= plain.probability + 1e-5) and not np.allclose(capped, res.probability, atol=1e-3)
    c.config.upscale_size, c.config.upscale_flip, c.config.upscale_passes = 200, False, 1
    calls.clear()
    c(img)
    assert calls == [(336, 336)] + [(120, 160)] * 2 + [(150, 200)]  # one enlarged pass at 200 px, no mirror
    c.config.upscale_size = 1000  # never above the global pass's size
    calls.clear()
    c(img)
    assert calls[-1] == (192, 256)
    calls.clear()
    c(_image(300, 400, 7))
    assert calls == [(336, 336), (192, 256), (300, 400)]  # larger: shrunk as before (then its one local crop)
    calls.clear()
    c(img, mask=np.ones((120, 160), bool))
    assert calls == [(120, 160)] * 2  # mos refine: the 1:1 pass only
    calls.clear()
    c(img, mask=np.ones((120, 160), bool), roi=(0, 0, 80, 60))
    assert calls == [(60, 80)]  # a region re-refine: one pass


def test_h_flip_runs_only_for_whole_photos_at_one_to_one():
    """The mirror pass is for H at 1:1 (where it was measured to help); a larger photo and a region re-refine get
    one pass, and so does refining a larger mask unless refine_flip asks for the mirror there."""
    low, high = tiny_models(0)
    c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=256, local_passes=False, h_flip=True))
    calls: list[tuple[int, int]] = []
    forward = c._forward
    c._forward = lambda model, x, mask=None, stages=None: calls.append(x.shape[:2]) or forward(model, x, mask, stages)
    c(_image(200, 240, 6))
    assert calls == [(336, 336), (200, 240), (200, 240)]  # L, then H and its mirror
    calls.clear()
    c(_image(300, 400, 6))
    assert calls == [(336, 336), (192, 256)]  # shrunk to the global pass: no mirror
    calls.clear()
    c(_image(200, 240, 6), mask=np.ones((200, 240), bool), roi=(0, 0, 120, 100))
    assert calls == [(100, 120)]  # a region re-refine: one pass
    big, given = _image(300, 400, 6), np.ones((300, 400), bool)
    calls.clear()
    c(big, mask=given)
    assert calls == [(192, 256)]  # refining a larger mask: one pass unless refine_flip
    c.config.refine_flip = True
    calls.clear()
    c(big, mask=given)
    assert calls == [(192, 256)] * 2  # ... and with it, the mirror too
    calls.clear()
    c(big)
    assert calls == [(336, 336), (192, 256)]  # a cut of the same photo is as before
    calls.clear()
    c(big, mask=given, roi=(0, 0, 120, 100))
    assert calls == [(100, 120)]


def test_small_photo_h_serves_cuts_of_photos_up_to_the_global_pass_only():
    """Hs (H's small-photo weights) runs where H would see the photo at 1:1 in a cut; large photos, a given mask
    (`mos refine`: its guards were measured with H) and region re-refines keep the large-photo H."""
    low, high = tiny_models(0)
    _, small_h = tiny_models(1)
    c = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=256, local_passes=False),
                h_small_model=small_h)
    seen: list[str] = []
    forward = c._forward
    names = {id(low): "L", id(high): "H", id(small_h): "Hs"}
    c._forward = lambda model, x, mask=None, stages=None: seen.append(names[id(model)]) or forward(
        model, x, mask, stages)
    img, big = _image(200, 240, 6), _image(300, 400, 6)
    res = c(img)
    assert (seen, res.h_weights) == (["L", "Hs"], "Hs")
    plain = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=256, local_passes=False))(img)
    assert np.abs(res.probability - plain.probability).max() > 1e-4  # the other weights really answered
    for kwargs, image in (({}, big), ({"mask": np.ones((200, 240), bool)}, img),
                          ({"mask": np.ones((200, 240), bool), "roi": (0, 0, 120, 100)}, img)):
        seen.clear()
        res = c(image, **kwargs)
        assert set(seen) - {"L"} == {"H"} and res.h_weights == "H", kwargs
    c.config.small_h = False
    seen.clear()
    assert c(img).h_weights == "H" and seen == ["L", "H"]
    assert c.run_low(img)[0].shape == (200, 240)
    with pytest.raises(MosError, match="small-photo H model must take RGB"):
        Cascade(low, high, device="cpu", h_small_model=low)


def test_rough_refine_is_a_cut_in_the_selections_box_taken_near_its_edge():
    """A rough selection (refine_rough) with L loaded: L and H cut the object out of the selection's box (widened by
    refine_rough_pad; H handed L's answer averaged with the selection, or L's alone for a rectangle), and the cut is
    taken within refine_rough_band of the selection's edge and inside it where sure of background; without L, with
    refine_rough_cut off, or when the cut keeps too little, H alone refines it as before."""
    from mos_studio.core.cascade import keep_near_edge

    low, high = tiny_models(0)
    cfg = CascadeConfig(global_size=512, crop_size=384, refine_rough=True)
    both = Cascade(low, high, device="cpu", config=cfg)
    img = _image(400, 600, 5)
    given = np.zeros((400, 600), np.float32)
    given[100:300, 150:450] = 1.0
    given[100:160, 150:250] = 0.0  # a notch: a lasso, not a rectangle (that case is below)
    events: list[str] = []
    res = both(img, mask=given, progress=lambda s, f: events.append(s))
    assert "L" in res.stages and events[0] == "L" and events[-1] == "done"
    pad = round(cfg.refine_rough_pad * 600)
    box = (150 - pad, 100 - pad, 450 + pad, 300 + pad)
    plain = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384))
    x0, y0, x1, y1 = box
    l_alone = plain.run_low(img[y0:y1, x0:x1])[0]
    mixed = np.float32(cfg.refine_rough_mix) * l_alone + np.float32(1 - cfg.refine_rough_mix) * given[y0:y1, x0:x1]
    seen: list[np.ndarray] = []
    real_refine = plain._refine
    plain._refine = lambda rgb, coarse, *a, **k: (seen.append(coarse.copy()), real_refine(rgb, coarse, *a, **k))[1]
    plain(img, box=box)
    assert len(seen) == 1 and not np.allclose(seen[0], mixed)  # a plain box cut hands H L's answer alone
    plain._refine = real_refine
    # What the rough refine hands H: L's answer in the box averaged with the selection, refine_rough_mix of L's.
    both._refine = lambda rgb, coarse, *a, **k: (seen.append(coarse.copy()), real_refine(rgb, coarse, *a, **k))[1]
    res2 = both(img, mask=given)
    del both._refine
    np.testing.assert_allclose(seen[1], mixed, atol=1e-6)
    np.testing.assert_array_equal(res2.probability, res.probability)
    # A rectangle (it fills its bounding box) says nothing of the object's shape: H is handed L's answer alone.
    rect = np.zeros_like(given)
    rect[100:300, 150:450] = 1.0
    both._refine = lambda rgb, coarse, *a, **k: (seen.append(coarse.copy()), real_refine(rgb, coarse, *a, **k))[1]
    both(img, mask=rect)
    del both._refine
    np.testing.assert_allclose(seen[2], l_alone, atol=1e-6)
    real_low = plain.run_low
    plain.run_low = lambda sub: (mixed, real_low(sub)[1])
    cut = plain(img, box=box)  # the same box cut with the average in place of L's answer
    want = keep_near_edge(given, cut.probability, max(8.0, cfg.refine_rough_band * 600))
    sure_bg = (given > 0.5) & (cut.probability < cfg.refine_rough_clear)
    want[sure_bg] = cut.probability[sure_bg]  # inside the selection the cut clears what it is sure is background
    np.testing.assert_allclose(res.probability, want, atol=1e-6)
    assert np.array_equal(res.mask, res.probability > cfg.threshold)
    # H's maps cover the box, and the result says so: the soft-edge step places them there without being told.
    from mos_studio.core.matting import stage_uncertainty

    assert res.region == box and cut.region == box and both(img).region is None
    unc = stage_uncertainty(res.stages["H"], (600, 400), res.region)
    assert unc is not None and not unc[:box[1]].any() and not unc[:, :box[0]].any()
    # Beyond the band the selection is kept as drawn: far outside, and deep inside except where the cut is sure
    # of background.
    band = round(cfg.refine_rough_band * 600)
    deep = np.s_[160 + band + 1:300 - band - 1, 150 + band + 1:450 - band - 1]  # below the notch
    assert np.array_equal(res.mask[deep], ~sure_bg[deep])
    assert not res.mask[:100 - band - 1].any() and not res.mask[:, :150 - band - 1].any()
    # The tiny random H is rarely sure of anything: with a looser "sure" the clearing reaches deep inside.
    loose = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384, refine_rough=True,
                                                                   refine_rough_clear=0.55))
    got, sure = loose(img, mask=given).probability[deep], cut.probability[deep] < 0.55
    assert sure.any() and np.array_equal(got[sure], cut.probability[deep][sure]) and (got[~sure] == 1.0).all()
    # Within the band the tiny random cut moves the edge (else this test would show nothing).
    assert (res.mask != (given > 0.5)).sum() > 100
    # Off, or with H alone: the H-only rough refine (no L pass).
    cfg_off = CascadeConfig(global_size=512, crop_size=384, refine_rough=True, refine_rough_cut=False)
    h_only = Cascade(None, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384, refine_rough=True))
    a = Cascade(low, high, device="cpu", config=cfg_off)(img, mask=given)
    b = h_only(img, mask=given)
    assert "L" not in a.stages and "L" not in b.stages
    np.testing.assert_array_equal(a.probability, b.probability)
    # An empty selection has no box: the H-only path takes it.
    assert "L" not in both(img, mask=np.zeros_like(given)).stages
    # So does a selection the cut keeps too little of (here: asked to keep more than all of it): the cut missed.
    picky = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=512, crop_size=384, refine_rough=True,
                                                                   refine_rough_min_keep=1.01))
    c = picky(img, mask=given)
    assert "L" not in c.stages and c.region is None
    np.testing.assert_array_equal(c.probability, b.probability)


def test_fine_detail_crops_may_add_thin_things_but_not_whole_parts(monkeypatch):
    """local_thin: a crop's whisker (3 px) and soft edge values are taken, a 60 px blob it adds or a 40 px hole it
    cuts are not; and in the cascade the option reaches every crop."""
    from mos_studio.core.cascade import drop_thick_changes

    given = np.zeros((300, 400), np.float32)
    given[100:200, 100:200] = 1.0
    refined = given.copy()
    refined[150:153, 200:330] = 0.9  # a whisker sticking out of the object
    refined[20:80, 250:310] = 1.0  # a blob the global pass called background
    refined[120:160, 120:160] = 0.0  # a hole
    refined[100:200, 198:200] = 0.7  # a softer edge: same side of the cut
    out = drop_thick_changes(given, refined, 4)
    assert np.array_equal(out[150:153, 200:330], refined[150:153, 200:330])
    assert np.array_equal(out[20:80, 250:310], given[20:80, 250:310])
    assert np.array_equal(out[120:160, 120:160], given[120:160, 120:160])
    assert np.array_equal(out[100:200, 198:200], refined[100:200, 198:200])
    assert drop_thick_changes(given, given, 4) is given  # nothing changed
    low, high = tiny_models(0)
    img = _image(700, 900, 5)
    seen: list[int] = []
    import mos_studio.core.cascade as cascade_mod

    def spy(g, r, t):
        seen.append(t)
        return drop_thick_changes(g, r, t)

    monkeypatch.setattr(cascade_mod, "drop_thick_changes", spy)
    res = Cascade(low, high, device="cpu", config=CascadeConfig(local_thin=4, min_uncertain_fraction=0.0))(img)
    assert res.crops and seen == [4] * len(res.crops)


def test_with_crops_the_edge_snap_spares_thin_and_sure_object(monkeypatch):
    """snap_spare_thin / snap_spare_sure: where H's crops ran, the snap may move an edge but not take away a part of
    H's object thinner than its window (a whisker) or one H is sure of; a cut without crops is snapped as before."""
    import mos_studio.core.cascade as cascade_mod
    from mos_studio.core.cascade import restore_spared, thin_parts

    mask = np.zeros((200, 300), bool)
    mask[50:150, 50:150] = True  # a body
    mask[99:102, 150:280] = True  # a 3 px whisker out of it
    thin = thin_parts(mask, 4)
    assert thin[99:102, 160:270].all() and not thin[70:130, 70:130].any()
    prob = np.full((4, 4), 0.2, np.float32)
    restore_spared(prob, np.array([0, 5, 6]), np.array([0.9, 0.8, 0.95], np.float32))
    prob.ravel()[6] = 0.7
    restore_spared(prob, np.array([6]), np.array([0.95], np.float32))  # above 0.5 now: left as it is
    assert prob.ravel()[[0, 5, 6]].tolist() == pytest.approx([0.9, 0.8, 0.7])

    cfg = CascadeConfig(global_size=300, snap_spare_thin=2, snap_spare_sure=0.95)
    refined = np.where(mask, 0.8, 0.0).astype(np.float32)
    refined[60:70, 60:70] = 0.97  # sure, inside the body
    refined[10:13, 10:40] = 0.97  # a loose speck: sure and thin, but hanging on to nothing
    idx, values = Cascade(None, None, device="cpu", config=cfg)._snap_spared(refined)
    spared = np.zeros(refined.size, bool)
    spared[idx] = True
    spared = spared.reshape(refined.shape)
    assert spared[99:102, 160:270].all() and spared[60:70, 60:70].all()
    assert not spared[10:13, 10:40].any() and not spared[120:140, 120:140].any()
    assert np.array_equal(values, refined.ravel()[idx])

    # In the cascade: a snap that takes away all the object stands for the filter smearing thin or sure parts.
    def wipe(rgb, prob, radius, eps, work_side, out=None, cut_only=False):
        out[:] = np.minimum(out, 0.3)
        return out

    monkeypatch.setattr(cascade_mod, "snap_to_edges", wipe)
    low, high = tiny_models(0)
    img = _image(700, 900, 5)
    base = dict(edge_radius=8, min_uncertain_fraction=0.0, global_size=512, crop_size=384)
    with_crops = Cascade(low, high, device="cpu", config=CascadeConfig(**base))(img)
    assert with_crops.crops and not with_crops.mask.any()  # the wipe took everything: nothing spared by default
    spared = Cascade(low, high, device="cpu",
                     config=CascadeConfig(**base, snap_spare_thin=2, snap_spare_sure=0.6))(img)
    unsnapped = Cascade(low, high, device="cpu", config=CascadeConfig(**{**base, "edge_radius": None}))(img)
    assert spared.crops and spared.mask.any()
    assert not (spared.mask & ~unsnapped.mask).any()  # it only gives back, never adds
    no_crops = Cascade(low, high, device="cpu", config=CascadeConfig(
        **base, local_passes=False, snap_spare_thin=2, snap_spare_sure=0.6))(img)
    assert not no_crops.crops and not no_crops.mask.any()
