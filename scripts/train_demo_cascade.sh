#!/usr/bin/env bash
# Train the embedded demo cascade (docs/demo-cascade.md) on the synthetic world with the project's own commands.
# Two chains run side by side, one CPU thread each (torch with 2 threads on a busy 2-core machine is
# many times slower than with 1): the base stage on one core, the four SR stages in turn on the other.
# Every command resumes from its last checkpoint, so rerunning the script continues an interrupted run.
#
#   RUNS=/path/to/runs bash scripts/train_demo_cascade.sh
#
# Step counts are overridable: BASE_STEPS, TSR1_STEPS, SSR1_STEPS, TSR2_STEPS, SSR2_STEPS, and the
# totals after the fine-tuning phase, TSR2_FT_STEPS and SSR2_FT_STEPS.
# Continue the shipped stages instead:  FROM_SHIPPED=1 SSR2_STEPS=3000 ... bash scripts/train_demo_cascade.sh
set -euo pipefail
RUNS=${RUNS:-runs/demo}
IV=${IV:-imagen-video}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"

if [ ! -f "$RUNS/world/manifest.jsonl" ]; then
  python -c "from imagen_video.world.spec import DEFAULT_HOLDOUT as H; print('\n'.join(f'{c.color} {c.shape} {c.motion}' for c in H))" > "$RUNS/holdout.txt"
  $IV data synth --out "$RUNS/world" --num 4000 --images 1000 --frames 32 --height 48 --width 80 --fps 8 \
      --holdout "$RUNS/holdout.txt" --seed 0 --quiet
fi

cat > "$RUNS/train_base.json" <<'JSON'
{"batch_size": 16, "lr": 0.0005, "warmup_steps": 100, "ema_decay": 0.999, "max_steps": 100000,
 "checkpoint_every": 100, "keep_checkpoints": 2, "log_every": 10, "seed": 0, "num_workers": 1,
 "image_fraction": 0.2}
JSON
cat > "$RUNS/train_sr.json" <<'JSON'
{"batch_size": 8, "lr": 0.001, "warmup_steps": 100, "ema_decay": 0.999, "max_steps": 100000,
 "checkpoint_every": 100, "keep_checkpoints": 2, "log_every": 10, "seed": 0, "num_workers": 1}
JSON

# FROM_SHIPPED=1: continue training the shipped demo stages (their networks, their weights; the step
# counts then count the new steps) instead of training the demo preset from scratch.
CASCADE=demo
if [ "${FROM_SHIPPED:-0}" = 1 ]; then
  CASCADE=$(python -c "from imagen_video.cascade.registry import shipped_cascade_dir as d; print(d('demo'))")
fi

train() {  # stage steps config [more train options]
  local start=()
  if [ -e "$RUNS/$1/checkpoints/latest" ]; then start=(--resume)
  elif [ "$CASCADE" != demo ]; then start=(--init-from "$CASCADE/$1"); fi
  $IV train --stage "$1" --data "$RUNS/world" --out "$RUNS/$1" --cascade "$CASCADE" --config "$3" \
      --max-steps "$2" --text-cache "$RUNS/text_cache" --no-progress "${start[@]}" "${@:4}"
}

# Build the text-embedding cache once, before the chains share it.
$IV encode-text --encoder embedded --out "$RUNS/text_cache" --data "$RUNS/world" --no-progress

train base "${BASE_STEPS:-7600}" "$RUNS/train_base.json" > "$RUNS/base.log" 2>&1 &
base_pid=$!
{
  train tsr1 "${TSR1_STEPS:-1000}" "$RUNS/train_sr.json"
  train ssr1 "${SSR1_STEPS:-2500}" "$RUNS/train_sr.json"
  train tsr2 "${TSR2_STEPS:-1768}" "$RUNS/train_sr.json"
  train ssr2 "${SSR2_STEPS:-4251}" "$RUNS/train_sr.json"
  # Fine-tuning (added 2026-11-26): the demo samples tsr2 and ssr2 from t = 0.1 (their noised input), so they
  # continue on t ~ U(0, 0.35) only, close to the times they are sampled at.
  train tsr2 "${TSR2_FT_STEPS:-7246}" "$RUNS/train_sr.json" --t-max 0.35
  train ssr2 "${SSR2_FT_STEPS:-6793}" "$RUNS/train_sr.json" --t-max 0.35
} > "$RUNS/sr.log" 2>&1
wait "$base_pid"

$IV cascade assemble "$RUNS/cascade" "$RUNS"/base/stage "$RUNS"/tsr1/stage "$RUNS"/ssr1/stage \
    "$RUNS"/tsr2/stage "$RUNS"/ssr2/stage --preset demo
