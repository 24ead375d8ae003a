"""MOS Studio core: model, cascade, I/O, metrics. Imports no Qt and no GIMP.

Heavy parts (torch) load on first use, so `from mos_studio.core import load_image` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MeticulousNet": "mos_studio.core.model",
    "Cascade": "mos_studio.core.cascade",
    "CascadeConfig": "mos_studio.core.cascade",
    "Result": "mos_studio.core.cascade",
    "load_image": "mos_studio.core.io",
    "load_mask": "mos_studio.core.io",
    "save_mask": "mos_studio.core.io",
    "save_cutout": "mos_studio.core.io",
    "save_composite": "mos_studio.core.io",
    "Matte": "mos_studio.core.matting",
    "MattingConfig": "mos_studio.core.matting",
    "soft_matte": "mos_studio.core.matting",
    "matte_result": "mos_studio.core.matting",
    "save_stages": "mos_studio.core.stages",
    "stage_montage": "mos_studio.core.stages",
}

__all__ = [  # noqa: F822 (resolved lazily by __getattr__)
    "Cascade",
    "CascadeConfig",
    "Matte",
    "MattingConfig",
    "MeticulousNet",
    "Result",
    "load_image",
    "load_mask",
    "matte_result",
    "save_composite",
    "save_cutout",
    "save_mask",
    "save_stages",
    "soft_matte",
    "stage_montage",
]

if TYPE_CHECKING:  # pragma: no cover
    from .cascade import Cascade, CascadeConfig, Result
    from .io import load_image, load_mask, save_composite, save_cutout, save_mask
    from .matting import Matte, MattingConfig, matte_result, soft_matte
    from .model import MeticulousNet
    from .stages import save_stages, stage_montage


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mos_studio.core' has no attribute {name!r}")
