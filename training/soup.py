"""Average the weights of runs that share one start (a "model soup", as in WiSE-FT) into shipped weights + card.

    python -m training.soup models/meticulousnet_effl0_L.safetensors runs/teacher_L336f/last.pt \
        --stage L --weights 0.5,0.5 --out DIR [--fp16] [--overwrite] [--l-flip] [--provenance P.json] [--notes TEXT]

Why: a short fine-tune on new data gains on that data and loses elsewhere (stop 24's L runs: general photos up, the
cats down); the average of the start and the fine-tuned weights often keeps both gains, costs nothing at inference
and needs no more training. Only runs of one lineage average well (one initialisation, one architecture), so the
inputs must share the architecture exactly; the card records every input with its checksum, run and weight.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from mos_studio.core.errors import MosError
from mos_studio.core.model import MeticulousNet
from mos_studio.core.weights import load_model, read_card, save_weights, sha256_file, weights_filename

from .export import add_output_args, read_checkpoint, read_provenance, run_fields

# What each input contributes to the card (from a checkpoint, or from a shipped card).
_RUN_KEYS = ("command", "config_name", "iterations", "train_settings", "wall_time_s", "initialised_from", "hardware",
             "metrics")


def _load(path: Path) -> tuple[MeticulousNet, dict, str]:
    """The model, what is known of its run, and its stage, from a training checkpoint or shipped safetensors."""
    if not path.is_file():
        raise MosError(f"{path}: not found")
    if path.suffix == ".safetensors":
        card = read_card(path)
        model = load_model(path)  # verifies the card's checksum
        run = {k: card[k] for k in _RUN_KEYS if k in card}
        run["previous_runs"] = card.get("previous_runs", [])
        run["card"] = card
        return model, run, str(card.get("stage", "H" if model.in_channels == 4 else "L"))
    model, ckpt = read_checkpoint(path, unreadable="neither shipped safetensors nor a readable training checkpoint")
    run = run_fields(ckpt)
    run["l_size"] = ckpt.get("config", {}).get("data", {}).get("size")
    return model.eval(), run, str(ckpt["stage"])


def parse_weights(text: str | None, count: int) -> list[float]:
    """Uniform when not given; otherwise one positive number per input, summing to 1."""
    if not text:
        return [1.0 / count] * count
    try:
        ws = [float(w) for w in text.split(",")]
    except ValueError as err:
        raise MosError(f"--weights {text!r}: not a comma-separated list of numbers") from err
    return check_weights(ws, count, text)


def check_weights(ws: list[float], count: int, text: str) -> list[float]:
    """One positive, finite weight per input, summing to 1 (`text` is how the user wrote them, for the error)."""
    if len(ws) != count:
        raise MosError(f"--weights {text!r}: {len(ws)} numbers for {count} inputs")
    if any(not math.isfinite(w) or w <= 0 for w in ws) or abs(sum(ws) - 1.0) > 1e-6:
        raise MosError(f"--weights {text!r}: each must be positive and together they must sum to 1")
    return ws


def soup(inputs: list[str | Path], stage: str, out_dir: str | Path, weights: list[float] | None = None,
         fp16: bool = False, overwrite: bool = False, provenance: str | Path | None = None,
         notes: str | None = None, l_flip: bool = False, command: str = "") -> Path:
    """Write the weighted average of `inputs` (two or more) as `stage`'s weights in `out_dir`.

    The card keeps the first input card's `inference` settings (L and H; the cascade runs Hs with H's), so a soup can
    replace the shipped file it starts from.
    """
    if len(inputs) < 2:
        raise MosError("a soup needs at least two inputs")
    weights = (check_weights(list(weights), len(inputs), ",".join(map(str, weights))) if weights
               else parse_weights(None, len(inputs)))
    if stage not in ("L", "H", "Hs"):
        raise MosError(f"stage {stage!r}: not one of L, H, Hs")
    loaded = [(Path(p), *_load(Path(p))) for p in inputs]
    first_path, first, _, _ = loaded[0]
    want = "H" if stage == "Hs" else stage
    for path, model, _, st in loaded:
        if ("H" if st == "Hs" else st) != want:
            raise MosError(f"{path}: holds a stage-{st} model, not {stage}")
        if model.config() != first.config():
            raise MosError(f"{path}: its architecture differs from {first_path}'s; only runs of one lineage average")
    states = [m.state_dict() for _, m, _, _ in loaded]
    avg = {}
    for key, ref in states[0].items():
        if ref.is_floating_point():
            avg[key] = sum(w * s[key].float() for w, s in zip(weights, states, strict=True))
        else:  # BatchNorm's step counters: not averaged
            avg[key] = ref.clone()
    out_model = MeticulousNet.from_config(first.config())
    out_model.load_state_dict(avg)
    path = Path(out_dir) / weights_filename(out_model.encoder_name, stage)
    if path.exists() and not overwrite:
        raise MosError(f"{path}: already exists; pass --overwrite to replace it")
    origin = read_provenance(provenance) if provenance is not None else None

    members, previous, data, enc_init, l_size, used_for, inference = [], [], [], {}, None, None, None
    for (p, _, run, _), w in zip(loaded, weights, strict=True):
        card = run.pop("card", None)
        prev = run.pop("previous_runs", [])
        member = {"source": str(p), "sha256": sha256_file(p), "weight": w, **{k: run[k] for k in _RUN_KEYS if k in run}}
        if card is not None and card.get("soup"):
            member["soup"] = card["soup"]  # an input that is itself an average keeps its own inputs in the lineage
        members.append(member)
        previous.extend(r for r in prev if r not in previous)
        src = card if card is not None else run
        data.extend(d for d in src.get("training_data", []) if d not in data)
        enc_init = enc_init or dict(src.get("encoder_init") or {})
        used_for = used_for or (card or {}).get("used_for")  # e.g. the small-photo H's scope
        if l_size is None:
            l_size = (card.get("inference", {}).get("l_size") if card is not None else run.get("l_size"))
        if inference is None and stage != "Hs" and card is not None and card.get("inference"):
            # a shipped card's settings the cascade reads (L's second look, H's refine guards, …): a soup made to
            # replace that file must not silently drop them (stop 53: stop 48's l_zoom fell out of such a soup).
            # The small-photo H runs with the large-photo H's settings, so an Hs card holds none.
            inference = dict(card["inference"])
    out: dict = {
        "stage": stage,
        "training_data": data,
        "command": command,
        "soup": members,
        "encoder_init": enc_init,
        "hardware": "no training: a weighted average of the inputs' tensors",
    }
    if origin is not None:
        out["data_provenance"] = origin
    if notes:
        out["notes"] = notes
    if inference is not None:
        out["inference"] = inference
    if stage == "L" and l_size:
        out.setdefault("inference", {})["l_size"] = int(l_size)
        if l_flip:
            out["inference"]["l_flip"] = True
    if used_for:
        out["used_for"] = used_for
    if previous:
        out["previous_runs"] = previous
    return save_weights(out_model, path, out, fp16=fp16)


def _command(argv: list[str]) -> str:
    """The command line for the card, with the notes (stored in the card on their own) left out."""
    words, skip = [], False
    for word in argv:
        if skip:
            words.append("TEXT")
            skip = False
        elif word == "--notes":
            words.append(word)
            skip = True
        else:
            words.append(shlex.quote(word) if not word.startswith("--notes=") else "--notes=TEXT")
    return "python -m training.soup " + " ".join(words)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.soup", description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="training checkpoints (.pt) or shipped weights (.safetensors)")
    ap.add_argument("--stage", required=True, choices=["L", "H", "Hs"])
    ap.add_argument("--weights", help="comma-separated, one per input, summing to 1 (default: equal)")
    add_output_args(ap)
    args = ap.parse_args(argv)
    try:
        weights = parse_weights(args.weights, len(args.inputs))
        path = soup(args.inputs, args.stage, args.out, weights, args.fp16, args.overwrite, args.provenance,
                    args.notes, args.l_flip, command=_command(argv if argv is not None else sys.argv[1:]))
    except MosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
