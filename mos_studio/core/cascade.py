"""The L/H cascade: L segments a small copy, H refines at full resolution without full-size activations.

H works in two steps, after CascadePSP (ANCHORS.md §B) but tuned for thin structures:
1. a global pass on the region resized to a bounded long side (`global_size`), fed the coarse mask;
2. local passes on full-resolution crops that contain uncertain or boundary pixels of the global result. There is
   no 10 %/90 % foreground skip rule (it drops lone antennae and branches); crops are blended with linear ramps and
   faded into the global result where no other crop overlaps, so there are no seams.
Peak memory is bounded by the crop and global sizes plus a few full-size float32 maps.

Speed (docs/PERFORMANCE.md): on a CPU each pass runs in ONNX Runtime when it is installed (the `fast` extra; else
PyTorch with BatchNorm folded and channels-last weights, after one line of notice), with as many threads as there
are free cores, and stage maps are only converted when asked for. `CascadeConfig(optimized=False)` keeps the plain
PyTorch path as the reference the benchmark compares against.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .colour import colour_band
from .edges import snap_to_edges
from .errors import Cancelled, MaskError, MosError
from .model import MeticulousNet
from .optimize import THREADS_ENV, inference_copy, parse_threads, pick_threads

ProgressFn = Callable[[str, float], None]
CancelLike = Callable[[], bool] | threading.Event | None
Rect = tuple[int, int, int, int]


@dataclass
class CascadeConfig:
    l_size: int = 336  # L's square input side (the paper resizes to 336×336)
    l_flip: bool = False  # average L over the image and its mirror image (test-time augmentation)
    # L sees the photo at its own aspect ratio, long side l_size (short side at least 32 px), instead of squashed to
    # l_size² as the paper does and as L was trained. Off: measured with round 2's Lite0 L at stop 23, it takes most
    # of the table wedge out of the bundled cup (IoU with the checked mask 0.752 -> 0.835) and helps the people set
    # (all six metrics), but costs 60 random held-out photos 0.4 IoU / 0.3 mBA points against the teacher (0.8 / 0.5
    # on 60 that are not clothing) and DAVIS's 854 x 480 frames 8 IoU points (docs/MODELS.md). Kept so that
    # `eval_teacher.py --variant l_aspect=True` can repeat the measurement on a retrained L.
    l_aspect: bool = False
    # L averaged over two inputs: the square l_size² it was trained on, and the photo's own shape with short side
    # l_size (long side at most 4/3 of it, both sides multiples of 32); costs L's pass(es) twice. Off: measured at
    # stop 28 on 60 held-out photos that are not clothing, against the teacher, L alone gains (IoU / mBA 0.792 /
    # 0.609 -> 0.796 / 0.618) but the whole cascade does not (0.826 / 0.714 -> 0.823 / 0.716): the small-photo H
    # answers the softer average by taking more of what touches the object (a feeder, a cushion). Kept so that
    # `eval_teacher.py --variant l_blend=True` can repeat the measurement with a retrained L or H (docs/MODELS.md).
    l_blend: bool = False
    # L looks twice: once at the whole photo, then again at the box around its answer (prob > 0.5, plus l_zoom_margin
    # of the box's long side on each side), so a subject that fills a small part of the photo is seen at up to
    # l_size px instead of a few dozen. Inside the box the second answer is mixed in with weight l_zoom_mix (the
    # closer look alone loses the context that tells object from surroundings: L alone 0.792 -> 0.791 IoU, half and
    # half 0.799). Skipped when the box covers more than l_zoom_max of the photo or L found nothing. Stop 32, the
    # shipped L's card (0.15 / 0.8 / 0.5), against the teacher on 162 held-out photos that are not clothing: L+H
    # IoU / mBA 0.819 / 0.714 -> 0.822 / 0.715, clothing level, DAVIS IoU +0.8 (docs/MODELS.md).
    l_zoom: bool = False
    l_zoom_margin: float = 0.15
    l_zoom_max: float = 0.8
    l_zoom_mix: float = 0.5
    # L's unsure band (0.1-0.9) moved this share of the way to a colour model's label, fitted on what L is sure of
    # (core/colour.py). Stop 53, 0.5: L upsampled +0.9 IoU / +4.9 mBA points against the teacher on the 162 held-out
    # photos, L+H level (the shipped H hardly reads its input), so off (0) until an H passes the gain on.
    l_colour_mix: float = 0.0
    h_flip: bool = False  # the same for H's whole-image pass when it runs at 1:1 (photos up to global_size;
    # not for a region re-refine, `roi`)
    global_size: int = 1024  # long side of H's global pass
    # A cut of a photo smaller than `upscale_size` also runs H on the photo enlarged to that size, and takes that
    # answer within `upscale_band` (a share of the long side, at least 8 px) of the 1:1 answer's edge. H learnt edges
    # mostly from downscaled crops of large photos, so at 1:1 a 533 px photo shows it a blurrier edge than it knows.
    # Enlarged on its own it also let faint haze into noisy backgrounds (feral cats: MAE 7.2 -> 9.7), so the 1:1
    # pass keeps deciding what is object. Never for a given mask or a region re-refine (not measured there).
    # 60 random held-out photos against the teacher, mBA 0.696 at 1:1; 0.729 enlarged to 1024, two passes, mirrored
    # (5.0 s a photo); 0.721 at 768, two passes, no mirror (1.9 s; 0.6 s without): docs/MODELS.md.
    h_upscale: bool = False
    upscale_band: float = 0.01
    upscale_size: int | None = 768  # long side of the enlarged pass (None: global_size; never above it)
    # The enlarged pass runs this many times, each fed the last answer: the way CascadePSP iterates its refiner.
    upscale_passes: int = 2
    # Also mirror each enlarged pass (when h_flip is on): at 1024 px +0.65 mBA, 1.75× time (stop 19); at 768 px with
    # the small-photo H +0.6 / +0.5 mBA on two draws of 60 held-out photos, median 1.9-2.1 -> 3.0-3.2 s (stop 21;
    # on in the shipped H's card).
    upscale_flip: bool = False
    # The enlarged answer may be at most this many times the 1:1 one (None: no cap), so a faint ghost at 1:1 is not
    # made solid by the enlarged pass's firmer edges. 2: cats' MAE / pooled IoU 7.26 / 70.07 -> 7.21 / 70.21, the
    # teacher's mBA unchanged (docs/MODELS.md).
    upscale_gain: float | None = 2.0
    crop_size: int = 512  # side of H's local crops at full resolution
    crop_overlap: int = 96  # overlap between neighbouring crops (blended with linear ramps)
    uncertain_band: tuple[float, float] = (0.05, 0.95)  # probabilities counted as uncertain
    boundary_px: int = 3  # pixels either side of the global mask's edge that always get a local pass
    min_uncertain_fraction: float = 0.0005  # a crop runs when this share of its pixels is uncertain/boundary
    local_passes: bool = True
    # H's crops may move the global pass's 0.5 cut only in patches thinner than this many photo pixels (a patch that
    # survives an opening with a disc of 2·n + 1 keeps the global answer): whiskers, hairs and stems come from the
    # crops, whole parts from the pass that saw the whole photo. None: the crops decide everything they cover.
    local_thin: int | None = None
    threshold: float = 0.5
    half_on_cuda: bool = True
    optimized: bool = True  # False: the reference path (plain PyTorch, as trained) that the benchmark compares with
    runtime: str = "auto"  # CPU passes: "auto" (ONNX Runtime when installed, else PyTorch), "onnxruntime", "torch"
    threads: int | None = None  # CPU threads per pass; None: $MOS_THREADS, else the cores free when a call starts
    stage_maps: bool = True  # return L's and H's per-stage maps (the inspector and the soft-edge step read them)
    # Optimised path: leave crops to the global result, quietest first, while their uncertain/edge pixels add up to
    # at most this share of the object's area (a bound on the mask change; 0 runs every crop the reference runs).
    skip_budget: float = 0.002
    # Refining a mask the user already has (`mask=`): H may change it only this far from its edge (a share of the
    # image's long side, at least 8 px), fading back to the user's mask; a good selection is never eaten from inside
    # or grown blobs far from it. None lets H change everything (what the paper's H does).
    refine_band: float | None = 0.01
    # ... and only where H is at least this sure of its answer (else the user's value stays). Measured on round 1's
    # H with its crops still on (coffee-cup pair): a good mask's IoU 1 -> 0.973 unguarded, 0.996 with 0.9. An H's
    # card may set its own (`inference.refine_confidence`; round 2's Lite0 H: 0.97, docs/MODELS.md).
    refine_confidence: float | None = 0.9
    # ... and only where H's answer differs from the user's in a patch at least 2·N + 1 of H's global-pass pixels
    # thick (an opening with a disc that wide, at global_size): thinner changes are H's own resolution (at 4K one
    # global pixel is 4 photo pixels), where the user's full-resolution edge is the better one. H still removes or
    # fills blobs the user's mask got wrong. Photos no larger than global_size are left to H (it saw every pixel).
    # None: every sure change is taken. Round 2's Lite0 H's card: 8 (stop 22; 5 before took 0.03 mBA points off a
    # right mask on 12 held-out photos >= 1.5K px, 8 takes none, on two draws of perturbations: docs/MODELS.md).
    refine_min_change: int | None = None
    # ... and, for a mask larger than global_size, H's global pass also runs on the mirrored photo and the two answers
    # are averaged (h_flip must be on), so a change must convince H both ways to reach refine_confidence. Smaller
    # masks get the mirror anyway (h_flip). Stop 20, 12 held-out photos >= 1.5K px, refine_min_change 5: a right
    # mask's mBA 0.9990 -> 0.9997 and worst IoU loss 0.0022 -> 0.0009, for a second global pass (docs/MODELS.md).
    refine_flip: bool = False
    # Whole-mask refining runs H's global pass only: the shipped H's full-resolution crops are what moves a right
    # edge (12 held-out teacher masks ≥ 1.5K px: IoU 0.948 / mBA 0.846 with crops, 0.988 / 0.963 without).
    refine_local_passes: bool = False
    # ... and H's answer is its own logit plus this many times the given mask's (clamped to [0.02, 0.98]): the
    # residual skip of MeticulousNet.mask_skip, used on whole-mask refines only (a copy of H with the skip). A right
    # mask then survives unless H is sure it is wrong, so refine_confidence can be lower. Round 2's Lite0 H's card:
    # 1.0 with refine_confidence 0.8 (stop 45, 14 held-out photos >= 768 px: a right mask's worst IoU loss 0.0142
    # -> 0.0009; docs/MODELS.md). Cuts and region re-refines use H as it is (the skip cost regions 1.3 IoU points).
    refine_skip: float = 0.0
    # ... and where the given mask is itself soft (a feathered selection, strictly between 0.02 and 0.98), H must be
    # this sure instead of refine_confidence (None: the same): the skip gives such pixels no support, and a
    # feather is the user's choice. Round 2's Lite0 H's card: 0.97 (stop 45, docs/MODELS.md).
    refine_soft_confidence: float | None = None
    # The user says the given mask is rough (a quick lasso or rectangle; `mos refine --rough`, GIMP's "Rough
    # selection"): no skip and `refine_rough_confidence` instead, so H moves it further, at the risk of moving a right
    # edge too (stop 45, 14 held-out photos >= 768 px: masks grown / shrunk by 0.6 % of the long side gain +0.6 /
    # +1.4 IoU points this way, +0.2 / +0.5 with the skip; a right mask's worst IoU loss is 0.0142 this way, 0.0009
    # with the skip; docs/MODELS.md).
    refine_rough: bool = False
    refine_rough_confidence: float = 0.97
    # ... and with L loaded, a rough selection is not refined by H alone but cut out again: L and H cut the object
    # out of the box around the selection (widened by refine_rough_pad of the long side), and the selection says
    # where the object is, to within refine_rough_band of the long side: the cut is taken within that distance of
    # the selection's edge, the selection kept beyond it. H alone could not move a lasso on a photo above
    # global_size at all (the thin-change opening took every ring a few of H's global pixels thick). Stop 46, the 5
    # held-out photos > 1024 px, a lasso 0.6 % of the long side off: see docs/MODELS.md. Without L (or for an
    # empty selection), the H-only rough refine above runs. An H's card may set each refine_rough_* of its own.
    refine_rough_cut: bool = True
    refine_rough_band: float = 0.02
    refine_rough_pad: float = 0.03
    # ... where H is handed L's answer averaged with the selection, L's at this weight: where L misses a part or
    # finds another object the selection still holds H to it (stop 46, 14 held-out photos >= 768 px: a lasso 0.6 %
    # outside IoU 0.841 with L's answer alone, 0.864 with this average; docs/MODELS.md).
    refine_rough_mix: float = 0.5
    # ... except for a selection that fills at least this share of its bounding box (a rectangle): it says where the
    # object is but nothing of its shape, so H is handed L's answer alone (stop 46, the same 14 photos: a rectangle
    # 2 % outside the object IoU 0.696 with the average, 0.761 with L's answer alone; docs/MODELS.md).
    refine_rough_box_fill: float = 0.97
    # ... and beyond that band, inside the selection, the cut still clears what it is this sure is background (its
    # probability below this): the corners of a rectangle drawn round the object, the gaps a lasso went round.
    # None: the selection stays as drawn there. Stop 46, the same 14 photos: a rectangle 2 % outside the object
    # IoU 0.406 -> 0.444 without, 0.696 with 0.1; a lasso round the gaps 0.819 -> 0.824 (docs/MODELS.md).
    refine_rough_clear: float | None = 0.1
    # ... unless the cut keeps less than this share of the selection: then it missed the object (on one held-out
    # DAVIS frame it found nothing of a small car a lasso was drawn inside and would have emptied the selection),
    # and the H-only rough refine runs instead.
    refine_rough_min_keep: float = 0.05
    # A cut (no mask given): H may move L's answer only this far from L's edge (a share of the long side, at least
    # 8 px). L finds the object, H its edge; a blob or hole H makes far from L's edge is a mistake. None: no limit.
    cut_band: float | None = None
    # A cut: H may not add object where L was sure of background. H's probability is capped at L's / `add_floor`,
    # so where L said below add_floor H's answer is scaled down, to 0 where L said 0. None: no cap. Round 2's Lite0
    # H sets 0.05 in its card: it took a person's jeans and a chair's fabric that L had left out (docs/MODELS.md).
    add_floor: float | None = None
    # ... and the mirror of it: H may not remove object where L was sure of object. H's background probability is
    # capped at L's / `keep_floor`, so where L said above 1 − keep_floor H's answer is raised towards 1, to 1 where
    # L said 1. None: no cap. Stop 51 asked whether H takes away what L had right (with the teacher's own mask as
    # L's answer, H turns IoU 0.994 into 0.933): see docs/MODELS.md for what it measured.
    keep_floor: float | None = None
    # A box prompt (`box=` alone: the app's X, `mos cut --box`) says where the object is. L's look at the box alone
    # sees less of the scene than its look at the whole photo, so the two are mixed: the whole look at this weight
    # times the share of its object that lies inside the box. Where the whole look found the boxed object (most
    # photos: share 0.99 or more) it counts half at 0.5; where it found another object outside the box (the sofa
    # beside a boxed television) it hardly counts. Stop 56, L's card 0.5, 162 held-out photos against the
    # teacher, a box 10 % larger than the teacher's object, with box_context 1.0: IoU / mBA 0.8497 / 0.7192 ->
    # 0.8521 / 0.7198; photos worse than the plain cut by more than 0.02 IoU 24 -> 5 (docs/MODELS.md). A plain
    # mix (0.3, not scaled by the share) lost the television (IoU 0.69 -> 0.59). 0: L's look at the box alone.
    box_whole_mix: float = 0.0
    # ... and L looks at the box grown by this share of its long side on each side (clipped to the photo), keeping
    # its answer inside the box: a box drawn tight round the object otherwise has L see the object cut by the edge
    # of its view. Stop 57, L's card 0.1, the 162 held-out photos, IoU / mBA against the teacher: a box exactly
    # round the teacher's object 0.8363 / 0.7179 -> 0.8560 / 0.7229 (photos worse than the plain cut by more than
    # 0.02 IoU: 33 -> 9); a box 10 % larger 0.8521 / 0.7198 -> 0.8516 / 0.7189. 0: L sees the box alone.
    box_l_context: float = 0.0
    # ... and H refines the box grown by this share of its long side on each side (clipped to the photo, and to
    # H's global pass size, so H never sees the box itself smaller: a box larger than that pass gets no context),
    # as in a cut it sees the object's surroundings; everything outside the box stays background. H's card sets
    # 1.0: the same boxes as above, IoU / mBA 0.8397 / 0.7109 (H on the box alone) -> 0.8497 / 0.7192
    # (docs/MODELS.md, stop 56). A rough refine's box (`mos refine --rough`, measured at stop 46) keeps both off.
    box_context: float = 0.0
    # A region re-refine (`roi=`, the app) keeps ONNX Runtime's buffers for the next pass instead of giving them back:
    # re-faulting ~0.5 GB of fresh pages cost 0.12 s of the 1000² re-refine's ~0.8 s. Whole-image passes still give
    # them back (kept after an 8K cut they raised its peak RSS from 1084 to 1423 MB).
    keep_buffers_for_regions: bool = True
    # A region re-refine (`roi=`) runs H's pass at most at this long side (None: `global_size`). Measured with round
    # 2's Lite0 H on 1000² regions at the object's edge of the 12 held-out photos of 1.5K px and more, given L's
    # upsampled mask, against the teacher: full resolution IoU 0.589 / mBA 0.593 in 1.12 s, 768 px 0.604 / 0.593
    # in 0.68 s (benchmarks/bench_region.py, docs/PERFORMANCE.md).
    region_size: int | None = 768
    # A cut of a photo no larger than `global_size` (where H runs at 1:1 and enlarged) runs the small-photo H
    # ("Hs" weights) when one is loaded. The large-photo H, trained mostly on downscaled views of big photos, keeps
    # every other pass: large photos, `mos refine` (its guards were measured with it) and region re-refines.
    small_h: bool = True
    # A cut or a region re-refine snaps H's edge onto the photo's own edges: a colour guided filter (edges.py) with
    # this window radius, in pixels of a global_size-long view (photos smaller than that get a proportionally
    # smaller window, larger ones are fitted on a copy that size), and regulariser; the filtered value is taken
    # only where it moves the 0.5 cut within 1.5 windows of H's, H's own everywhere else. None: off. A given mask
    # (mos refine) is the user's and is not filtered. Stop 22, against the teacher, radius 8 (the card's): two
    # draws of 60 random held-out photos mBA 0.743 -> 0.780 and 0.733 -> 0.771, 12 held-out photos >= 1.5K px
    # 0.636 -> 0.663, MAE and S-measure no worse; 0.05 s at 640 px, 0.33 s at 4K, 1.1 s at 8K (docs/MODELS.md,
    # docs/PERFORMANCE.md).
    edge_radius: int | None = None
    edge_eps: float = 1e-3
    # ... but where H's crops ran (fine detail), the snap may not take away object that H's answer has in a part
    # thinner than 2·snap_spare_thin + 1 of the snap's own pixels (a whisker or a cigarette is a pixel or two wide
    # in the 1024 px view the snap is fitted on, and its filter smears it into the wall behind), nor where H's
    # answer is at least snap_spare_sure, as long as that object hangs on to a thicker part (loose specks are still
    # cleared). It may still move every other edge. Stop 57, the 5 held-out photos of 2K px and more against their
    # sharpened labels, fine detail on: IoU / mBA 0.7276 / 0.6534 -> 0.7286 / 0.6534 with H's card's 2 and 0.95
    # (level on the 13 photos of 769 px and more and on DAVIS), and the Canon walker's cigarette and the Pentax
    # cat's whiskers kept whole at 1:1 (docs/gallery_stop57.jpg).
    # 0 / None: off. A cut without crops is unchanged.
    snap_spare_thin: int = 0
    snap_spare_sure: float | None = None


@dataclass
class StageMap:
    name: str
    uncertainty: np.ndarray  # float32 h×w in [0, 1], 1 = most uncertain
    prediction: np.ndarray  # float32 h×w probability


@dataclass
class Result:
    mask: np.ndarray  # bool H×W
    probability: np.ndarray  # float32 H×W
    stages: dict[str, list[StageMap]] = field(default_factory=dict)
    device: str = "CPU"
    timings: dict[str, float] = field(default_factory=dict)
    crops: list[Rect] = field(default_factory=list)  # H's local passes, (x0, y0, x1, y1) in image pixels
    h_weights: str = ""  # which H ran: "H", "Hs" (the small-photo weights) or "" (none)
    region: Rect | None = None  # the rectangle H's stage maps cover (a box or roi); None: the whole image


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU — unless the caller names one."""
    if device is not None and str(device) != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise MosError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise MosError(f"device {device!r} requested but Apple MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device, threads: int | str | None = None, runtime: str = "") -> str:
    """E.g. "CPU (2 threads, ONNX Runtime)"; `threads` may be a count or a word such as "auto"."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    threads = threads or torch.get_num_threads()
    what = f"{threads} thread{'' if threads == 1 else 's'}" if isinstance(threads, int) else f"{threads} threads"
    return f"CPU ({what}{', ' + runtime if runtime else ''})"


def _is_cancelled(cancel: CancelLike) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _resize(a: np.ndarray, size: tuple[int, int], shrink_ok: bool = True) -> np.ndarray:
    """cv2.resize to (w, h): area when shrinking, linear when enlarging."""
    w, h = size
    if (a.shape[1], a.shape[0]) == (w, h):
        return a
    interp = cv2.INTER_AREA if shrink_ok and w <= a.shape[1] and h <= a.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(a, (w, h), interpolation=interp)


def _ramp(n: int, overlap: int, at_start_border: bool, at_end_border: bool) -> np.ndarray:
    """1-D blend weights: rise linearly over `overlap` px at sides that are not image borders."""
    w = np.ones(n, np.float32)
    k = min(overlap, n // 2)
    if k > 0:
        r = (np.arange(k, dtype=np.float32) + 1) / (k + 1)
        if not at_start_border:
            w[:k] = r
        if not at_end_border:
            w[n - k :] = r[::-1]
    return w


def crop_starts(length: int, crop: int, step: int) -> list[int]:
    """Start offsets covering [0, length) with crops of `crop` px; the last one is shifted back inside."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop, step))
    starts.append(length - crop)
    return sorted(set(starts))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic without overflow warnings (exp of large positive logits)."""
    return (0.5 * np.tanh(0.5 * np.asarray(x, np.float32)) + 0.5).astype(np.float32, copy=False)


def object_bounds(found: np.ndarray) -> Rect | None:
    """(x0, y0, x1, y1) round the True pixels, None when there are none; read from rows and columns, not from every
    pixel's index (8 M of them at 4K)."""
    rows = np.flatnonzero(found.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(found.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def worth_a_closer_look(box: Rect, h: int, w: int, max_area: float) -> bool:
    """L's second look (l_zoom) only pays when its box is a part of the photo, and not a sliver; training's box crops
    (training.data.zoom_crop) follow the same rule."""
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) <= max_area * h * w and min(x1 - x0, y1 - y0) >= 8


def _skip_quiet_crops(crops: list[Rect], counts: list[float], budget: float) -> list[Rect]:
    """Drop the crops with the fewest uncertain/edge pixels while their sum stays within `budget` pixels.

    Only uncertain or edge pixels are ones a local pass is there to change, so the skipped crops can move at most
    about `budget` mask pixels: with budget = skip_budget × object area, IoU with all crops stays ≳ 1 − skip_budget.
    """
    order = sorted(range(len(crops)), key=lambda i: counts[i])
    skipped: set[int] = set()
    total = 0.0
    for i in order:
        if total + counts[i] > budget:
            break
        total += counts[i]
        skipped.add(i)
    return [c for i, c in enumerate(crops) if i not in skipped]


def keep_near_edge(given: np.ndarray, refined: np.ndarray, band_px: float) -> np.ndarray:
    """`refined` within `band_px` of `given`'s edge, `given` beyond it, with a linear fade over the outer half."""
    binary = (given > 0.5).astype(np.uint8)
    if binary.all() or not binary.any():
        return refined
    # Distance of every pixel to the other side of the edge: inside to the nearest background pixel and vice versa.
    dist = np.where(binary > 0, cv2.distanceTransform(binary, cv2.DIST_L2, 3),
                    cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3))
    weight = np.clip((band_px - dist) / (0.5 * band_px), 0.0, 1.0).astype(np.float32)
    return (given + weight * (refined - given)).astype(np.float32)


def keep_unless_sure(
    given: np.ndarray, refined: np.ndarray, confidence: float, soft_confidence: float | None = None
) -> np.ndarray:
    """`refined` where it is at least `confidence` sure (≥ c or ≤ 1 − c), `given` everywhere else. With
    `soft_confidence`, pixels the given mask itself leaves soft (strictly between 0.02 and 0.98: a feathered edge)
    need that much instead: a skip from the given mask (refine_skip) gives them no support."""
    sure = (refined >= confidence) | (refined <= 1.0 - confidence)
    if soft_confidence is not None:  # boolean maps only: no full-size float temporary (133 MB at 8K)
        soft = (given > 0.02) & (given < 0.98)
        sure = np.where(soft, (refined >= soft_confidence) | (refined <= 1.0 - soft_confidence), sure)
    return np.where(sure, refined, given).astype(np.float32)


def _thick_changes(given: np.ndarray, refined: np.ndarray, thickness: int, scale: float = 1.0) -> np.ndarray | None:
    """Where the two 0.5 cuts differ in a patch that survives an opening with a disc of 2·`thickness` + 1 pixels at
    `scale` (a view of the photo that size), with the patches' rims; uint8 at the photo's size, None where no such
    patch exists."""
    h, w = given.shape
    changed = ((given > 0.5) != (refined > 0.5)).astype(np.uint8)
    if not changed.any():
        return None
    shrunk = scale < 1.0
    small = cv2.resize(changed, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if shrunk else changed
    t = 2 * int(thickness) + 1
    thick = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (t, t)))
    if not thick.any():
        return None
    # Grow the patches back a little so their rims count too, then take them at photo resolution.
    grow = np.ones((3, 3), np.uint8)
    keep = cv2.dilate(thick, grow)
    if shrunk:
        keep = cv2.dilate(cv2.resize(keep, (w, h), interpolation=cv2.INTER_NEAREST), grow)
    return keep & changed


