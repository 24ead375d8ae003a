"""Inference-only speed-ups that leave the numbers (nearly) unchanged: BatchNorm folding, channels-last memory,
and a thread count chosen from the cores that are actually free.

Training never sees any of this: `inference_copy` works on a deep copy, and the PyTorch modules stay the reference.
"""

from __future__ import annotations

import copy
import os
import time

import torch
from torch import nn

# conv → BN pairs inside modules whose forward is code, not an nn.Sequential: (conv attribute, BN attribute).
# Only pairs where the conv's output feeds that BN and nothing else belong here; a module can also declare its own
# pairs with a `bn_fold_pairs` class attribute (MeticulousNet's UpBlock does).
KNOWN_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "ResNet50Encoder": (("conv1", "bn1"),),
    "MBConvLite": (("expand_conv", "bn0"), ("depthwise_conv", "bn1"), ("project_conv", "bn2")),
    "EfficientNetLite0Encoder": (("conv_stem", "bn0"),),
}


def _last_conv(module: nn.Module | None) -> nn.Conv2d | None:
    """The conv that produces a module's output: the module itself, or the last layer of a Sequential of convs."""
    if isinstance(module, nn.Conv2d):
        return module
    if isinstance(module, nn.Sequential) and len(module) and isinstance(module[-1], nn.Conv2d):
        return module[-1]
    return None


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> bool:
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or conv.out_channels != bn.num_features:
        return False
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter(bias * scale + shift)
    return True


def fold_batchnorm(model: nn.Module) -> int:
    """Fold eval-mode BatchNorm layers into the convolution in front of them, in place; returns how many.

    Found generically: a Conv2d directly followed by a BatchNorm2d inside any nn.Sequential, plus the (conv, BN)
    attribute pairs a module declares (`bn_fold_pairs`) or KNOWN_PAIRS lists for its class. BNs that follow an
    activation or a sum (pre-activation blocks) are left alone: they cannot be folded backwards.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (it bakes the running statistics in)")
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and _fold(conv, bn):
                    module[i + 1] = nn.Identity()
                    folded += 1
        pairs = getattr(type(module), "bn_fold_pairs", None) or KNOWN_PAIRS.get(type(module).__name__, ())
        for conv_name, bn_name in pairs:
            conv, bn = _last_conv(getattr(module, conv_name, None)), getattr(module, bn_name, None)
            if conv is not None and isinstance(bn, nn.BatchNorm2d) and _fold(conv, bn):
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


def inference_copy(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy with BatchNorm folded and (on CPU) channels-last weights; the original is untouched."""
    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast)
    if hasattr(fast, "select_on_logits"):
        fast.select_on_logits = True  # MeticulousNet: same points, no full-size sigmoid to rank them
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


# --------------------------------------------------------------------------------------------------- thread count
THREADS_ENV = "MOS_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's total."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def _own_ticks() -> float:
    """This process's CPU time (all threads) in /proc/stat's clock ticks."""
    t = os.times()
    try:
        hz = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        hz = 100
    return (t.user + t.system) * hz


_Snapshot = tuple[float, int, int, float]  # (monotonic time, total ticks, idle ticks, own ticks)


def _snapshot() -> _Snapshot | None:
    times = _cpu_times()
    return None if times is None else (time.monotonic(), times[0], times[1], _own_ticks())


def _others_busy(a: _Snapshot, b: _Snapshot) -> float | None:
    """Cores kept busy by other processes between two snapshots (our own CPU time taken out)."""
    total = b[1] - a[1]
    if total <= 0:
        return None
    busy = (total - (b[2] - a[2])) - (b[3] - a[3])
    return max(0.0, busy / total) * (os.cpu_count() or 1)


class LoadSampler:
    """Reads /proc/stat every `period` seconds on a daemon thread, so a call learns its neighbours' load from the
    last window instead of sleeping for a fresh sample (that sleep was 0.15 s of the app's ~1 s region re-refine).

    Our own CPU time is subtracted, so the window may overlap our own passes.
    """

    def __init__(self, period: float = 0.25) -> None:
        import threading

        self.period = period
        self._lock = threading.Lock()
        self._prev: _Snapshot | None = None
        self._last: _Snapshot | None = None
        self._thread = threading.Thread(target=self._run, name="mos-load-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            snap = _snapshot()
            if snap is None:
                return
            with self._lock:
                self._prev, self._last = self._last, snap
            time.sleep(self.period)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def busy(self) -> float | None:
        """Other programs' busy cores over the last window; None while there is no fresh window yet."""
        with self._lock:
            prev, last = self._prev, self._last
        if prev is None or last is None or time.monotonic() - last[0] > 4 * self.period:
            return None
        return _others_busy(prev, last)


_sampler: LoadSampler | None = None


def busy_cores(interval: float = 0.15) -> float:
    """How many cores other programs keep busy right now.

    Linux: from /proc/stat, with this process's own CPU time taken out. The first call samples for `interval`
    seconds (which sees a busy neighbour at once) and starts a `LoadSampler`; later calls read its last 0.25 s window
    without waiting. Elsewhere: the 1-minute load average, which lags but is all the OS offers.
    """
    global _sampler
    if _sampler is not None:
        v = _sampler.busy()
        if v is not None:
            return v
    first = _snapshot()
    if first is not None:
        time.sleep(interval)
        second = _snapshot()
        v = None if second is None else _others_busy(first, second)
        if v is not None:
            if _sampler is None or not _sampler.alive:  # (a forked child inherits the object, not the thread)
                _sampler = LoadSampler()
            return v
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return 0.0


def parse_threads(value: str | int | None) -> int | None:
    """A --threads / MOS_THREADS value: a positive count, or None for "auto" (also for "", "0" and "auto")."""
    if value is None:
        return None
    if isinstance(value, int):
        n = value
    else:
        text = value.strip().lower()
        if text in ("", "auto", "0"):
            return None
        try:
            n = int(text)
        except ValueError:
            raise ValueError(f"threads must be a whole number or 'auto', got {value!r}") from None
    if n < 0:
        raise ValueError(f"threads must be at least 1 (or 0 for auto), got {n}")
    return n or None


def pick_threads(requested: int | None = None) -> int:
    """Threads for one inference call: `requested`, else $MOS_THREADS, else the free cores.

    Why not simply all cores: two thread pools that share cores wait on each other at every barrier, so a
    2-thread pass next to another busy 2-thread job ran 16× slower than alone, while 1 thread ran only 2.3× slower.
    """
    if requested is None:
        try:
            requested = parse_threads(os.environ.get(THREADS_ENV))
        except ValueError:
            requested = None  # a bad environment value must not stop a cut; the CLI validates --threads itself
    cores = usable_cores()
    if requested is not None:
        return max(1, requested)
    # A core counts as taken when a neighbour keeps at least 3/4 of it busy: lighter, bursty use (an editor, a
    # browser tab) costs our threads little, and giving a whole core away for it made a 4K cut 1.7× slower.
    return max(1, min(cores, cores - int(busy_cores() + 0.25)))
