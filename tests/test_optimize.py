"""The optimised cascade computes the same masks as the reference path; threads and runtime fallback behave."""

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mos_studio.cli.main import build_parser, main
from mos_studio.core import optimize, runtime
from mos_studio.core.cascade import Cascade, CascadeConfig
from mos_studio.core.errors import MosError
from mos_studio.core.model import MeticulousNet
from mos_studio.core.testing import tiny_models, write_tiny_models

ort_only = pytest.mark.skipif(not runtime.onnxruntime_available(), reason="onnxruntime (the `fast` extra) missing")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = (rng.random((h // 16 + 1, w // 16 + 1, 3)) * 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("encoder", ["mobilenetv3", "resnet50", "efficientnet_lite0"])
def test_batchnorm_folding_keeps_the_output(encoder):
    torch.manual_seed(0)
    model = MeticulousNet.tiny(4, encoder=encoder).eval()
    # Non-trivial running statistics, so folding has something to get wrong.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    fast = optimize.inference_copy(model)
    after = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert after < before  # something was folded …
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == before  # … in the copy only
    x = torch.rand(1, 4, 72, 88)
    with torch.inference_mode():
        ref = model(x)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref.stages, out.stages, strict=True):
        torch.testing.assert_close(b.uncertainty, a.uncertainty, atol=2e-4, rtol=1e-3)
    assert (torch.sigmoid(out.logits) - torch.sigmoid(ref.logits)).abs().max() < 0.02


def test_fold_refuses_a_training_model():
    with pytest.raises(ValueError, match="eval"):
        optimize.fold_batchnorm(MeticulousNet.tiny(3).train())


@ort_only
def test_onnx_export_matches_pytorch_at_sizes_that_need_padding(cache):
    low, high = tiny_models(0)
    ort_model = runtime.OrtModel(high)
    assert len(list(cache.glob("*.onnx"))) == 1  # exported once, into the cache
    x = np.random.default_rng(1).random((4, 61, 90), dtype=np.float32)
    logits, maps = ort_model(x, threads=1, stages=True)
    with torch.inference_mode():
        ref = high(torch.from_numpy(x)[None])
    assert logits.shape == (61, 90)
    # The point MLP refines the most uncertain 10 % of points; ties may pick other points, so compare masks.
    agree = ((logits > 0) == (ref.logits[0, 0].numpy() > 0)).mean()
    assert agree > 0.99
    for (name, unc, _), stage in zip(maps, ref.stages, strict=True):
        assert name == stage.name and unc.shape == tuple(stage.uncertainty.shape[-2:])
        np.testing.assert_allclose(unc, stage.uncertainty[0, 0].numpy(), atol=2e-3)
    assert len(list(cache.glob("*.onnx"))) == 2  # the graph with stage outputs was exported when first asked for
    again = runtime.OrtModel(high)  # a second model object: read from the cache, no new file
    np.testing.assert_array_equal(again(x, threads=1)[0], ort_model(x, threads=1)[0])
    assert len(list(cache.glob("*.onnx"))) == 2


def test_optimised_cascade_matches_reference_on_tiny_models(cache):
    """Same masks through every runtime on an image big enough for crops (random weights: the wiring, not quality)."""
    low, high = tiny_models(0)
    img = _photo(700, 900)
    cfg = {"global_size": 320, "crop_size": 256, "crop_overlap": 48}
    ref = Cascade(low, high, device="cpu", config=CascadeConfig(optimized=False, **cfg))(img)
    runtimes = ["torch"] + (["onnxruntime"] if runtime.onnxruntime_available() else [])
    for rt in runtimes:
        res = Cascade(low, high, device="cpu", config=CascadeConfig(runtime=rt, stage_maps=False, **cfg))(img)
        assert res.crops and res.stages["H"] == [] and res.stages["L"] == []
        assert _iou(res.mask, ref.mask) >= 0.995, rt
        assert res.timings["threads"] >= 1


@ort_only
def test_shipped_weights_same_masks_as_reference():
    """The issue's criterion on a real photo: IoU ≥ 0.995 between the optimised and the unoptimised cascade."""
    from mos_studio.core.io import load_image
    from mos_studio.core.weights import find_models_dir

    folder = find_models_dir(None)
    if not (folder / "meticulousnet_mobile_H.safetensors").is_file():
        pytest.skip("no shipped weights")
    photo = load_image(folder.parent / "resources" / "samples" / "sample.jpg").rgb
    img = cv2.resize(photo, (1350, 900), interpolation=cv2.INTER_CUBIC)  # big enough for local crops
    fast = Cascade.from_pretrained(folder, device="cpu")
    ref = Cascade.from_pretrained(folder, device="cpu")
    ref.config.optimized = False
    fast.config.local_passes = ref.config.local_passes = True  # the shipped H's card turns crops off; test them
    a, b = fast(img), ref(img)
    assert set(a.crops) <= set(b.crops) and len(a.crops) >= 1  # the same grid; quiet crops may be left out
    assert "ONNX Runtime" in a.device
    assert _iou(a.mask, b.mask) >= 0.995
    assert np.abs(a.probability - b.probability).mean() < 1e-3


def test_missing_onnxruntime_falls_back_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    monkeypatch.setattr(runtime, "_notices", set())
    low, high = tiny_models(0)
    cascade = Cascade(low, high, device="cpu", config=CascadeConfig(global_size=128, crop_size=96))
    assert "PyTorch" in cascade.device_name
    img = _photo(200, 260)
    res = cascade(img)
    cascade(img)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxruntime is not installed" in err[0] and err[0].startswith("mos: ")
    assert "PyTorch" in res.device
    strict = Cascade(low, high, device="cpu", config=CascadeConfig(runtime="onnxruntime"))
    with pytest.raises(MosError, match="onnxruntime is not installed"):
        strict(img)


def test_pick_threads_uses_free_cores(monkeypatch):
    monkeypatch.delenv(optimize.THREADS_ENV, raising=False)
    monkeypatch.setattr(optimize, "usable_cores", lambda: 4)
    monkeypatch.setattr(optimize, "busy_cores", lambda interval=0.15: 0.2)
    assert optimize.pick_threads() == 4
    monkeypatch.setattr(optimize, "busy_cores", lambda interval=0.15: 2.1)
    assert optimize.pick_threads() == 2
    monkeypatch.setattr(optimize, "busy_cores", lambda interval=0.15: 7.0)
    assert optimize.pick_threads() == 1  # never zero
    assert optimize.pick_threads(3) == 3  # an explicit request wins
    monkeypatch.setenv(optimize.THREADS_ENV, "2")
    assert optimize.pick_threads() == 2
    monkeypatch.setenv(optimize.THREADS_ENV, "auto")
    assert optimize.pick_threads() == 1
    assert 0.0 <= optimize.busy_cores(0.05) <= 64


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="the sampler reads Linux's /proc/stat")
def test_busy_cores_reads_a_background_window_that_sees_neighbours_but_not_us(monkeypatch):
    import subprocess
    import sys
    import threading
    import time

    monkeypatch.setattr(optimize, "_sampler", None)
    t = time.perf_counter()
    optimize.busy_cores(0.2)  # the first call samples (and sleeps) once, then starts the sampler
    assert time.perf_counter() - t >= 0.2 and optimize._sampler is not None

    def window_mean() -> float:
        vals = []
        for _ in range(4):
            time.sleep(0.3)
            t = time.perf_counter()
            vals.append(optimize.busy_cores(0.2))
            assert time.perf_counter() - t < 0.15  # read from the window: a sampled read sleeps 0.2 s (slack for load)
        return sum(vals) / len(vals)

    quiet = window_mean()
    cores = os.cpu_count() or 1
    if quiet > cores - 0.7:  # e.g. labelling on both cores of a 2-core machine: one more neighbour cannot show
        pytest.skip(f"other programs already keep {quiet:.1f} of {cores} cores busy: no room to see one more")
    stop = threading.Event()

    def spin() -> None:  # our own work (like a pass on another thread) must not count as a neighbour
        x = 0
        while not stop.is_set():
            for _ in range(20000):
                x += 1

    me = threading.Thread(target=spin)
    me.start()
    try:
        ours = window_mean()
    finally:
        stop.set()
        me.join()
    other = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        theirs = window_mean()
    finally:
        other.kill()
        other.wait()
    assert theirs > quiet + 0.5, (quiet, ours, theirs)
    assert ours < quiet + 0.4, (quiet, ours, theirs)


def test_parse_threads():
    assert optimize.parse_threads("3") == 3
    assert optimize.parse_threads("auto") is None and optimize.parse_threads("0") is None
    for bad in ("two", "-1", "1.5"):
        with pytest.raises(ValueError):
            optimize.parse_threads(bad)


def test_threads_option_is_parsed_and_applied(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(optimize.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    parser = build_parser()
    assert parser.parse_args(["--threads", "1", "info"]).threads == "1"
    assert parser.parse_args(["cut", "a.jpg", "-o", "out", "--threads", "2"]).threads == "2"
    assert parser.parse_args(["info"]).threads is None
    models = write_tiny_models(tmp_path / "models")
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), _photo(120, 160))
    before = torch.get_num_threads()
    try:
        code = main(["cut", str(photo), "-o", str(tmp_path / "out"), "--models-dir", str(models), "--threads", "1"])
        assert code == 0
        err = capsys.readouterr().err
        assert "device: CPU (1 thread" in err
        import os

        assert os.environ[optimize.THREADS_ENV] == "1" and torch.get_num_threads() == 1
        # Bad values are a one-line error and exit status 1.
        assert main(["--threads", "many", "info"]) == 1
        assert "--threads" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
        monkeypatch.delenv(optimize.THREADS_ENV, raising=False)


def test_cascade_result_reports_threads_used(monkeypatch):
    low, high = tiny_models(0)
    cascade = Cascade(low, high, device="cpu", config=CascadeConfig(threads=1, global_size=128, crop_size=96))
    res = cascade(_photo(150, 170))
    assert res.timings["threads"] == 1.0 and res.device.startswith("CPU (1 thread")


@ort_only
def test_onnx_export_keeps_the_mask_skip(cache):
    """An H with a residual skip (`mask_skip`) exports it into the graph, padding included, and the cache keeps the
    skip's weight apart from the plain H's (the digest covers the config)."""
    _, high = tiny_models(0)
    skip = MeticulousNet.from_config({**high.config(), "mask_skip": 1.0}).eval()
    skip.load_state_dict(high.state_dict())
    x = np.random.default_rng(2).random((4, 61, 90), dtype=np.float32)
    x[3, :30] = 1.0
    logits, _ = runtime.OrtModel(skip)(x, threads=1)
    plain, _ = runtime.OrtModel(high)(x, threads=1)
    assert len(list(cache.glob("*.onnx"))) == 2
    with torch.inference_mode():
        ref = skip(torch.from_numpy(x)[None]).logits[0, 0].numpy()
    assert ((logits > 0) == (ref > 0)).mean() > 0.99
    m = np.clip(x[3], 0.02, 0.98)
    diff = logits - plain
    np.testing.assert_allclose(np.median(diff - np.log(m / (1 - m))), 0.0, atol=1e-3)
