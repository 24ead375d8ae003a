"""L's unsure band re-decided by colour: GrabCut's colour mixtures fitted on what L is sure of.

L sometimes lands a little on the wrong side of 0.5 where the colours leave no doubt: `make run`'s cup keeps a wedge
of wooden table at 0.55 and drops part of the red saucer at 0.40, while it is sure of the rest of both. Gaussian
mixtures of the colours L is sure are object and sure are background (OpenCV's GrabCut, seeded with L's answer,
never with a box) label the band between, and each band pixel moves `mix` of the way from L's value to that label.

Stop 53 (docs/MODELS.md), against the teacher on 162 held-out photos, mix 0.5: L upsampled IoU / mBA 0.811 / 0.627
-> 0.820 / 0.676, but L+H level (0.833 / 0.716 -> 0.832 / 0.714), because the shipped H hardly reads the mask it is
handed. So it is off by default (`CascadeConfig.l_colour_mix`), kept to measure again with an H that reads its input.
It fails where the subject shares its colours with the background (a ruler on paper: −0.43 IoU; on the real-truth
sets, stop 54: the horses better in every measure, DAVIS's pooled IoU −1.2 points). Users turn it on per cut ("colour
assist": the app's Segment menu, `mos cut --colour-assist`, GIMP's dialog) where the colours plainly differ: the
cup's cut goes from IoU 0.817 to 0.911 against its checked mask.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 400  # GrabCut's graph cut is fitted on a copy of about this long side (0.2 s for the cup, 2 cores)
SURE = 0.1  # L at or below this is background, at or above 1 − SURE object; the colours are learnt there
ITERATIONS = 3
ASSIST_MIX = 0.5  # the mix "colour assist" (the app's switch, `--colour-assist`, GIMP's box) runs with by default


def assist_mix(card_mix: float, on: bool | None) -> float:
    """The `l_colour_mix` a cut runs with when the user turns colour assist on (True), off (False) or leaves it to L's
    card (None). On keeps the card's own amount when it sets one, else takes ASSIST_MIX."""
    if on is None:
        return float(card_mix)
    if not on:
        return 0.0
    return float(card_mix) if card_mix > 0 else ASSIST_MIX


def colour_band(rgb: np.ndarray, prob: np.ndarray, mix: float = 0.5, work_side: int = WORK_SIDE) -> np.ndarray:
    """`prob` (H×W in [0, 1]) with its unsure band moved `mix` of the way towards GrabCut's colour label.

    Returned unchanged (a float32 copy) when there is no band, or L is sure of no object or of no background pixel:
    without both there are no two colour models to tell apart.
    """
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 2 or rgb.shape[:2] != prob.shape:
        raise ValueError(f"colour_band: image {rgb.shape[:2]} and probability {prob.shape} differ in size")
    h, w = prob.shape
    scale = min(1.0, work_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), size, interpolation=cv2.INTER_AREA)
    p = cv2.resize(prob, size, interpolation=cv2.INTER_AREA)
    labels = np.full(p.shape, cv2.GC_PR_BGD, np.uint8)
    labels[p >= 0.5] = cv2.GC_PR_FGD
    labels[p >= 1.0 - SURE] = cv2.GC_FGD
    labels[p <= SURE] = cv2.GC_BGD
    band = (p > SURE) & (p < 1.0 - SURE)
    if mix <= 0 or not band.any() or not (labels == cv2.GC_FGD).any() or not (labels == cv2.GC_BGD).any():
        return prob.copy()
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its mixtures with k-means, which draws on OpenCV's per-thread RNG: seeded here, the same photo
    # gives the same cut whatever ran before on this thread (the app's worker, a batch of cuts).
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), labels, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    label = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
    delta = np.where(band, np.float32(min(mix, 1.0)) * (label - p), np.float32(0)).astype(np.float32)
    if delta.shape != prob.shape:
        delta = cv2.resize(delta, (w, h), interpolation=cv2.INTER_LINEAR)
    delta += prob  # in place: at 4K each full-size float map is 33 MB
    return np.clip(delta, 0.0, 1.0, out=delta)
