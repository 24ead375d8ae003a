"""`python -m mos_studio.bridge`: the torch side of the GIMP plug-in (see protocol.py for the wire format).

GIMP's Python cannot import torch, so the plug-in starts this process in the project's own environment. It reads
one request, runs the L/H cascade (or H only for refine), streams progress, writes the mask and exits. Everything
it prints on stdout is protocol; anything else a library prints is sent to stderr.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from mos_studio.bridge.protocol import (
    EXIT_BAD_REQUEST,
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    FORMATS,
    Request,
    RequestError,
    message,
    overall_fraction,
    read_raw,
    write_raw,
)

# After a cancel (or the plug-in's death) the bridge leaves within this many seconds even if torch is mid-pass.
CANCEL_GRACE_S = 3.0
SETUP_HINT = "run `mos info` in the MOS Studio environment to see what is missing"


class Replies:
    """Serialised JSON-line writer on the real stdout; a vanished reader means the plug-in is gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, reply_type: str, **fields: object) -> None:
        with self._lock:
            try:
                self._stream.write(message(reply_type, **fields) + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                os._exit(EXIT_CANCELLED)


def _watch_stdin(stdin: TextIO, cancel: threading.Event, replies: Replies) -> None:
    """Cancel on a "cancel" line or on end of file (GIMP killed the plug-in); force the exit after a grace time."""
    try:
        for line in stdin:
            if line.strip().lower() == "cancel":
                break
    except (OSError, ValueError):
        pass
    cancel.set()

    def _force_exit() -> None:
        replies.send("error", kind="cancelled", message="cancelled")
        os._exit(EXIT_CANCELLED)

    timer = threading.Timer(CANCEL_GRACE_S, _force_exit)
    timer.daemon = True
    timer.start()


def run(request: Request, replies: Replies, cancel: threading.Event) -> int:
    """Do the work of one request; every failure becomes one `error` reply naming what to run."""
    import numpy as np

    from mos_studio.core.errors import Cancelled, MosError, WeightsError

    started = time.perf_counter()
    try:
        if request.format == "file":
            from mos_studio.core.io import load_image

            loaded = load_image(request.image)
            rgb, alpha = loaded.rgb, loaded.alpha
        else:
            pixels = read_raw(request.image, request.width, request.height, FORMATS[request.format])
            rgb = np.ascontiguousarray(pixels[..., :3])
            alpha = pixels[..., 3] if pixels.shape[-1] == 4 else None
        height, width = rgb.shape[:2]
        coarse = None
        if request.mask is not None:
            coarse = read_raw(request.mask, width, height, 1).astype(np.float32) / 255.0
        if cancel.is_set():
            raise Cancelled("cancelled before the models were loaded")

        replies.send("progress", stage="loading models", fraction=0.0)
        from mos_studio.core.cascade import Cascade

        cascade = Cascade.from_pretrained(
            models_dir=request.models_dir,
            encoder=request.encoder,
            device=request.device,
            stages="H" if request.mode == "refine" and not request.rough else "LH",  # a rough refine is a cut
        )
        if not request.snap:  # the dialog's "Snap edges" off; on keeps the card's choice, as the app's switch does
            cascade.config.edge_radius = None
        cascade.config.refine_rough = request.rough  # the dialog's "Rough selection" (refine only)
        if request.colour:  # the dialog's "Decide unsure edges by colour"; off keeps L's card's choice
            from mos_studio.core.colour import assist_mix

            cascade.config.l_colour_mix = assist_mix(cascade.config.l_colour_mix, True)
        if request.fine:  # the dialog's "Fine detail"; off keeps H's card's choice
            cascade.config.local_passes = True
        replies.send("ready", device=cascade.device_name)
        if cancel.is_set():
            raise Cancelled("cancelled after the models were loaded")

        mode = "select" if request.rough and request.mode == "refine" else request.mode  # a rough refine: L, then H

        def progress(stage: str, fraction: float) -> None:
            replies.send("progress", stage=str(stage), fraction=overall_fraction(mode, stage, fraction))

        result = cascade(rgb, mask=coarse, progress=progress, cancel=cancel)
        soft_applied = False
        if request.soft:  # alpha matting where H was unsure; the hard mask when H was sure everywhere
            from mos_studio.core.matting import matte_result

            matte = matte_result(rgb, result, progress=progress, cancel_check=cancel.is_set)
            out, soft_applied = matte.alpha_u8, matte.soft
        else:
            out = np.where(result.mask, 255, 0).astype(np.uint8)
        if alpha is not None:
            # A fully transparent pixel of the layer cannot belong to the object, whatever colour it hides.
            out[alpha == 0] = 0
        write_raw(request.output, out)
        if request.output_png is not None:
            from PIL import Image

            Image.fromarray(out, mode="L").save(request.output_png)
        changed = {} if coarse is None else {"changed": int(((out >= 128) != (coarse > 0.5)).sum())}
        replies.send(
            "done",
            **changed,
            output=str(request.output),
            width=int(width),
            height=int(height),
            device=str(result.device),
            seconds=round(time.perf_counter() - started, 3),
            foreground=float((out >= 128).mean()),
            soft=soft_applied,
        )
        return EXIT_OK
    except Cancelled:
        replies.send("error", kind="cancelled", message="cancelled; the image was left untouched")
        return EXIT_CANCELLED
    except WeightsError as err:
        replies.send("error", kind="weights", message=f"MOS weights: {err}")
        return EXIT_ERROR
    except MosError as err:
        replies.send("error", kind="input", message=str(err))
        return EXIT_ERROR
    except MemoryError:
        replies.send("error", kind="backend", message="out of memory; try a smaller layer or `device` cpu/cuda")
        return EXIT_ERROR
    except ImportError as err:
        replies.send(
            "error",
            kind="backend",
            message=f"the MOS environment at {sys.executable} is incomplete ({err}); "
            "run `make venv` in the project, then `mos install-gimp-plugin`",
        )
        return EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - the plug-in must get a message, never a silent death
        import traceback

        traceback.print_exc(file=sys.stderr)
        replies.send("error", kind="backend", message=f"MOS backend failed: {type(err).__name__}: {err}; {SETUP_HINT}")
        return EXIT_ERROR


def main() -> int:
    # Keep the real stdout for the protocol and point fd 1 at stderr, so stray prints cannot corrupt it.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    replies = Replies(protocol_out)
    line = sys.stdin.readline()
    if not line.strip():
        replies.send("error", kind="request", message="no request on stdin (expected one JSON line)")
        return EXIT_BAD_REQUEST
    try:
        request = Request.from_json(line)
    except RequestError as err:
        replies.send("error", kind="request", message=str(err))
        return EXIT_BAD_REQUEST
    cancel = threading.Event()
    watcher = threading.Thread(target=_watch_stdin, args=(sys.stdin, cancel, replies), daemon=True)
    watcher.start()
    return run(request, replies, cancel)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread
