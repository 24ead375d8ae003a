"""Training data: generator reproducibility, folder/matte sources on real files, L/H samples, mask perturbation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mos_studio.core.errors import ImageError, MaskError
from training.data import (
    FolderSource,
    MatteSource,
    SampleDataset,
    StepSampler,
    SynthSource,
    generate_pair,
    h_sample,
    iou_binary,
    perturb_mask,
    zoom_crop,
)


def test_perturbed_masks_land_in_iou_range() -> None:
    """200 boundary patches from generated pairs: IoU with the TRUE mask always in [0.8, 1.0], and really perturbed."""
    ious = []
    for k in range(200):
        img, mask = generate_pair(10_000 + k // 4, 160)
        rng = np.random.default_rng(k)
        _, gt, coarse = h_sample(img, mask, rng, 96)
        assert set(np.unique(coarse)) <= {0.0, 1.0}
        ious.append(iou_binary(coarse > 0.5, gt > 0.5))
    ious = np.array(ious)
    print(f"perturbed IoU: min {ious.min():.3f} mean {ious.mean():.3f} max {ious.max():.3f}")
    assert ious.min() >= 0.8 and ious.max() <= 1.0
    assert ious.mean() < 0.97  # the masks are actually perturbed, not copies of the truth
    assert np.mean(ious == 1.0) < 0.1


def test_perturbation_of_thin_structures_and_empty_masks() -> None:
    """A mask of 1-px lines (where polygonisation alone destroys everything) still lands in range; empty stays empty."""
    gt = np.zeros((64, 64), np.float32)
    gt[::8, :] = 1
    gt[20:40, 20:40] = 1
    for seed in range(10):
        p = perturb_mask(gt, np.random.default_rng(seed))
        assert 0.8 <= iou_binary(p > 0.5, gt > 0.5) <= 1.0
    assert not perturb_mask(np.zeros((32, 32)), np.random.default_rng(0)).any()


def test_generator_is_seeded_and_has_thin_structures() -> None:
    a_img, a_mask = generate_pair(3, 128)
    b_img, b_mask = generate_pair(3, 128)
    c_img, _ = generate_pair(4, 128)
    assert a_img.shape == (128, 128, 3) and a_img.dtype == np.uint8 and a_mask.dtype == np.float32
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)
    # soft (anti-aliased) boundary pixels exist and the object neither fills nor misses the frame
    masks = [generate_pair(s, 128)[1] for s in range(6)]
    assert all(0.02 < m.mean() < 0.8 for m in masks)
    assert all(((m > 0.05) & (m < 0.95)).mean() > 0.005 for m in masks)


def _write_pairs(root, n: int, size=(48, 40)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        img, mask = generate_pair(k, 64)
        img = cv2.resize(img, size)
        mask = cv2.resize(mask, size)
        cv2.imwrite(str(root / "images" / f"im{k}.jpg"), img[..., ::-1])
        cv2.imwrite(str(root / "masks" / f"im{k}.png"), (mask * 255).astype(np.uint8))


def test_folder_and_matte_sources_mix_with_weights(tmp_path) -> None:
    _write_pairs(tmp_path / "set", 3)
    (tmp_path / "dim" / "fg").mkdir(parents=True)
    (tmp_path / "dim" / "alpha").mkdir()
    alpha = np.zeros((50, 60), np.uint8)
    alpha[10:40, 10:50] = 255
    alpha[10:40, 30] = 64  # a soft column: kept or dropped by the random threshold
    cv2.imwrite(str(tmp_path / "dim" / "fg" / "a.png"), np.full((50, 60, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "dim" / "alpha" / "a.png"), alpha)
    folder, matte = FolderSource(tmp_path / "set"), MatteSource(tmp_path / "dim")
    assert len(folder) == 3 and len(matte) == 1
    img, mask = matte.load(0, np.random.default_rng(0))
    assert img.shape == (50, 60, 3) and set(np.unique(mask)) <= {0.0, 1.0}
    ds = SampleDataset([folder, matte], [3.0, 1.0], "L", size=32)
    item = ds[5]
    assert item["image"].shape == (3, 32, 32) and item["gt"].shape == (1, 32, 32)
    assert torch.equal(ds[5]["image"], item["image"])  # a sample is a pure function of (seed, index)
    hs = SampleDataset([folder], None, "H", patch=32)
    h = hs[0]
    assert h["coarse"].shape == (1, 32, 32)


def test_validation_can_see_every_photo_once(tmp_path) -> None:
    """Stop 42: 48 drawn validation samples over eight sources held 36 photos, the small sources' photos several
    times each; `each_photo` walks every photo of every source once, in order, the same on every call."""
    _write_pairs(tmp_path / "big", 5)
    _write_pairs(tmp_path / "small", 1, size=(40, 48))
    big, small = FolderSource(tmp_path / "big"), FolderSource(tmp_path / "small")
    ds = SampleDataset([big, small], None, "L", seed=7, size=32, augment=False)
    drawn = [ds[i]["image"] for i in range(6)]
    items = ds.each_photo()
    assert len(items) == 6 and all(it["image"].shape == (3, 32, 32) for it in items)
    # five different photos of the big source, then the small source's one photo, each once
    assert all(not torch.equal(items[a]["image"], items[b]["image"]) for a in range(6) for b in range(a))
    assert torch.equal(items[5]["image"], ds._item(small, 0, np.random.default_rng(0))["image"])
    assert all(torch.equal(a["gt"], b["gt"]) for a, b in zip(items, ds.each_photo(), strict=True))
    assert [it["gt"].sum() for it in ds.each_photo(limit=2)] == [it["gt"].sum() for it in items[:2]]
    # drawing the same number of samples repeats photos (here the small source's one photo is half the draws)
    repeats = sum(any(torch.equal(d, e) for e in drawn[:k]) for k, d in enumerate(drawn))
    assert repeats >= 1


def test_matte_colour_match_gives_the_background_the_objects_colour(tmp_path) -> None:
    """A red object composited on a blue photo: matched, the background turns the object's colour, texture kept."""
    (tmp_path / "m" / "fg").mkdir(parents=True)
    (tmp_path / "m" / "alpha").mkdir()
    (tmp_path / "bg").mkdir()
    fg = np.zeros((40, 40, 3), np.uint8)
    fg[...] = (30, 30, 200)  # BGR on disk: red
    alpha = np.zeros((40, 40), np.uint8)
    alpha[10:30, 10:30] = 255
    cv2.imwrite(str(tmp_path / "m" / "fg" / "a.png"), fg)
    cv2.imwrite(str(tmp_path / "m" / "alpha" / "a.png"), alpha)
    rng = np.random.default_rng(0)
    bg = np.zeros((40, 40, 3), np.uint8)
    bg[..., 0] = 150 + rng.integers(0, 60, (40, 40))  # blue with texture
    cv2.imwrite(str(tmp_path / "bg" / "b.png"), bg)
    plain = MatteSource(tmp_path / "m", tmp_path / "bg")
    matched = MatteSource(tmp_path / "m", tmp_path / "bg", colour_match=1.0)
    img0, mask0 = plain.load(0, np.random.default_rng(1))
    img1, mask1 = matched.load(0, np.random.default_rng(1))
    out = mask0 < 0.5
    assert np.array_equal(mask0, mask1) and np.array_equal(img0[~out], img1[~out])  # the object is untouched
    assert img0[out][:, 2].mean() > 120 and img0[out][:, 0].mean() < 40  # plain: the blue photo
    assert img1[out][:, 0].mean() > 120 and img1[out][:, 2].mean() < img0[out][:, 2].mean() - 60  # matched: reddish
    assert img1[out][:, 0].std() > 5  # the background's texture survives the shift
    with pytest.raises(ValueError, match="probability"):
        MatteSource(tmp_path / "m", tmp_path / "bg", colour_match=1.5)


