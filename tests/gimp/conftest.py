"""Real GIMP 3 for the `gimp` tests: a Debian trixie chroot (built once, cached outside the checkout) in which
gimp-console-3.0 runs the installed plug-in, which in turn starts the bridge of THIS checkout's environment.

How the pieces meet: every GIMP run happens in a private mount namespace (`unshare -m`), where /proc, /dev, the
checkout, the Python installation behind the venv and the session's work folder are bind-mounted into the chroot at
their own paths (read-only except the work folder). The namespace, and with it every mount, vanishes when GIMP
exits, even if pytest is killed; the teardown still checks that nothing stayed mounted under the chroot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = Path(__file__).with_name("setup_chroot.sh")
BATCH = Path(__file__).with_name("batch_job.py")
CHROOT = Path(os.environ.get("MOS_GIMP_CHROOT", "/var/cache/mos-gimp-chroot"))
MARKER = ".mos-chroot-complete"
MIRROR = os.environ.get("MOS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PHOTO_SIZE = (320, 240)
GIMP_TIMEOUT_S = 300
# The tiny random weights give probabilities near 0.5, where the float reductions of a different CPU thread count flip
# about 1 % of the pixels (measured: IoU 0.989 between 1 and 2 torch threads on the grey photo). The bridge inside GIMP
# and the `mos cut` reference therefore both run with this many threads, whatever the caller's environment says.
TORCH_THREADS = "1"


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p == str(root) or p.startswith(prefix)]


def _mirror_reachable() -> bool:
    try:
        with urllib.request.urlopen(f"{MIRROR}/dists/trixie/Release", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def gimp_chroot() -> Path:
    """The trixie root with GIMP 3; built here when missing (a few minutes, once per machine)."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("GIMP tests need root on Linux to build and enter the trixie chroot (debootstrap, mount)")
    for tool in ("unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"GIMP tests need `{tool}` on the host")
    if not (CHROOT / MARKER).is_file():
        if not _mirror_reachable():
            pytest.skip(f"no trixie chroot at {CHROOT} and the Debian mirror {MIRROR} is unreachable to build one")
        started = time.perf_counter()
        proc = subprocess.run(["bash", str(SETUP), str(CHROOT)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"building the GIMP chroot failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        print(f"\n[gimp] built the trixie chroot at {CHROOT} in {time.perf_counter() - started:.0f} s")
    return CHROOT


@dataclass
class GimpRun:
    returncode: int
    output: str
    results: dict
    out: Path
    seconds: float

    def raw(self, key: str) -> bytes:
        return (self.out / f"{key}.y8").read_bytes()


@dataclass
class GimpSession:
    """One private GIMP config (HOME) with the plug-in installed by `mos install-gimp-plugin`."""

    root: Path
    work: Path
    home: Path
    gimp_dir: Path
    models_dir: Path
    binds: list[tuple[Path, bool]] = field(default_factory=list)
    runs: int = 0
    torch_threads: str = TORCH_THREADS

    def run(self, cases: list[dict], env: dict[str, str] | None = None) -> GimpRun:
        self.runs += 1
        out = self.work / f"run{self.runs}"
        out.mkdir()
        job = out / "job.json"
        job.write_text(json.dumps({"out": str(out), "cases": cases}))
        script = "; ".join(
            [
                f"mkdir -p {self.root}/proc {self.root}/dev",
                f"mount -t proc proc {self.root}/proc",
                f"mount --rbind /dev {self.root}/dev",
                *[
                    f"mkdir -p {self.root}{src} && mount --bind {src} {self.root}{src}"
                    + (f" && mount -o remount,bind,ro {self.root}{src}" if ro else "")
                    for src, ro in self.binds
                ],
                'exec chroot "$0" /usr/bin/env -i "$@"',
            ]
        )
        variables = {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "GIMP3_DIRECTORY": str(self.gimp_dir),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "MOS_JOB": str(job),
            "OMP_NUM_THREADS": self.torch_threads,
            **(env or {}),
        }
        gimp = [
            "gimp-console-3.0", "-i", "-n", "--quit", "--batch-interpreter=python-fu-eval",
            "-b", f"exec(open({str(BATCH)!r}).read())",
        ]
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-euc", script, str(self.root),
               *[f"{k}={v}" for k, v in variables.items()], *gimp]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=GIMP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(f"gimp-console-3.0 did not finish in {GIMP_TIMEOUT_S} s:\n{output[-4000:]}")
        seconds = time.perf_counter() - started
        (out / "gimp-output.txt").write_text(output)
        results_file = out / "results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
        print(f"\n[gimp] run {self.runs}: {len(cases)} case(s) in {seconds:.1f} s")
        return GimpRun(proc.returncode, output, results, out, seconds)


def make_photo(path: Path, grey: bool = False) -> Path:
    """A smooth background with a textured elliptical object: stands in for a photo, exactly reproducible."""
    import numpy as np
    from PIL import Image

    w, h = PHOTO_SIZE
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    img = np.stack([40 + xx * 0.4, 60 + yy * 0.3, 120 - xx * 0.1], -1)
    obj = ((yy - h / 2) / 70) ** 2 + ((xx - w / 2) / 95) ** 2 < 1
    img[obj] = np.array([215, 170, 50]) + 25 * np.sin(xx[obj, None] / 6)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    pil = Image.fromarray(img, "RGB")
    (pil.convert("L") if grey else pil).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random weights whose mask on the test photo is neither (nearly) empty nor full.

    Random weights give probabilities close to 0.5, so for some seeds everything or nothing passes the threshold;
    such a mask would make the pixel comparison with `mos cut` meaningless. The first seed that gives 5-95 %
    foreground is taken (deterministic for a given model code).
    """
    import numpy as np
    from PIL import Image

    from mos_studio.core.cascade import Cascade
    from mos_studio.core.testing import write_tiny_models

    base = tmp_path_factory.mktemp("tiny-models")
    photo = np.array(Image.open(make_photo(base / "probe.png")).convert("RGB"))
    for seed in range(20):
        models = write_tiny_models(base / f"seed{seed}", seed=seed)
        fraction = float(Cascade.from_pretrained(models, device="cpu")(photo).mask.mean())
        if 0.05 < fraction < 0.95:
            return models
    pytest.fail("no tiny-model seed in 0..19 gives a mask with 5-95 % foreground on the test photo")


@pytest.fixture(scope="session")
def gimp_session(gimp_chroot: Path, tiny_models_dir: Path):
    """A private HOME in a folder that is bind-mounted into the chroot at the same path; the plug-in installed."""
    work = Path(tempfile.mkdtemp(prefix="mos-gimp-test-", dir="/tmp"))
    chroot_view = gimp_chroot / str(work).lstrip("/")
    work.chmod(0o755)
    home = work / "home"
    gimp_dir = home / ".config" / "GIMP" / "3.0"
    gimp_dir.mkdir(parents=True)
    models = work / "models"
    shutil.copytree(tiny_models_dir, models)
    install = subprocess.run(
        [sys.executable, "-m", "mos_studio.cli.main", "install-gimp-plugin", "--gimp-dir", str(gimp_dir),
         "--models-dir", str(models), "--device", "cpu"],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr
    # Everything the venv's Python needs, at the same paths inside the chroot.
    needed = {REPO, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    binds: list[tuple[Path, bool]] = []
    for path in sorted(needed, key=lambda p: len(p.parts)):
        if not any(path == b or b in path.parents for b, _ in binds):
            binds.append((path, True))
    binds.append((work, False))
    session = GimpSession(root=gimp_chroot, work=work, home=home, gimp_dir=gimp_dir, models_dir=models, binds=binds)
    yield session
    leftover = _mounts_under(gimp_chroot)
    for point in sorted(leftover, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    keep = os.environ.get("MOS_KEEP_GIMP_WORK")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    if not leftover:
        try:
            chroot_view.rmdir()  # the empty mount point the runs created inside the chroot
        except OSError:
            pass
    assert not leftover, f"mounts left under the chroot after the GIMP tests: {leftover}"


@pytest.fixture(scope="session")
def photos(gimp_session: GimpSession) -> dict[str, Path]:
    """The test photo as RGB and grey PNG, in the folder the chroot sees."""
    data = gimp_session.work / "data"
    data.mkdir(exist_ok=True)
    return {"rgb": make_photo(data / "photo.png"), "grey": make_photo(data / "grey.png", grey=True)}
