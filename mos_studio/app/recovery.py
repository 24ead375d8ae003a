"""Recovery copies of unexported masks: a crash, a killed process or a power cut loses seconds of work, not an hour.

While the open photo's mask has changes that were not exported, the window hands a copy of it (and of the
soft-edge strokes) to `RecoveryStore.save` a moment after each edit; the files are written on a worker thread,
each atomically, the JSON last, so a half-written set is never read back. When the mask is exported, discarded or
undone back to what was exported, its copy goes. Opening the same photo again (same path, size and modification
time) finds a copy left behind and offers it back.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEEP_DAYS = 30  # copies older than this are removed when the app starts


@dataclass
class Recovered:
    """A copy left behind: the mask (uint8, as the document held it), the soft-edge strokes if there were any, and
    when it was kept."""

    mask: np.ndarray
    soft_band: np.ndarray | None
    saved_at: float
    photo: str


def photo_key(path: str | Path, width: int, height: int) -> str | None:
    """The copy's name for this photo as it is on disk now; None when the file cannot be read (then no copy)."""
    try:
        path = Path(path).resolve()
        st = path.stat()
    except OSError:
        return None
    ident = f"{path}|{width}x{height}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(ident.encode("utf-8")).hexdigest()[:20]


def _png(values: np.ndarray) -> bytes:
    import cv2  # not at import: the window starts without OpenCV (docs/PERFORMANCE.md, startup)

    ok, buf = cv2.imencode(".png", values, [cv2.IMWRITE_PNG_COMPRESSION, 1])  # fast: masks compress well anyway
    if not ok:
        raise OSError("the PNG encoder failed")
    return buf.tobytes()


class RecoveryStore:
    """One folder of copies, one writer thread. Errors never reach the user's editing: `last_error` says what
    failed, and the window shows it in the status bar."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.last_error: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mos-recovery")
        self._closed = False

    # -- writing (on the worker thread, in the order asked) ---------------------------------------------------------
    def save(self, key: str, photo: str | Path, mask: np.ndarray, soft_band: np.ndarray | None) -> Future | None:
        """Keep a copy of `mask` (and the soft-edge strokes) for the photo `key`; the arrays must be the caller's
        own copies (they are read on the worker thread). None once the store is closed."""
        if self._closed:
            return None
        return self._pool.submit(self._save, key, str(photo), mask, soft_band)

    def _save(self, key: str, photo: str, mask: np.ndarray, soft_band: np.ndarray | None) -> None:
        from mos_studio.core.errors import MosError
        from mos_studio.core.io import write_atomic  # here, not at import: the window starts without it

        def keep(path: Path, data: bytes) -> None:
            write_atomic(path, lambda fp: fp.write(data), fsync=True)

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            keep(self.folder / f"{key}.mask.png", _png(mask))
            soft = self.folder / f"{key}.soft.png"
            if soft_band is not None and soft_band.any():
                keep(soft, _png(soft_band))
            elif soft.exists():
                soft.unlink()
            meta = {"photo": photo, "width": int(mask.shape[1]), "height": int(mask.shape[0]),
                    "saved_at": time.time(), "soft": bool(soft_band is not None and soft_band.any())}
            keep(self.folder / f"{key}.json", json.dumps(meta).encode("utf-8"))
            self.last_error = None
        except (OSError, ValueError, MosError) as err:
            self.last_error = f"could not keep a recovery copy in {self.folder}: {err}"

    def remove(self, key: str) -> Future | None:
        """Forget the copy of photo `key` (after any save still queued for it). None once the store is closed."""
        if self._closed:
            return None
        return self._pool.submit(self._remove, key)

    def _remove(self, key: str) -> None:
        for suffix in (".json", ".mask.png", ".soft.png"):  # the JSON first: without it nothing is offered
            try:
                (self.folder / f"{key}{suffix}").unlink(missing_ok=True)
            except OSError as err:
                self.last_error = f"could not remove a recovery copy in {self.folder}: {err}"

    def flush(self) -> None:
        """Wait for every queued write and removal."""
        if not self._closed:
            self._pool.submit(lambda: None).result()

    def close(self) -> None:
        """Finish what is queued and stop the writer; later saves and removals are ignored."""
        self._closed = True
        self._pool.shutdown(wait=True)

    # -- reading (on the GUI thread, when a photo opens) ------------------------------------------------------------
    def find(self, key: str, width: int, height: int) -> Recovered | None:
        """The copy kept for photo `key` at this size, or None (none, unreadable, or another size)."""
        self.flush()
        meta_path = self.folder / f"{key}.json"
        if not meta_path.exists():
            return None
        import cv2

        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            if (int(meta["width"]), int(meta["height"])) != (width, height):
                return None
            mask = cv2.imread(str(self.folder / f"{key}.mask.png"), cv2.IMREAD_UNCHANGED)
            soft = cv2.imread(str(self.folder / f"{key}.soft.png"), cv2.IMREAD_UNCHANGED) if meta.get("soft") \
                else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if mask is None or mask.shape != (height, width) or (soft is not None and soft.shape != mask.shape):
            return None
        return Recovered(mask=mask.astype(np.uint8), soft_band=soft,
                         saved_at=float(meta.get("saved_at", 0.0)), photo=str(meta.get("photo", "")))

    def prune(self, days: float = KEEP_DAYS) -> int:
        """Remove copies older than `days`; returns how many sets went."""
        cutoff = time.time() - days * 86400
        gone = 0
        try:
            entries = list(self.folder.glob("*.json"))
        except OSError:
            return 0
        for meta in entries:
            try:
                if meta.stat().st_mtime < cutoff:
                    self._remove(meta.name[:-len(".json")])
                    gone += 1
            except OSError:
                continue
        return gone
