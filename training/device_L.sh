#!/usr/bin/env bash
# One call on a lent GPU: train L (or, with STAGE=H, H) on a training pack for a fixed time and bring back what
# export needs.
# docs/TRAINING.md ("Training on a lent GPU") gives the whole sequence. From the checkout's root, with the pack
# carried (the `run` tool: carry ["data/pack_L"]):
#   bash training/device_L.sh data/pack_L 420
# A pack built with --parts N: calls 1..N-1 each carry one part (command: ls data/pack_L), the last call carries
# the last part, val/, config.toml and pack.json (pack.json's "calls" lists them) and runs this script.
# Arguments: the pack folder, the training budget in seconds (the schedule is compressed to fit it), the weights L
# starts from ("none": the config's own start). Writes into $OUT (./out/device when unset): train.log, losses.csv,
# val.csv, the last validation grid, gpu.csv (the GPU's load, where nvidia-smi exists), run.pt (the checkpoint
# without optimizer state, under the 16 MiB a device call brings back) and, with [val] keep_best, best.pt (the
# best-validating weights, likewise), which `python -m training.export run.pt --stage L` turns into shipped weights.
# STAGE=H trains H on an H pack (`training.pack build … --tiles N`); its default start is the shipped large-photo H
# (models/meticulousnet_effl0_H.safetensors); name the small-photo H's file as INIT to train that one.
set -uo pipefail
STAGE=${STAGE:-L}
case "$STAGE" in
  L | H) ;;
  *) echo "error: STAGE must be L or H, not $STAGE" >&2; exit 2 ;;
esac
PACK=${1:-data/pack_$STAGE}
BUDGET=${2:-420}
INIT=${3:-models/meticulousnet_effl0_$STAGE.safetensors}
PY=${PYTHON:-python3}
OUT=${OUT:-out/device}
RUN=${RUN_DIR:-/tmp/mos_device_$STAGE}
mkdir -p "$OUT"
rm -rf "$RUN"
export PYTHONUNBUFFERED=1
if [ ! -f "$PACK/config.toml" ]; then
  echo "error: $PACK/config.toml not found: build the pack first (python -m training.pack build) and carry it" >&2
  exit 2
fi
packed=$(grep -m1 '^stage = ' "$PACK/config.toml" | tr -d '" ' | cut -d= -f2)
if [ "${packed:-L}" != "$STAGE" ]; then
  echo "error: $PACK/config.toml is a stage ${packed:-L} pack, not $STAGE (STAGE=${packed:-L} trains it)" >&2
  exit 2
fi
"$PY" -c "import torch, platform; c = torch.cuda.is_available(); print('python', platform.python_version(), \
'torch', torch.__version__, 'device', torch.cuda.get_device_name(0) if c else 'cpu (no CUDA)')" | tee "$OUT/train.log"
echo "pack parts here: $(cd "$PACK" && ls -d part* 2>/dev/null | tr '\n' ' ')(a part a staging call left on a machine that went cold is missing; training goes on without it)" | tee -a "$OUT/train.log"
init=()
[ "$INIT" = none ] || init=(--init-from "$INIT")
# the GPU's load every 5 s: whether the DataLoader keeps it fed (stop 40's run reached 7.3 steps a second, a third
# of what the samples' CPU cost allowed, and nothing said which side waited)
sampler=
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >"$OUT/gpu.csv" 2>/dev/null &
  sampler=$!
fi
echo "stage $STAGE from $INIT" | tee -a "$OUT/train.log"
"$PY" -m training.train --stage "$STAGE" --config "$PACK/config.toml" "${init[@]}" --out "$RUN" \
  --max-seconds "$BUDGET" 2>&1 | tee -a "$OUT/train.log"
status=${PIPESTATUS[0]}
[ -z "$sampler" ] || kill "$sampler" 2>/dev/null
if [ -f "$RUN/last.pt" ]; then
  "$PY" -m training.pack slim "$RUN/last.pt" "$OUT/run.pt" | tee -a "$OUT/train.log"
  cp "$RUN/losses.csv" "$OUT/" 2>/dev/null
  cp "$RUN/val.csv" "$OUT/" 2>/dev/null
  # with [val] keep_best: the weights of the best validation, the start included (already without Adam's state)
  [ ! -f "$RUN/best.pt" ] || cp "$RUN/best.pt" "$OUT/best.pt"
  last_png=$(ls "$RUN"/val_*.png 2>/dev/null | tail -1)
  [ -z "$last_png" ] || cp "$last_png" "$OUT/val_last.png"
fi
exit "$status"
