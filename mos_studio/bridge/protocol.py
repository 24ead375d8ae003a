"""The wire format between the GIMP plug-in (GIMP's own Python, no torch) and `python -m mos_studio.bridge`.

Why this shape: GIMP's Python has neither numpy nor PIL, so pixels travel as raw 8-bit files in a private temporary
folder (what Gegl hands out and takes back without conversion), and control travels as JSON lines over the child's
stdin/stdout — no network port, nothing left behind.

Request: one JSON line on stdin::

    {"version": 1, "mode": "select" | "refine",
     "image": "/tmp/x/image.rgba", "format": "rgba8" | "rgb8" | "file", "width": W, "height": H,
     "mask": "/tmp/x/coarse.y8" | null,        # raw Y u8, W×H; required for refine
     "output": "/tmp/x/result.y8",             # raw Y u8, W×H, written by the bridge
     "output_png": "/tmp/x/result.png" | null, # optional 8-bit grey PNG of the same mask
     "models_dir": "..." | null, "encoder": "default", "device": null | "cpu" | "cuda" | ...,
     "soft": false,                            # true: an 8-bit matte solved where H was unsure (soft edges)
     "snap": true,                             # false: no edge snap, whatever H's card says (select only; a
                                               # given mask is never snapped)
     "rough": false,                           # refine only: the selection is a quick lasso or rectangle: cut
                                               # the object out again near its edge (CascadeConfig.refine_rough)
     "colour": false,                          # true: colour assist, L's unsure band re-decided by a colour
                                               # model (select or a rough refine: where L runs); false keeps
                                               # L's card's choice
     "fine": false}                            # true: fine detail, H's full-resolution crops after its
                                               # whole-photo pass (select or a rough refine); false keeps
                                               # H's card's choice

After the request, stdin stays open: a line "cancel", or end of file (the plug-in died), cancels the run.

Replies: JSON lines on stdout, each with a "type": ``progress`` (stage, fraction), ``ready`` (device), then exactly
one of ``done`` (output, width, height, device, seconds, foreground, soft: whether a matte band was solved; for
a refine also changed: how many pixels crossed the 0.5 cut, so the plug-in can say when nothing moved) or
``error`` (kind, message). Exit status:
0 done, 1 error, 2 bad request, 3 cancelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mos_studio.core.errors import MosError

PROTOCOL_VERSION = 1
MODES = ("select", "refine")
FORMATS = {"rgba8": 4, "rgb8": 3, "file": 0}

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_REQUEST = 2
EXIT_CANCELLED = 3


class RequestError(MosError):
    """The request line is malformed; names the field and the problem."""


def _flag(data: dict, key: str, default: bool) -> bool:
    """A true/false field; anything else (1, "yes") is refused, so a typo never turns an option silently off."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise RequestError(f"field {key!r} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class Request:
    mode: str
    image: Path
    format: str
    width: int
    height: int
    output: Path
    mask: Path | None = None
    output_png: Path | None = None
    models_dir: str | None = None
    encoder: str = "default"
    device: str | None = None
    soft: bool = False
    snap: bool = True
    rough: bool = False
    colour: bool = False
    fine: bool = False

    @classmethod
    def from_json(cls, line: str) -> Request:
        """Parse and validate one request line; `RequestError` says which field is wrong."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise RequestError(f"request is not JSON ({err})") from err
        if not isinstance(data, dict):
            raise RequestError("request must be a JSON object")
        version = data.get("version", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            raise RequestError(
                f"protocol version {version} not understood (this bridge speaks {PROTOCOL_VERSION}); "
                "reinstall the plug-in with `mos install-gimp-plugin`"
            )
        mode = data.get("mode")
        if mode not in MODES:
            raise RequestError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        fmt = data.get("format", "rgba8")
        if fmt not in FORMATS:
            raise RequestError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        for key in ("image", "output"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise RequestError(f"field {key!r} must be a file path")
        width, height = data.get("width", 0), data.get("height", 0)
        if fmt != "file" and not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise RequestError(f"width and height must be positive integers, got {width!r}×{height!r}")
        mask = data.get("mask")
        if mode == "refine" and not mask:
            raise RequestError("mode 'refine' needs a 'mask' file (the current selection)")
        if mask is not None and not isinstance(mask, str):
            raise RequestError("field 'mask' must be a file path or null")
        soft, snap, rough, colour, fine = (_flag(data, key, default) for key, default in (
            ("soft", False), ("snap", True), ("rough", False), ("colour", False), ("fine", False)))
        if colour and mode == "refine" and not rough:
            raise RequestError("field 'colour' is for mode 'select' or a rough refine: a refine keeps the selection "
                               "and never runs L")
        if fine and mode == "refine" and not rough:
            raise RequestError("field 'fine' is for mode 'select' or a rough refine: a refine keeps the selection's "
                               "edge unless H is sure, and its crops stay off")
        return cls(
            mode=mode,
            image=Path(data["image"]),
            format=fmt,
            width=int(width or 0),
            height=int(height or 0),
            output=Path(data["output"]),
            mask=Path(mask) if mask else None,
            output_png=Path(data["output_png"]) if data.get("output_png") else None,
            models_dir=data.get("models_dir") or None,
            encoder=str(data.get("encoder") or "default"),
            device=data.get("device") or None,
            soft=soft,
            snap=snap,
            rough=rough,
            colour=colour,
            fine=fine,
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "mode": self.mode,
            "image": str(self.image),
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "output": str(self.output),
            "mask": str(self.mask) if self.mask else None,
            "output_png": str(self.output_png) if self.output_png else None,
            "models_dir": self.models_dir,
            "encoder": self.encoder,
            "device": self.device,
            "soft": self.soft,
            "snap": self.snap,
            "rough": self.rough,
            "colour": self.colour,
            "fine": self.fine,
        }
        return json.dumps(data)


# Share of the whole run that each cascade stage takes, for one progress bar (L is small, H local passes dominate).
_STAGE_SPANS = {
    "select": {"L": (0.0, 0.3), "H global": (0.3, 0.5), "H local": (0.5, 1.0), "done": (1.0, 1.0)},
    "refine": {"H global": (0.0, 0.3), "H local": (0.3, 1.0), "done": (1.0, 1.0)},
}


def overall_fraction(mode: str, stage: str, fraction: float) -> float:
    """Map the cascade's per-stage fraction to 0..1 for the whole run; unknown stages keep their own fraction."""
    lo, hi = _STAGE_SPANS.get(mode, {}).get(stage, (0.0, 1.0))
    return round(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0), 4)


def message(reply_type: str, **fields: Any) -> str:
    """One reply line (no newline); `fields` may include "kind" (the error class of an `error` reply)."""
    return json.dumps({"type": reply_type, **fields})


def read_raw(path: Path, width: int, height: int, channels: int) -> np.ndarray:
    """Read a raw interleaved u8 file of exactly width×height×channels bytes."""
    from mos_studio.core.errors import ImageError

    expected = width * height * channels
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ImageError(path, f"cannot read raw pixels ({err.strerror or err})") from err
    if data.size != expected:
        raise ImageError(path, f"holds {data.size} bytes, expected {width}×{height}×{channels} = {expected}")
    shape = (height, width) if channels == 1 else (height, width, channels)
    return data.reshape(shape)


def write_raw(path: Path, array: np.ndarray) -> None:
    """Write a u8 array as raw bytes, atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    np.ascontiguousarray(array, dtype=np.uint8).tofile(tmp)
    tmp.replace(path)
