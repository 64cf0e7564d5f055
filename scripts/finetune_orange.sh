#!/usr/bin/env bash
# Teach the shipped demo cascade a seventh color, orange, with LoRA adapters, and measure it
# (docs/finetuning.md). Paper sec. 2.6: image-video joint training transfers knowledge from images to
# video, so a LoRA adapter trained on still images alone should generate orange *videos*.
#
#   RUNS=/path/to/runs bash scripts/finetune_orange.sh [images|videos|full|sr|none ...]
#
#   images  LoRA adapter from 600 orange still images (+ replay of ordinary data)  -> RUNS/adapter
#   videos  control: the same adapter from 600 orange videos (+ the same replay)    -> RUNS/adapter_videos
#   full    baseline: full fine-tune of the base stage on the images run's data   -> RUNS/full_cascade
#   sr      adapters from the same stills on ssr1 and ssr2, scored with the images adapter
#           -> RUNS/adapter_ssr1, RUNS/adapter_ssr2
#   videos_sr  the control with SR adapters too: 'videos', then adapters from the orange videos on
#           ssr1 and ssr2 -> RUNS/adapter_videos_ssr1, RUNS/adapter_videos_ssr2
#   full_sr the baseline with the SR stages too: base, ssr1 and ssr2 fully fine-tuned on the images
#           run's data (STEPS, SR_STEPS) -> RUNS/full_sr_cascade
#   none    the demo cascade without an adapter
# Each experiment trains (resuming when rerun), then scores 36 orange prompts (3 shapes x 6 motions x
# 2 seeds) and the 36 prompts of benchmarks/demo_quality.py with benchmarks/finetune_orange.py.
# STEPS (default 500) sets the base stage's optimiser steps, SR_STEPS (200) the SR stages';
# SEEDS (default "0 1") the evaluation seeds. One thread.
set -euo pipefail
RUNS=${RUNS:-runs/orange}
IV=${IV:-imagen-video}
PY=${PY:-python}
STEPS=${STEPS:-500}
SR_STEPS=${SR_STEPS:-200}
SEEDS=${SEEDS:-0 1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"
DEMO=$($PY -c "from imagen_video.cascade.registry import shipped_cascade_dir as d; print(d('demo'))")

# Data: orange stills / orange videos at the demo data's size (nothing else orange), and ordinary
# six-color data (the demo's held-out combinations excluded) to replay against forgetting.
[ -f "$RUNS/orange_images/manifest.jsonl" ] || $IV data synth --out "$RUNS/orange_images" --num 0 \
    --images 600 --height 48 --width 80 --colors orange --seed 0 --quiet
[ -f "$RUNS/orange_videos/manifest.jsonl" ] || $IV data synth --out "$RUNS/orange_videos" --num 600 \
    --frames 32 --height 48 --width 80 --fps 8 --colors orange --seed 0 --quiet
if [ ! -f "$RUNS/replay/manifest.jsonl" ]; then
  $PY -c "from imagen_video.world.spec import DEFAULT_HOLDOUT as H; print('\n'.join(c.as_text() for c in H))" \
      > "$RUNS/holdout.txt"
  $IV data synth --out "$RUNS/replay" --num 480 --images 120 --frames 32 --height 48 --width 80 --fps 8 \
      --holdout "$RUNS/holdout.txt" --seed 1 --quiet
fi

lora() {  # lora OUT DATA STAGE STEPS [finetune options...]: train (or resume) an adapter on STAGE
  local out=$1 data=$2 stage=$3 steps=$4; shift 4
  local resume=()
  [ -f "$out/adapter_config.json" ] && resume=(--resume)
  local start=$SECONDS
  $IV finetune --model demo --stage "$stage" --data "$data" --replay "$RUNS/replay" --replay-fraction 0.5 \
      --out "$out" --lora-rank 8 --target attention+conv --lr 1e-3 --max-steps "$steps" --no-progress \
      "$@" "${resume[@]}"
  echo "finetune $out wall time: $((SECONDS - start)) s"
}

full_finetune() {  # full_finetune OUT STAGE STEPS: fully fine-tune (or resume) a demo stage on the stills
  local out=$1 stage=$2 steps=$3
  [ -f "$RUNS/adapter/data/manifest.jsonl" ] || { echo "run 'images' first (its data)"; exit 2; }
  cat > "$out.json" <<JSON
{"batch_size": 8, "lr": 0.0002, "warmup_steps": 20, "ema_decay": 0.995, "max_steps": $steps,
 "checkpoint_every": 50, "log_every": 10, "seed": 0}
JSON
  local resume=()
  [ -d "$out/checkpoints" ] && resume=(--resume)
  local start=$SECONDS
  $IV train --cascade "$DEMO" --stage "$stage" --init-from "$DEMO/$stage" --data "$RUNS/adapter/data" \
      --out "$out" --config "$out.json" --no-progress "${resume[@]}"
  echo "full fine-tune $out wall time: $((SECONDS - start)) s"
}

score() {  # score NAME [benchmark options...]
  local name=$1; shift
  # shellcheck disable=SC2086
  $PY "$HERE/benchmarks/finetune_orange.py" --seeds $SEEDS --out "$RUNS/eval_$name.json" "$@"
}

for experiment in "${@:-images}"; do
  case $experiment in
    images) lora "$RUNS/adapter" "$RUNS/orange_images" base "$STEPS" --images-only
            score images --lora "$RUNS/adapter" ;;
    videos) lora "$RUNS/adapter_videos" "$RUNS/orange_videos" base "$STEPS"
            score videos --lora "$RUNS/adapter_videos" ;;
    full)   full_finetune "$RUNS/full" base "$STEPS"
            $IV cascade assemble "$RUNS/full_cascade" "$RUNS/full/stage" "$DEMO/tsr1" "$DEMO/ssr1" \
                "$DEMO/tsr2" "$DEMO/ssr2" --preset "$DEMO"
            score full --model "$RUNS/full_cascade" ;;
    sr)     [ -f "$RUNS/adapter/adapter_config.json" ] || { echo "run 'images' first (its adapter)"; exit 2; }
            lora "$RUNS/adapter_ssr1" "$RUNS/orange_images" ssr1 "$SR_STEPS" --images-only
            lora "$RUNS/adapter_ssr2" "$RUNS/orange_images" ssr2 "$SR_STEPS" --images-only
            score sr --lora "$RUNS/adapter" --lora "$RUNS/adapter_ssr1" --lora "$RUNS/adapter_ssr2" ;;
    videos_sr)  # the control as the shipped adapter: orange videos, adapters on base, ssr1 and ssr2
            [ -f "$RUNS/adapter_videos/adapter_config.json" ] || { echo "run 'videos' first (its adapter)"; exit 2; }
            lora "$RUNS/adapter_videos_ssr1" "$RUNS/orange_videos" ssr1 "$SR_STEPS"
            lora "$RUNS/adapter_videos_ssr2" "$RUNS/orange_videos" ssr2 "$SR_STEPS"
            score videos_sr --lora "$RUNS/adapter_videos" --lora "$RUNS/adapter_videos_ssr1" \
                --lora "$RUNS/adapter_videos_ssr2" ;;
    full_sr)  # the baseline as the shipped adapter: base, ssr1 and ssr2 fully fine-tuned on the stills
            full_finetune "$RUNS/full_base" base "$STEPS"
            full_finetune "$RUNS/full_ssr1" ssr1 "$SR_STEPS"
            full_finetune "$RUNS/full_ssr2" ssr2 "$SR_STEPS"
            $IV cascade assemble "$RUNS/full_sr_cascade" "$RUNS/full_base/stage" "$DEMO/tsr1" \
                "$RUNS/full_ssr1/stage" "$DEMO/tsr2" "$RUNS/full_ssr2/stage" --preset "$DEMO"
            score full_sr --model "$RUNS/full_sr_cascade" ;;
    none)   score none ;;
    *)      echo "unknown experiment $experiment (images, videos, full, sr, videos_sr, full_sr, none)"; exit 2 ;;
  esac
done
