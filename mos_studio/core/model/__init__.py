"""MeticulousNet and its parts."""

from .meticulousnet import (
    STAGE_NAMES,
    STAGE_STRIDES,
    MeticulousNet,
    MeticulousOutput,
    StageOutput,
    Widths,
    count_parameters,
    select_uncertain_points,
    uncertainty_from_logits,
)

__all__ = [
    "STAGE_NAMES",
    "STAGE_STRIDES",
    "MeticulousNet",
    "MeticulousOutput",
    "StageOutput",
    "Widths",
    "count_parameters",
    "select_uncertain_points",
    "uncertainty_from_logits",
]