def test_bad_data_gives_clear_errors(tmp_path) -> None:
    with pytest.raises(ImageError, match="not found"):
        FolderSource(tmp_path / "missing")
    _write_pairs(tmp_path / "set", 1)
    cv2.imwrite(str(tmp_path / "set" / "masks" / "im0.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(MaskError, match="im0.png"):
        FolderSource(tmp_path / "set").load(0, np.random.default_rng(0))


def test_step_sampler_splits_global_batches() -> None:
    assert list(StepSampler(2, 4, 4)) == [8, 9, 10, 11, 12, 13, 14, 15]
    assert list(StepSampler(0, 2, 4, rank=1, world=2)) == [2, 3, 6, 7]
    assert len(SynthSource(64, 5, 10)) == 10


def test_h_samples_like_the_cascade_uses_h() -> None:
    """keep_p: the input is the truth itself; scales: patches from a shrunk or enlarged photo; soft_p: L-like
    blurred inputs."""
    img, mask = generate_pair(42, 400)
    kept = [h_sample(img, mask, np.random.default_rng(k), 96, keep_p=1.0) for k in range(8)]
    for _, gt, coarse in kept:
        assert np.array_equal(coarse > 0.5, gt > 0.5)  # a right edge is handed in and is the target
    soft = [h_sample(img, mask, np.random.default_rng(k), 96, soft_p=1.0)[2] for k in range(8)]
    assert all(((c > 0.02) & (c < 0.98)).mean() > 0.02 for c in soft)  # blurred, not 0/1
    # Shrunk 4× (400 → 100 px), a 96 px patch holds nearly the whole photo, as the global pass sees it.
    quarter = h_sample(img, mask, np.random.default_rng(3), 96, scales=(0.25,))[1]
    assert quarter.shape == (96, 96) and abs(float(quarter.mean()) - float(mask.mean())) < 0.05
    # Enlarged 2× (400 → 800 px, as a cut's enlarged pass sees a small photo): the edges arrive softer.
    def soft_share(scale: float, image: np.ndarray, truth: np.ndarray) -> float:
        gts = [h_sample(image, truth, np.random.default_rng(k), 96, scales=(scale,))[1] for k in range(8)]
        return float(np.mean([((g > 0.02) & (g < 0.98)).mean() for g in gts]))

    assert soft_share(2.0, img, mask) > 1.3 * soft_share(1.0, img, mask)
    # ... but never past 1024 px, where a cut does not enlarge: a 600 px photo at 2× is sampled as at 1:1.
    big_img, big_mask = generate_pair(43, 600)
    for k in range(3):
        a = h_sample(big_img, big_mask, np.random.default_rng(k), 96, scales=(2.0,))
        b = h_sample(big_img, big_mask, np.random.default_rng(k), 96, scales=(1.0,))
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_faint_blobs_and_off_edge_patches() -> None:
    """faint_p: parts of the input pulled to a half-sure level, as L's ghosts look; anywhere_p: patches off the edge."""
    from training.data.datasets import faint_blobs

    sure = np.zeros((96, 96), np.float32)
    sure[:, 48:] = 1.0
    faint = faint_blobs(sure, np.random.default_rng(5))
    assert faint.shape == sure.shape and faint.dtype == np.float32 and faint.min() >= 0 and faint.max() <= 1
    changed = np.abs(faint - sure) > 0.05
    assert changed.any() and not changed.all()  # some of the input turned faint, the rest left as it was
    assert not np.any(faint[changed] == np.round(faint[changed]))  # what changed is half-sure, never flipped to 0/1
    img, mask = generate_pair(42, 400)
    samples = [h_sample(img, mask, np.random.default_rng(k), 96, faint_p=1.0) for k in range(8)]
    assert sum(((c > 0.08) & (c < 0.92)).mean() > 0.05 for _, _, c in samples) >= 6
    # Off the edge, many patches hold no boundary at all (all background or all object); at the edge none do.
    def edgeless(anywhere_p: float) -> int:
        out = 0
        for k in range(24):
            gt = h_sample(img, mask, np.random.default_rng(k), 96, anywhere_p=anywhere_p)[1] > 0.5
            out += int(gt.all() or not gt.any())
        return out
    assert edgeless(0.0) == 0 and edgeless(1.0) > 0


def test_h_learns_from_ls_own_answers(tmp_path) -> None:
    """given_p: H's input is L's answer on the photo (a folder source's coarse_dir), moved with the photo through
    every resize, crop and flip; photos without one, and given_p 0, keep the perturbed truth."""
    img, mask = generate_pair(42, 400)
    # A stand-in for L's answer: the truth at half strength, so a crop, resize or flip applied to the photo but not
    # to the answer (or the other way round) shows as a mismatch with the target.
    given = mask * 0.5
    for k in range(6):
        for scale in (1.0, 0.5, 2.0):
            x, gt, coarse = h_sample(img, mask, np.random.default_rng(k), 96, scales=(scale,), given=given,
                                     given_p=1.0)
            assert x.shape == (96, 96, 3) and coarse.dtype == np.float32
            assert np.abs(coarse - 0.5 * gt).max() < 3 / 255, (k, scale)
    shifted = np.roll(mask, 20, axis=1) * 0.5  # and a wrong answer stays wrong: H must learn to fix it
    wrong = [h_sample(img, mask, np.random.default_rng(k), 96, given=shifted, given_p=1.0) for k in range(6)]
    mism = [np.abs(coarse * 2 - gt).mean() for _, gt, coarse in wrong]
    assert max(mism) > 0.05
    # given_p 0 or no answer: the usual perturbed truth, bit for bit the same draws as before
    a = h_sample(img, mask, np.random.default_rng(3), 96, faint_p=0.5)
    b = h_sample(img, mask, np.random.default_rng(3), 96, faint_p=0.5, given=given, given_p=0.0)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    c = h_sample(img, mask, np.random.default_rng(3), 96, given=None, given_p=1.0)[2]
    assert c.max() > 0.9  # the perturbed truth, not a half-sure map
    # Through a folder source: L's answers in coarse_dir, matched by name; a missing folder is a clear error.
    _write_pairs(tmp_path / "set", 2)
    (tmp_path / "lpred").mkdir()
    first = sorted((tmp_path / "set" / "images").iterdir())[0]
    h, w = cv2.imread(str(first)).shape[:2]
    cv2.imwrite(str(tmp_path / "lpred" / f"{first.stem}.png"), np.full((h // 2, w // 2), 77, np.uint8))
    src = FolderSource(tmp_path / "set", coarse_dir=tmp_path / "lpred")
    assert src.load_coarse(0).shape == (h // 2, w // 2) and src.load_coarse(1) is None
    assert "L's answers for 1" in src.describe()
    ds = SampleDataset([src], None, "H", patch=32, given_p=1.0)
    seen = {round(float(ds[i]["coarse"].max()), 3) for i in range(12)}
    assert round(77 / 255, 3) in seen and any(v > 0.9 for v in seen)  # item 0 from L, item 1 the truth
    with pytest.raises(ImageError, match="coarse_dir"):
        FolderSource(tmp_path / "set", coarse_dir=tmp_path / "nope")


def test_zoom_crop_shows_l_the_box_its_second_look_sees(tmp_path) -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    img[..., 0] = np.arange(300, dtype=np.uint8)[None, :]  # columns told apart by colour
    mask = np.zeros((200, 300), np.float32)
    mask[80:120, 100:160] = 1.0  # a 40 x 60 object
    for seed in range(20):
        crop, cmask = zoom_crop(img, mask, np.random.default_rng(seed))
        assert crop.shape[:2] == cmask.shape
        # the whole object stays in view (margin 0.05-0.3 of 60 px, each side moved by at most 3 px) ...
        assert cmask.sum() == mask.sum()
        # ... with at least about a margin's worth of surroundings, and far less than the photo
        assert 60 <= crop.shape[1] <= 60 + 2 * 18 + 2 * 3 + 1
        assert crop.shape[0] < 200 and crop.shape[1] < 300
        x0 = int(crop[0, 0, 0])
        assert 100 - 18 - 3 - 1 <= x0 <= 100
    # the photo comes back whole when nothing is found or the box is most of it, as the cascade skips its look
    empty = np.zeros((200, 300), np.float32)
    assert zoom_crop(img, empty, np.random.default_rng(0))[0].shape == img.shape
    big = np.zeros((200, 300), np.float32)
    big[10:190, 10:290] = 1.0
    assert zoom_crop(img, big, np.random.default_rng(0))[0].shape == img.shape
    # in the dataset: zoom_p 0 replays the samples of runs from before it; zoom_p 1 gives a closer view
    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "masks").mkdir()
    small = np.zeros((60, 80), np.uint8)
    small[20:32, 30:46] = 255
    cv2.imwrite(str(tmp_path / "set" / "images" / "a.jpg"), img[:60, :80])
    cv2.imwrite(str(tmp_path / "set" / "masks" / "a.png"), small)
    plain = SampleDataset([FolderSource(tmp_path / "set")], None, "L", size=32)
    off = SampleDataset([FolderSource(tmp_path / "set")], None, "L", size=32, zoom_p=0.0)
    near = SampleDataset([FolderSource(tmp_path / "set")], None, "L", size=32, zoom_p=1.0)
    assert torch.equal(plain[3]["image"], off[3]["image"])
    assert near[3]["gt"].mean() > plain[3]["gt"].mean()
