#!/usr/bin/env bash
# Teach the shipped demo cascade a seventh color, orange, from still images only with a LoRA adapter on
# the base stage (paper sec. 2.6: image-video joint training transfers knowledge from images to video),
# then measure it (docs/finetuning.md). One CPU thread; every step resumes, so rerunning continues.
#
#   RUNS=/path/to/runs bash scripts/finetune_orange.sh
#
# STEPS (default 500) sets the adapter's optimiser steps; SEEDS (default "0 1") the evaluation seeds.
set -euo pipefail
RUNS=${RUNS:-runs/orange}
IV=${IV:-imagen-video}
PY=${PY:-python}
STEPS=${STEPS:-500}
SEEDS=${SEEDS:-0 1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"

# 600 still images of orange shapes (nothing else orange), at the demo data's 48x80.
[ -f "$RUNS/orange_images/manifest.jsonl" ] || $IV data synth --out "$RUNS/orange_images" --num 0 \
    --images 600 --height 48 --width 80 --colors orange --seed 0 --quiet
# Ordinary data to replay against forgetting: the demo's world (six colors, held-out combos excluded).
if [ ! -f "$RUNS/replay/manifest.jsonl" ]; then
  $PY -c "from imagen_video.world.spec import DEFAULT_HOLDOUT as H; print('\n'.join(c.as_text() for c in H))" \
      > "$RUNS/holdout.txt"
  $IV data synth --out "$RUNS/replay" --num 480 --images 120 --frames 32 --height 48 --width 80 --fps 8 \
      --holdout "$RUNS/holdout.txt" --seed 1 --quiet
fi

resume=()
[ -f "$RUNS/adapter/adapter_config.json" ] && resume=(--resume)
start=$SECONDS
$IV finetune --model demo --stage base --data "$RUNS/orange_images" --images-only \
    --replay "$RUNS/replay" --replay-fraction 0.5 --out "$RUNS/adapter" --lora-rank 8 \
    --target attention+conv --lr 1e-3 --max-steps "$STEPS" --no-progress "${resume[@]}"
echo "finetune wall time: $((SECONDS - start)) s"

# shellcheck disable=SC2086
$PY "$HERE/benchmarks/finetune_orange.py" --lora "$RUNS/adapter" --seeds $SEEDS \
    --out "$RUNS/eval_adapter.json"
