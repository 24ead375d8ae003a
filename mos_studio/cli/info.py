"""`mos info`: version, device, and which weights are found (with their checksums)."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="version, device and weights found")
    p.add_argument("--models-dir", type=Path, default=None)
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    import torch

    from mos_studio import __version__
    from mos_studio.core.cascade import describe_device, pick_device
    from mos_studio.core.errors import WeightsError
    from mos_studio.core.weights import default_encoders, describe_models, find_models_dir

    print(f"mos_studio {__version__}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"device: {describe_device(pick_device(None))}")
    print(f"weights folder: {find_models_dir(args.models_dir)}")
    try:
        pair = default_encoders(args.models_dir)
        print(f"default pair: L {pair['L']}, H {pair['H']}")
    except WeightsError as err:
        print(f"default pair: BROKEN  {err}")
    for row in describe_models(args.models_dir):
        name = Path(row["path"]).name + ("  (default)" if row.get("default") else "")
        if row["stage"] == "Hs":
            name += "  (H for cuts of photos up to 1024 px)"
        if not row["found"]:
            print(f"  {name}: missing")
        elif row.get("ok"):
            m = row.get("metrics") or {}
            val = "  ".join(f"{k} {m[k]:.3f}" for k in ("iou", "mba", "mq") if isinstance(m.get(k), int | float))
            runs = (f"weight average of {row['soup']} runs" if row.get("soup")
                    else f"iterations {row.get('iterations')}")
            print(f"  {name}: ok  sha256 {row['sha256']}  {runs}  {row.get('dtype')}"
                  + (f"  held-out {val}" if val else ""))
        else:
            print(f"  {name}: BROKEN  {row.get('error') or 'checksum does not match its card'}")
    return 0