def keep_thin_changes(given: np.ndarray, refined: np.ndarray, thickness: int, scale: float) -> np.ndarray:
    """`refined` only where its 0.5-cut differs from `given`'s in a patch that survives an opening with a disc of
    2·`thickness` + 1 pixels at `scale` (H's global pass over the photo), `given` everywhere else."""
    thick = _thick_changes(given, refined, thickness, scale)
    if thick is None:
        return given.astype(np.float32, copy=True)
    return np.where(thick > 0, refined, given).astype(np.float32)


def drop_thick_changes(given: np.ndarray, refined: np.ndarray, thickness: int) -> np.ndarray:
    """`refined`, but `given` inside every patch where their 0.5 cuts differ that survives an opening with a disc of
    2·`thickness` + 1 pixels: a close look may add or remove thin things, not whole parts."""
    thick = _thick_changes(given, refined, thickness)
    if thick is None:
        return refined
    return np.where(thick > 0, given, refined).astype(np.float32)


def thin_parts(mask: np.ndarray, radius: int) -> np.ndarray:
    """The pixels of `mask` (bool) that an opening with a disc of 2·radius + 1 removes: its parts thinner than that
    disc (whiskers, stems, a cigarette), and the tips of its corners."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disc)
    return mask & (opened == 0)


def restore_spared(prob: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """Give the pixels at flat `idx` of `prob` (C-contiguous float32) back their `values` where a step since has
    put them at 0.5 or below; in place."""
    flat = prob.ravel()
    now = flat[idx]
    flat[idx] = np.where(now <= 0.5, values, now)


def mix_whole_look(sub: np.ndarray, whole: np.ndarray, box: Rect, weight: float) -> np.ndarray:
    """L's look at a box (`sub`) mixed with its look at the whole photo (`whole`, cut to the box) at `weight` times
    the share of the whole look's object inside the box: where that look found the boxed subject it counts, where it
    found something outside the box (the sofa beside a boxed television) it hardly does (CascadeConfig)."""
    x0, y0, x1, y1 = box
    inside = whole[y0:y1, x0:x1]
    share = float(inside.sum(dtype=np.float64) / max(float(whole.sum(dtype=np.float64)), 1e-6))
    mix = np.float32(min(1.0, weight) * min(1.0, share))
    return (np.float32(1.0) - mix) * sub + mix * inside


def _to_rgb_array(image: object) -> np.ndarray:
    rgb = getattr(image, "rgb", image)
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise MosError(f"expected an H×W×3 uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def _to_prob(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != shape:
        raise MaskError(None, f"mask is {m.shape[1]}×{m.shape[0]} but the image is {shape[1]}×{shape[0]}")
    if m.dtype == bool:
        return m.astype(np.float32)
    if m.dtype == np.uint8:
        return m.astype(np.float32) / 255.0
    if m.dtype == np.uint16:
        return m.astype(np.float32) / 65535.0
    return np.clip(m.astype(np.float32), 0.0, 1.0)


def _clip_rect(rect: Rect, w: int, h: int, what: str) -> Rect:
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise MosError(f"{what} {rect} is smaller than 8×8 pixels inside the {w}×{h} image")
    return x0, y0, x1, y1


def cap_by_l(prob: np.ndarray, coarse: np.ndarray, add_floor: float | None, keep_floor: float | None) -> None:
    """Cap H's answer (float32, in place) by L's: no object added where L said below `add_floor` (H's probability at
    most L's / add_floor), none removed where L said above 1 − `keep_floor` (H's background probability at most
    L's / keep_floor). In bands of rows, so an 8K cut makes no full-size temporaries (133 MB each)."""
    for r in range(0, prob.shape[0], 256):
        band, low = prob[r:r + 256], coarse[r:r + 256]
        if add_floor:
            np.minimum(band, low * np.float32(1.0 / add_floor), out=band)
        if keep_floor:
            np.maximum(band, 1 - (1 - low) * np.float32(1.0 / keep_floor), out=band)


class Cascade:
    """Runs L then H; holds both models on one device. Thread-compatible: one call at a time per instance."""

    def __init__(
        self,
        l_model: MeticulousNet | None,
        h_model: MeticulousNet | None,
        device: str | torch.device | None = None,
        config: CascadeConfig | None = None,
        h_small_model: MeticulousNet | None = None,
    ) -> None:
        if l_model is not None and l_model.in_channels != 3:
            raise MosError("the L model must take RGB (in_channels=3)")
        for what, model in (("H", h_model), ("small-photo H", h_small_model)):
            if model is not None and model.in_channels != 4:
                raise MosError(f"the {what} model must take RGB + mask (in_channels=4)")
        self.device = pick_device(device)
        self.config = config or CascadeConfig()
        if self.config.runtime not in ("auto", "onnxruntime", "torch"):
            raise MosError(f"runtime {self.config.runtime!r}: choose auto, onnxruntime or torch")
        self.l_model = l_model.to(self.device).eval() if l_model is not None else None
        self.h_model = h_model.to(self.device).eval() if h_model is not None else None
        self.h_small_model = h_small_model.to(self.device).eval() if h_small_model is not None else None
        self.model_paths: dict[str, Path] = {}
        self.last_zoom_box: Rect | None = None  # the box of the last run_low's closer look (l_zoom), if it took one
        self._fast: dict[int, object] = {}  # id(model) → its optimised runner, made on first use
        self._skip_h: MeticulousNet | None = None  # H with the refine skip (refine_skip), made on first use
        self._threads = self.config.threads or 0  # threads of the call in progress (0: not in a call)
        self._keep_buffers = False  # this call keeps ONNX Runtime's buffers after each pass (a region re-refine)
        self.device_name = describe_device(self.device, self._threads_label(), self._runtime_label())

    def _threads_label(self) -> int | str | None:
        """What the thread count will be, before a call picks it: fixed, from $MOS_THREADS, or "auto"."""
        if not self.config.optimized:
            return None
        if self.config.threads:
            return self.config.threads
        try:
            return parse_threads(os.environ.get(THREADS_ENV)) or "auto"
        except ValueError:
            return "auto"

    def _wants_ort(self) -> bool:
        return self.config.optimized and self.device.type == "cpu" and self.config.runtime != "torch"

    def _runtime_label(self) -> str:
        if self.device.type != "cpu":
            return ""
        if not self.config.optimized:
            return "PyTorch reference"
        if self._fast:
            return "ONNX Runtime" if any(not isinstance(r, torch.nn.Module) for r in self._fast.values()) else "PyTorch"
        from .runtime import onnxruntime_available

        return "ONNX Runtime" if self._wants_ort() and onnxruntime_available() else "PyTorch"

    @classmethod
    def from_pretrained(
        cls,
        models_dir: str | Path | None = None,
        encoder: str = "default",
        device: str | torch.device | None = None,
        config: CascadeConfig | None = None,
        stages: str = "LH",
    ) -> Cascade:
        """Load verified weights for `stages` ("LH", "L" or "H"); raises WeightsError when one is missing.

        Without an explicit `config`, L runs as its card's `inference` entry says: `l_size` (the size it was
        trained at; else the paper's 336 px, since a model run far from its training scale loses accuracy) and
        `l_flip` (mirror averaging, when it measurably helped that model on held-out data) and `l_aspect` (L at the
        photo's own aspect ratio); and H as its card's
        says: `local_passes` (whether its full-resolution crops measurably improved held-out masks) and
        `refine_confidence`, `refine_min_change`, `refine_flip`, `refine_skip`, `refine_soft_confidence`,
        `refine_rough_confidence` and the `refine_rough_*` settings of a rough refine's cut (the refine guards
        measured best for that H; the shipped card names none of the latter, so CascadeConfig's stand),
        `add_floor`, `h_flip`, `h_upscale` and the `upscale_*` settings of a cut's enlarged edge pass,
        `edge_radius` / `edge_eps` (the edge snap; see CascadeConfig), and `box_context` (how far past a box prompt
        H looks; L's card names `box_whole_mix`).

        With "LH", H's small-photo weights ("Hs") are loaded too when the folder has them (they serve cuts only).
        """
        from .weights import load_model, read_card, weights_path

        paths = {s: weights_path(models_dir, encoder, s) for s in stages}
        if "L" in paths and "H" in paths:
            small = weights_path(models_dir, encoder, "Hs")
            if small.is_file():  # optional; a broken one is an error like any other weights file
                paths["Hs"] = small
        models = {s: load_model(p) for s, p in paths.items()}
        if config is None:
            config = CascadeConfig()
            if "L" in paths:
                inference = read_card(paths["L"]).get("inference", {})
                size = inference.get("l_size")
                if isinstance(size, int) and 32 <= size <= 4096:
                    config.l_size = size
                for key in ("l_flip", "l_aspect", "l_blend", "l_zoom"):
                    if isinstance(inference.get(key), bool):
                        setattr(config, key, inference[key])
                for key in ("l_zoom_margin", "l_zoom_max", "l_zoom_mix", "l_colour_mix",
                            "box_whole_mix", "box_l_context"):  # shares, each in [0, 1]
                    value = inference.get(key)
                    if isinstance(value, float) and 0.0 <= value <= 1.0:
                        setattr(config, key, value)
            if "H" in paths:
                h_inference = read_card(paths["H"]).get("inference", {})
                for key in ("local_passes", "h_flip", "h_upscale", "upscale_flip", "refine_flip"):  # switches
                    if isinstance(h_inference.get(key), bool):
                        setattr(config, key, h_inference[key])
                # Counts and sizes, each within a sane range (a JSON true is no int here).
                ranges = (("upscale_passes", 1, 4), ("upscale_size", 256, 4096), ("refine_min_change", 1, 16),
                          ("local_thin", 1, 64), ("snap_spare_thin", 1, 16))
                for key, lo, hi in ranges:
                    value = h_inference.get(key)
                    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
                        setattr(config, key, value)
                skip = h_inference.get("refine_skip")
                if isinstance(skip, float) and 0.0 <= skip <= 4.0:  # H's residual skip for whole-mask refines
                    config.refine_skip = skip
                conf = h_inference.get("refine_confidence")
                if isinstance(conf, float) and 0.5 <= conf < 1.0:  # how sure this H must be to move a given edge
                    config.refine_confidence = conf
                conf = h_inference.get("refine_rough_confidence")
                if isinstance(conf, float) and 0.5 <= conf < 1.0:  # ... and a mask the user calls rough
                    config.refine_rough_confidence = conf
                if isinstance(h_inference.get("refine_rough_cut"), bool):  # a rough selection is cut out again
                    config.refine_rough_cut = h_inference["refine_rough_cut"]
                for key, lo, hi in (("refine_rough_pad", 0.0, 0.5), ("refine_rough_band", 0.0, 0.5),
                                    ("refine_rough_mix", 0.0, 1.0), ("refine_rough_box_fill", 0.5, 1.0),
                                    ("refine_rough_clear", 0.0, 0.5),
                                    ("refine_rough_min_keep", 0.0, 1.0)):  # shares, each within a sane range
                    value = h_inference.get(key)
                    if isinstance(value, float) and lo <= value <= hi:
                        setattr(config, key, value)
                conf = h_inference.get("refine_soft_confidence")
                if isinstance(conf, float) and 0.5 <= conf < 1.0:  # ... and a given mask's feathered pixels
                    config.refine_soft_confidence = conf
                floor = h_inference.get("add_floor")
                if isinstance(floor, float) and 0.0 < floor < 1.0:  # where L's "background" is final for this H
                    config.add_floor = floor
                floor = h_inference.get("keep_floor")
                if isinstance(floor, float) and 0.0 < floor < 1.0:  # where L's "object" is final for this H
                    config.keep_floor = floor
                radius = h_inference.get("edge_radius")
                if isinstance(radius, int) and not isinstance(radius, bool) and 1 <= radius <= 32:
                    config.edge_radius = radius
                eps = h_inference.get("edge_eps")
                if isinstance(eps, float) and 0.0 < eps <= 1.0:
                    config.edge_eps = eps
                sure = h_inference.get("snap_spare_sure")
                if isinstance(sure, float) and 0.5 < sure < 1.0:  # where the snap may not remove H's crops' object
                    config.snap_spare_sure = sure
                context = h_inference.get("box_context")
                if isinstance(context, float) and 0.0 <= context <= 4.0:  # how far past a box prompt H looks
                    config.box_context = context
                gain = h_inference.get("upscale_gain")
                if isinstance(gain, float) and 1.0 <= gain <= 10.0:
                    config.upscale_gain = gain
        cascade = cls(models.get("L"), models.get("H"), device=device, config=config, h_small_model=models.get("Hs"))
        cascade.model_paths = paths
        return cascade

    def look_at_box(self, rgb: np.ndarray, box: Rect,
                    check: Callable[[], None] | None = None) -> tuple[np.ndarray, list[StageMap]]:
        """L's answer for a box prompt, the box's size: L looks at the box grown by box_l_context of its long side
        (so an object the user boxed tightly does not touch the edge of what L sees), and with box_whole_mix its
        look is mixed with its look at the whole photo."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box
        pad = round(self.config.box_l_context * max(x1 - x0, y1 - y0))
        X0, Y0, X1, Y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        sub, stages = self.run_low(rgb[Y0:Y1, X0:X1])
        if (X0, Y0, X1, Y1) != box:
            sub = np.ascontiguousarray(sub[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0])
            # L's stage maps (at its own resolution) cut to the box too: the app lays them over the box.
            def cut(a: np.ndarray) -> np.ndarray:
                mh, mw = a.shape
                fy, fx = mh / (Y1 - Y0), mw / (X1 - X0)
                r0, c0 = int(round((y0 - Y0) * fy)), int(round((x0 - X0) * fx))
                r1, c1 = max(r0 + 1, int(round((y1 - Y0) * fy))), max(c0 + 1, int(round((x1 - X0) * fx)))
                return np.ascontiguousarray(a[r0:r1, c0:c1])
            stages = [StageMap(m.name, cut(m.uncertainty), cut(m.prediction)) for m in stages]
        if self.config.box_whole_mix > 0 and box != (0, 0, w, h):
            if check is not None:
                check()
            sub = mix_whole_look(sub, self.run_low(rgb)[0], box, self.config.box_whole_mix)
        return sub, stages

    def _snap_spared(self, refined: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The flat indices and values of H's object pixels the edge snap may not take away (snap_spare_thin,
        snap_spare_sure), or None when neither is set or there are none."""
        cfg = self.config
        if not cfg.snap_spare_thin and cfg.snap_spare_sure is None:
            return None
        obj = refined > 0.5
        scale = min(1.0, cfg.global_size / max(refined.shape))
        thin = thin_parts(obj, max(1, round(max(1, cfg.snap_spare_thin) / scale)))
        spare = thin if cfg.snap_spare_thin else np.zeros_like(obj)
        if cfg.snap_spare_sure is not None:
            spare |= refined >= cfg.snap_spare_sure
        # Only what hangs on to a part thicker than that: a whisker or a cigarette, not the loose specks a crop
        # leaves over a busy background (the wisteria's florets), which the snap should still clear.
        n, labels = cv2.connectedComponents(obj.view(np.uint8), connectivity=8)
        rooted = np.zeros(n, bool)
        rooted[np.unique(labels[obj & ~thin])] = True
        rooted[0] = False
        spare &= rooted[labels]
        idx = np.flatnonzero(spare)
        return (idx, refined.ravel()[idx]) if idx.size else None

    def _refine_model(self) -> MeticulousNet | None:
        """H as a whole-mask refine runs it: with the residual skip when `refine_skip` asks for one."""
        skip = 0.0 if self.config.refine_rough else self.config.refine_skip
        if self.h_model is None or not skip or skip == self.h_model.mask_skip:
            return self.h_model
        if self._skip_h is None or self._skip_h.mask_skip != skip:
            if not 0.0 < skip <= 4.0:
                raise MosError(f"refine_skip {skip}: choose a value in [0, 4]")
            self._skip_h = copy.deepcopy(self.h_model)
            self._skip_h.mask_skip = float(skip)
        return self._skip_h

    # ------------------------------------------------------------------------------------------------ forward passes
    def _runner(self, model: MeticulousNet):
        """The optimised form of `model` (made once): an ONNX Runtime model on CPU when possible, else a PyTorch
        copy with BatchNorm folded (channels-last on CPU)."""
        key = id(model)
        if key not in self._fast:
            runner: object | None = None
            if self._wants_ort():
                from .runtime import OrtModel, notice_once, onnxruntime_available

                if not onnxruntime_available():
                    if self.config.runtime == "onnxruntime":
                        raise MosError("runtime 'onnxruntime' requested but onnxruntime is not installed")
                    notice_once("onnxruntime is not installed; running on PyTorch, about 2x slower on CPU "
                                "(pip install 'mos-studio[fast]')")
                else:
                    try:
                        runner = OrtModel(model)
                    except Exception as err:  # noqa: BLE001 - any export/session failure falls back, visibly
                        if self.config.runtime == "onnxruntime":
                            raise MosError(f"ONNX Runtime could not run the model: {err}") from err
                        notice_once(f"ONNX Runtime could not run the model ({type(err).__name__}: {err}); "
                                    "running on PyTorch")
            self._fast[key] = runner if runner is not None else inference_copy(model, self.device.type == "cpu")
            self.device_name = describe_device(self.device, self._threads_label(), self._runtime_label())
        return self._fast[key]

    def _forward(
        self, model: MeticulousNet, x: np.ndarray, mask: np.ndarray | None = None, stages: bool | None = None
    ):
        """One pass on an H×W×3 uint8 array (+ H×W float mask): (probability, stage maps if `stages`, which
        defaults to the config's `stage_maps`)."""
        stages = self.config.stage_maps if stages is None else stages
        runner = self._runner(model) if self.config.optimized else model
        if not isinstance(runner, torch.nn.Module):  # ONNX Runtime
            chw = np.empty((model.in_channels, *x.shape[:2]), np.float32)
            np.multiply(x.transpose(2, 0, 1), np.float32(1 / 255), out=chw[:3])
            if mask is not None:
                chw[3] = mask
            logits, maps = runner(chw, self._threads or pick_threads(self.config.threads), stages,
                                  release=not self._keep_buffers)
            prob = _sigmoid(logits)
            return prob, [StageMap(n, np.ascontiguousarray(u), _sigmoid(p)) for n, u, p in maps]
        t = torch.from_numpy(np.require(x, requirements=("C", "W"))).to(self.device).permute(2, 0, 1).unsqueeze(0)
        t = t.float().div_(255.0)
        if mask is not None:
            m = torch.from_numpy(np.require(mask, np.float32, ("C", "W"))).to(self.device)
            t = torch.cat([t, m[None, None]], 1)
        if runner is not model and self.device.type == "cpu":
            t = t.contiguous(memory_format=torch.channels_last)
        use_half = self.device.type == "cuda" and self.config.half_on_cuda
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_half):
            out = runner(t)
            prob = torch.sigmoid(out.logits.float())[0, 0].cpu().numpy()
            maps = [
                StageMap(
                    s.name,
                    s.uncertainty.float()[0, 0].cpu().numpy(),
                    torch.sigmoid(s.prediction.float())[0, 0].cpu().numpy(),
                )
                for s in out.stages
            ] if stages or not self.config.optimized else []
        return prob, maps

    def l_input_size(self, h: int, w: int) -> tuple[int, int]:
        """(width, height) L sees for an h×w photo: l_size² squashed, or with l_aspect the photo's own shape."""
        s = self.config.l_size
        if not self.config.l_aspect:
            return s, s
        f = s / max(h, w)
        return max(32, round(w * f)), max(32, round(h * f))

    def l_blend_size(self, h: int, w: int) -> tuple[int, int]:
        """(width, height) of L's second, own-shape input under l_blend: short side l_size, long side at most
        4/3·l_size, each rounded to a multiple of 32 (the encoder's stride, so no side is padded or cut)."""
        s = self.config.l_size
        f = min(s / min(h, w), (4 * s / 3) / max(h, w))
        return max(32, round(w * f / 32) * 32), max(32, round(h * f / 32) * 32)

    def run_low(self, image: object) -> tuple[np.ndarray, list[StageMap]]:
        """L alone: the image squashed to l_size² (or, with l_aspect, its long side at l_size), probability resized
        back to the image's size; with l_blend averaged with L on the photo's own shape, with l_zoom mixed with L's
        closer look at the box around its answer, with l_colour_mix its unsure band moved towards a colour model's
        label (stage maps always from the first pass)."""
        if self.l_model is None:
            raise MosError("this cascade has no L model loaded")
        rgb = _to_rgb_array(image)
        h, w = rgb.shape[:2]
        small = _resize(rgb, self.l_input_size(h, w))
        # L is tiny at l_size², so a mirrored second pass costs little and evens out one-sided mistakes.
        prob, stages = self._mirrored_pass(self.l_model, small, None, self.config.l_flip)
        prob = _resize(prob, (w, h), shrink_ok=False)
        if self.config.l_blend:
            other, _ = self._mirrored_pass(self.l_model, _resize(rgb, self.l_blend_size(h, w)), None,
                                           self.config.l_flip)
            prob = 0.5 * (prob + _resize(other, (w, h), shrink_ok=False))
        box = self.zoom_box(prob) if self.config.l_zoom else None
        self.last_zoom_box = box  # read by benchmarks/bench_cascade.py to count the second look's FLOPs
        if box is not None:
            x0, y0, x1, y1 = box
            sub = _resize(rgb[y0:y1, x0:x1], self.l_input_size(y1 - y0, x1 - x0))
            near, _ = self._mirrored_pass(self.l_model, sub, None, self.config.l_flip)
            near = np.asarray(_resize(near, (x1 - x0, y1 - y0), shrink_ok=False), dtype=np.float32)
            mix = np.float32(np.clip(self.config.l_zoom_mix, 0.0, 1.0))
            prob = np.require(prob, np.float32, ("C", "W"))  # this call's own array: mixed in place (33 MB at 4K)
            inside = prob[y0:y1, x0:x1]
            inside *= np.float32(1.0) - mix
            near *= mix
            inside += near
        if self.config.l_colour_mix > 0:
            prob = colour_band(rgb, prob, self.config.l_colour_mix)
        return prob.astype(np.float32, copy=False), stages

    def zoom_box(self, prob: np.ndarray) -> Rect | None:
        """The box L's second, closer look covers: its answer's bounding box widened by l_zoom_margin of the box's
        long side; None when L found nothing or the box would cover more than l_zoom_max of the photo."""
        h, w = prob.shape[:2]
        tight = object_bounds(prob > self.config.threshold)
        if tight is None:
            return None
        x0, y0, x1, y1 = tight
        pad = int(round(self.config.l_zoom_margin * max(y1 - y0, x1 - x0)))
        box = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        return box if worth_a_closer_look(box, h, w, self.config.l_zoom_max) else None

    def _mirrored_pass(
        self, model: MeticulousNet, rgb: np.ndarray, mask: np.ndarray | None, flip: bool
    ) -> tuple[np.ndarray, list[StageMap]]:
        """One pass of `model` (L, or H with its mask), averaged with the pass on the mirror image when `flip`."""
        prob, stages = self._forward(model, rgb, mask)
        if flip:
            # The same graph as the first pass (stage maps and all): a logits-only graph would cost a new process a
            # second ONNX Runtime session, about 1.5 s, far more than the maps.
            flipped, _ = self._forward(model, np.ascontiguousarray(rgb[:, ::-1]),
                                       None if mask is None else np.ascontiguousarray(mask[:, ::-1]))
            prob = 0.5 * (prob + flipped[:, ::-1])
        return prob, stages

    def _enlarged_pass(
        self, model: MeticulousNet, rgb: np.ndarray, coarse: np.ndarray, size: int, flip: bool, cancel: CancelLike
    ) -> np.ndarray:
        """H on the region enlarged to `size` (bicubic, which keeps edges crisper than bilinear), run
        `upscale_passes` times, each fed the last answer capped as the cut's result is (add_floor against the
        coarse mask); area-averaged back to the region's size."""
        h, w = rgb.shape[:2]
        f = size / max(h, w)
        ew, eh = max(8, round(w * f)), max(8, round(h * f))
        e_rgb = cv2.resize(rgb, (ew, eh), interpolation=cv2.INTER_CUBIC)
        e_coarse = _resize(coarse, (ew, eh))
        prob = e_coarse
        for n in range(max(1, self.config.upscale_passes)):
            if _is_cancelled(cancel):
                raise Cancelled("cancelled during H's enlarged pass; nothing was changed")
            if n and (self.config.add_floor or self.config.keep_floor):
                prob = np.array(prob, np.float32)
                cap_by_l(prob, e_coarse, self.config.add_floor, self.config.keep_floor)
            prob, _ = self._mirrored_pass(model, e_rgb, np.ascontiguousarray(prob, dtype=np.float32), flip)
        return np.clip(_resize(prob, (w, h)), 0.0, 1.0)

    def _refine(
        self,
        rgb: np.ndarray,
        coarse: np.ndarray,
        progress: ProgressFn,
        cancel: CancelLike,
        timings: dict[str, float],
        crops_run: list[Rect] | None = None,
        local_passes: bool | None = None,
        global_size: int | None = None,
        flip: bool = False,
        upscale: bool = False,
        model: MeticulousNet | None = None,
    ) -> tuple[np.ndarray, list[StageMap]]:
        """H (or `model`) on one region: global pass at a bounded size, then local passes where it is uncertain."""
        if model is None:
            model = self.h_model
        assert model is not None
        cfg = self.config
        h, w = rgb.shape[:2]
        t0 = time.perf_counter()
        size = global_size or cfg.global_size
        scale = min(1.0, size / max(h, w))
        gw, gh = max(8, round(w * scale)), max(8, round(h * scale))
        progress("H global", 0.0)
        g_rgb, g_coarse = _resize(rgb, (gw, gh)), _resize(coarse, (gw, gh))
        g_prob, stages = self._mirrored_pass(model, g_rgb, g_coarse, flip)
        enlarged = min(size, cfg.upscale_size or size)
        upscaled = upscale and max(h, w) < enlarged
        if upscaled:
            # 1:1 says what the object is; an enlarged view says where its edge lies, near that answer's edge.
            # (The stage maps stay the 1:1 pass's: the inspector and the soft-edge step read them at that size.)
            edge = self._enlarged_pass(model, rgb, coarse, enlarged, flip and cfg.upscale_flip, cancel)
            if cfg.upscale_gain:
                edge = np.minimum(edge, g_prob * np.float32(cfg.upscale_gain))
            g_prob = keep_near_edge(g_prob, edge, max(8.0, cfg.upscale_band * max(h, w)))
        timings["H global"] = timings.get("H global", 0.0) + time.perf_counter() - t0
        progress("H global", 1.0)
        if upscaled:
            return g_prob.astype(np.float32, copy=False), stages  # 1:1 crops would see less than the enlarged pass
        local = cfg.local_passes if local_passes is None else local_passes
        if not local or (scale == 1.0 and max(h, w) <= cfg.crop_size):
            return _resize(g_prob, (w, h), shrink_ok=False), stages

        t0 = time.perf_counter()
        # Where to look: uncertain pixels and the edge of the global mask, found at global resolution (cheap).
        lo, hi = cfg.uncertain_band
        uncertain = (g_prob > lo) & (g_prob < hi)
        binary = (g_prob > cfg.threshold).astype(np.uint8)
        k = 2 * max(1, int(np.ceil(cfg.boundary_px * scale))) + 1
        edge = cv2.morphologyEx(binary, cv2.MORPH_GRADIENT, np.ones((k, k), np.uint8)) > 0
        need = (uncertain | edge).astype(np.float32)
        # Fraction of "need" pixels per crop via an integral image.
        integral = cv2.integral(need)
        fine = _resize(g_prob, (w, h), shrink_ok=False).astype(np.float32, copy=False)
        c = min(cfg.crop_size, max(h, w))
        step = max(16, c - cfg.crop_overlap)
        crops: list[Rect] = []
        counts: list[float] = []
        for y in crop_starts(h, c, step):
            for x in crop_starts(w, c, step):
                y1, x1 = min(h, y + c), min(w, x + c)
                gy0, gx0 = int(y * gh / h), int(x * gw / w)
                gy1, gx1 = max(gy0 + 1, int(np.ceil(y1 * gh / h))), max(gx0 + 1, int(np.ceil(x1 * gw / w)))
                count = integral[gy1, gx1] - integral[gy0, gx1] - integral[gy1, gx0] + integral[gy0, gx0]
                if count / ((gy1 - gy0) * (gx1 - gx0)) >= cfg.min_uncertain_fraction and count > 0:
                    crops.append((x, y, x1, y1))
                    counts.append(float(count))
        if cfg.optimized and cfg.skip_budget > 0 and crops:
            crops = _skip_quiet_crops(crops, counts, cfg.skip_budget * float(binary.sum()))
        if crops_run is not None:
            crops_run += crops
        if not crops:
            return fine, stages
        acc = np.zeros((h, w), np.float32)
        wsum = np.zeros((h, w), np.float32)
        for i, (x0, y0, x1, y1) in enumerate(crops):
            if _is_cancelled(cancel):
                raise Cancelled("cancelled during H's local passes; nothing was changed")
            p, _ = self._forward(model, rgb[y0:y1, x0:x1], fine[y0:y1, x0:x1], stages=False)
            if cfg.local_thin:
                p = drop_thick_changes(fine[y0:y1, x0:x1], p, cfg.local_thin)
            wy = _ramp(y1 - y0, cfg.crop_overlap, y0 == 0, y1 == h)
            wx = _ramp(x1 - x0, cfg.crop_overlap, x0 == 0, x1 == w)
            wgt = wy[:, None] * wx[None, :]
            acc[y0:y1, x0:x1] += p * wgt
            wsum[y0:y1, x0:x1] += wgt
            progress("H local", (i + 1) / len(crops))
        # Blend factor = clipped weight sum: 1 where crops fully cover, fading to the global result at lone edges.
        # fine += alpha · (mean of crops − fine), in place: at 8K each full-size float32 map is 133 MB.
        np.divide(acc, wsum, out=acc, where=wsum > 0)
        alpha = np.minimum(wsum, 1.0, out=wsum)
        acc -= fine
        acc *= alpha
        fine += acc
        del acc, wsum, alpha
        timings["H local"] = timings.get("H local", 0.0) + time.perf_counter() - t0
        timings["H crops"] = float(len(crops))
        return fine, stages

    def _rough_box(self, selected: np.ndarray) -> tuple[Rect, bool] | None:
        """The box a rough selection's cut looks in (its bounding box widened by refine_rough_pad of the long side),
        and whether the selection fills its bounding box (a rectangle: refine_rough_box_fill). None for an empty
        selection, which the H-only path handles."""
        bounds = object_bounds(selected)
        if bounds is None:
            return None
        h, w = selected.shape
        x0, y0, x1, y1 = bounds
        boxy = np.count_nonzero(selected) >= self.config.refine_rough_box_fill * (x1 - x0) * (y1 - y0)
        pad = round(self.config.refine_rough_pad * max(h, w))
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        return (x0, y0, x1, y1), boxy

    def _rough_cut(self, rgb: np.ndarray, given: np.ndarray, selected: np.ndarray, box: Rect, boxy: bool,
                   report: ProgressFn, cancel: CancelLike, t_start: float) -> Result | None:
        """A rough selection refined as a cut inside its box, taken near the selection's edge and, inside it, where
        the cut is sure of background; None when the cut kept too little of the selection to be trusted."""
        h, w = given.shape
        result = self._call(rgb, mask=None, roi=None, box=box, progress=report, cancel=cancel,
                            selection=None if boxy else given, rough=True)
        band = max(8.0, self.config.refine_rough_band * max(h, w))
        cut = result.probability
        prob = keep_near_edge(given, cut, band)
        if self.config.refine_rough_clear is not None:
            np.copyto(prob, cut, where=selected & (cut < np.float32(self.config.refine_rough_clear)))
        prob = np.ascontiguousarray(prob, dtype=np.float32)
        kept = np.count_nonzero(prob[selected] > self.config.threshold)
        if kept < self.config.refine_rough_min_keep * np.count_nonzero(selected):
            return None
        result.probability = prob
        result.mask = prob > self.config.threshold
        result.timings["total"] = time.perf_counter() - t_start
        return result

    # ------------------------------------------------------------------------------------------------------- public
    def __call__(
        self,
        image: object,
        *,
        mask: np.ndarray | None = None,
        roi: Rect | None = None,
        box: Rect | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelLike = None,
    ) -> Result:
        """Segment (or, given `mask`, refine) one image. See docs/CONTRACTS.md for the arguments."""
        if self.device.type != "cpu" or not self.config.optimized:
            return self._call(image, mask=mask, roi=roi, box=box, progress=progress, cancel=cancel)
        # Threads are chosen per call from the cores free right now, and PyTorch's pool is put back afterwards.
        threads = pick_threads(self.config.threads)
        before = torch.get_num_threads()
        self._threads = threads
        self._keep_buffers = roi is not None and self.config.keep_buffers_for_regions
        try:
            if threads != before:
                torch.set_num_threads(threads)
            result = self._call(image, mask=mask, roi=roi, box=box, progress=progress, cancel=cancel)
        finally:
            self._threads = 0
            self._keep_buffers = False
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
        result.device = describe_device(self.device, threads, self._runtime_label())
        result.timings["threads"] = float(threads)
        return result

    def _call(
        self,
        image: object,
        *,
        mask: np.ndarray | None,
        roi: Rect | None,
        box: Rect | None,
        progress: ProgressFn | None,
        cancel: CancelLike,
        selection: np.ndarray | None = None,
        rough: bool = False,
    ) -> Result:
        rgb = _to_rgb_array(image)
        h, w = rgb.shape[:2]
        report: ProgressFn = progress or (lambda stage, fraction: None)
        timings: dict[str, float] = {}
        stages: dict[str, list[StageMap]] = {}
        t_start = time.perf_counter()

        def check() -> None:
            if _is_cancelled(cancel):
                raise Cancelled("cancelled; nothing was changed")

        check()
        if (mask is not None and roi is None and box is None and self.config.refine_rough
                and self.config.refine_rough_cut and self.l_model is not None and self.h_model is not None):
            given = _to_prob(mask, (h, w))
            selected = given > 0.5
            found = self._rough_box(selected)
            rough = None if found is None else self._rough_cut(rgb, given, selected, *found, report, cancel, t_start)
            if rough is not None:
                return rough
        region: Rect = (0, 0, w, h)
        if mask is not None:
            coarse = _to_prob(mask, (h, w))
        elif box is not None:
            region = _clip_rect(box, w, h, "box")
            x0, y0, x1, y1 = region
            report("L", 0.0)
            t0 = time.perf_counter()
            if rough:
                sub, stages["L"] = self.run_low(rgb[y0:y1, x0:x1])
            else:
                sub, stages["L"] = self.look_at_box(rgb, region, check)
            if selection is not None:  # a rough refine: L's answer averaged with the user's selection (_rough_cut)
                mix = np.float32(self.config.refine_rough_mix)
                sub = mix * sub + (np.float32(1.0) - mix) * selection[y0:y1, x0:x1]
            timings["L"] = time.perf_counter() - t0
            coarse = np.zeros((h, w), np.float32)
            coarse[y0:y1, x0:x1] = sub
            report("L", 1.0)
        else:
            report("L", 0.0)
            t0 = time.perf_counter()
            coarse, stages["L"] = self.run_low(rgb)
            timings["L"] = time.perf_counter() - t0
            report("L", 1.0)
        if roi is not None:
            region = _clip_rect(roi, w, h, "region")
        box_region = None  # a box prompt whose H pass looks past the box: the box, cleared outside afterwards
        if box is not None and not rough and mask is None and self.config.box_context > 0:
            long_side = max(region[2] - region[0], region[3] - region[1])
            grow = round(self.config.box_context * long_side)
            # Context, but never at the cost of H's resolution in the box: the grown box stays within H's pass.
            grow = min(grow, max(0, self.config.global_size - long_side) // 2)
            box_region, region = region, (max(0, region[0] - grow), max(0, region[1] - grow),
                                          min(w, region[2] + grow), min(h, region[3] + grow))
        check()

        prob = coarse
        crops: list[Rect] = []
        h_weights = ""
        if self.h_model is not None:
            x0, y0, x1, y1 = region
            # Guards for refining a whole given mask (mos refine, GIMP's Refine Selection). A region re-refine
            # (`roi`, the app's rectangle or lasso) is the user asking for H's answer there, so it is not guarded.
            guarded = mask is not None and roi is None
            cut = mask is None and roi is None
            small = (cut and self.config.small_h and self.h_small_model is not None
                     and max(x1 - x0, y1 - y0) <= self.config.global_size)
            h_weights = "Hs" if small else "H"
            local: list[Rect] = []
            refined, stages["H"] = self._refine(
                rgb[y0:y1, x0:x1], coarse[y0:y1, x0:x1], report, cancel, timings, local,
                local_passes=(self.config.refine_local_passes and self.config.local_passes) if guarded else None,
                # A region re-refine is interactive: one pass. Photos larger than the global pass gained nothing
                # from the mirror (12 held-out ≥ 1.5K px: 0.656 / 0.627 without, 0.654 / 0.625 with) and a 4K `mos
                # cut` paid 0.7 s for it; at 1:1 it gained 0.7 mBA points (60 random held-out photos). A whole given
                # mask may take it at any size (refine_flip): there it makes H's changes harder to be sure of.
                flip=self.config.h_flip and roi is None and (
                    max(x1 - x0, y1 - y0) <= self.config.global_size or (guarded and self.config.refine_flip)),
                global_size=min(self.config.region_size, self.config.global_size)
                if roi is not None and self.config.region_size else None,
                # Measured on cuts only: a given mask (mos refine) and a region re-refine take the 1:1 pass.
                upscale=self.config.h_upscale and cut,
                model=self.h_small_model if small else (self._refine_model() if guarded else self.h_model),
            )
            if guarded and self.config.refine_rough:
                refined = keep_unless_sure(coarse[y0:y1, x0:x1], refined, self.config.refine_rough_confidence)
            elif guarded and self.config.refine_confidence is not None:
                refined = keep_unless_sure(coarse[y0:y1, x0:x1], refined, self.config.refine_confidence,
                                           self.config.refine_soft_confidence)
            scale = min(1.0, self.config.global_size / max(x1 - x0, y1 - y0))
            if guarded and self.config.refine_min_change and scale < 1.0:  # at 1:1 H's own pixels are the photo's
                refined = keep_thin_changes(coarse[y0:y1, x0:x1], refined, self.config.refine_min_change, scale)
            if guarded and self.config.refine_band is not None:
                band = max(8.0, self.config.refine_band * max(h, w))
                refined = keep_near_edge(coarse[y0:y1, x0:x1], refined, band)
            if cut and self.config.cut_band is not None:
                refined = keep_near_edge(coarse[y0:y1, x0:x1], refined, max(8.0, self.config.cut_band * max(h, w)))
            if cut and (self.config.add_floor or self.config.keep_floor):
                refined = np.require(refined, np.float32, ("C", "W"))
                cap_by_l(refined, coarse[y0:y1, x0:x1], self.config.add_floor, self.config.keep_floor)
            if not guarded and self.config.edge_radius:
                t0 = time.perf_counter()
                refined = np.require(refined, np.float32, ("C", "W"))  # H's own array: filtered in place
                spared = self._snap_spared(refined) if local else None
                snap_to_edges(rgb[y0:y1, x0:x1], refined, self.config.edge_radius, self.config.edge_eps,
                              self.config.global_size, out=refined, cut_only=True)
                if spared is not None:
                    restore_spared(refined, *spared)
                timings["edges"] = time.perf_counter() - t0
            crops = [(a + x0, b + y0, c + x0, d + y0) for a, b, c, d in local]
            prob = coarse.copy() if (x0, y0, x1, y1) != (0, 0, w, h) else refined
            if prob is not refined:
                prob[y0:y1, x0:x1] = refined
            if box_region is not None:  # the user's box: nothing outside it is object
                bx0, by0, bx1, by1 = box_region
                prob = np.require(prob, np.float32, ("C", "W"))
                prob[:by0] = 0.0
                prob[by1:] = 0.0
                prob[:, :bx0] = 0.0
                prob[:, bx1:] = 0.0
        elif mask is not None:
            raise MosError("refining a mask needs the H model, which is not loaded")
        prob = np.ascontiguousarray(prob, dtype=np.float32)
        timings["total"] = time.perf_counter() - t_start
        report("done", 1.0)
        return Result(
            mask=prob > self.config.threshold,
            probability=prob,
            stages=stages,
            device=self.device_name,
            timings=timings,
            crops=crops,
            h_weights=h_weights,
            region=None if region == (0, 0, w, h) else region,
        )

