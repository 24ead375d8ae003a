"""Training data: sources (folders, alpha mattes, procedural pairs), L/H samples, CascadePSP mask perturbation."""

import cv2

from .datasets import SampleDataset, StepSampler, h_sample, l_sample, zoom_crop
from .perturb import iou_binary, perturb_mask
from .sources import FolderSource, MatteSource, Source, SynthSource, build_source
from .synth import generate_pair

# Samples are small and decoded in parallel DataLoader workers; OpenCV's own thread pool only spins against torch's
# threads (measured: 20× slower training steps on a busy 2-core machine with it on).
cv2.setNumThreads(0)

__all__ = [
    "FolderSource",
    "MatteSource",
    "SampleDataset",
    "Source",
    "StepSampler",
    "SynthSource",
    "build_source",
    "generate_pair",
    "h_sample",
    "iou_binary",
    "l_sample",
    "perturb_mask",
    "zoom_crop",
]
