#!/usr/bin/env bash
# Distill the shipped demo cascade (paper sec. 2.7; docs/distillation.md) with `imagen-video distill`, the way the
# shipped `demo-distilled` cascade was made. Every command resumes, so rerunning continues.
#
#   RUNS=/path/to/runs bash scripts/distill_demo_cascade.sh
#
# Needs the training data and caption cache of scripts/train_demo_cascade.sh (WORLD, TEXT_CACHE).
# 1. base, tsr1, ssr1 (guided in the demo, w = 4 / 1 oscillating): guidance distillation, for w in
#    [0, 8] (eq. 5 convention). Each student keeps its teacher's DDIM sampler and step count (8 for the
#    base, 4 from t = 0.3 for tsr1 and ssr1) with one forward per step instead of two.
# 2. One progressive round (Salimans & Ho 2022) for the base: its 8 DDIM steps to 4 stochastic ones
#    (docs/math.md sec. 12). tsr1 and ssr1 stay at their teacher's 4 steps.
# tsr2 and ssr2 are unguided 2-step stages in the demo: they are kept as they are.
# The base runs on one core, tsr1 then ssr1 on the other (one CPU thread each).
set -euo pipefail
RUNS=${RUNS:-runs/distill}
WORLD=${WORLD:-runs/demo/world}
TEXT_CACHE=${TEXT_CACHE:-runs/demo/text_cache}
IV=${IV:-imagen-video}
SOURCE=${SOURCE:-demo}  # the shipped demo cascade (or a cascade directory)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"

cat > "$RUNS/base.json" <<'JSON'
{"guidance_steps": 800, "batch_size": 16, "lr": 1e-4, "warmup_steps": 50, "checkpoint_every": 100,
 "keep_checkpoints": 2, "ema_decay": 0.995, "w_min": 0.0, "w_max": 8.0}
JSON
cat > "$RUNS/sr.json" <<'JSON'
{"guidance_steps": 600, "batch_size": 8, "lr": 1e-4, "warmup_steps": 30, "checkpoint_every": 50,
 "keep_checkpoints": 2, "ema_decay": 0.995, "w_min": 0.0, "w_max": 8.0}
JSON

distill() {  # stage config
  local resume=()
  if [ -d "$RUNS/$1/checkpoints" ]; then resume=(--resume); fi
  $IV distill --model "$SOURCE" --stage "$1" --phase guidance --data "$WORLD" --out "$RUNS/$1" \
      --config "$RUNS/$2" --text-cache "$TEXT_CACHE" --device cpu --no-progress "${resume[@]}" \
      >> "$RUNS/$1.log" 2>&1
}

distill base base.json &
base_pid=$!
distill tsr1 sr.json
distill ssr1 sr.json
wait "$base_pid"

# The 8-step cascade: guidance-distilled base, tsr1 and ssr1 (DDIM 8 / 4 / 4, one forward per step), the
# demo's own tsr2 and ssr2 (DDIM 2 / 2, unguided); weights stored as fp16 (half the size, loaded as
# float32).
$IV distill --model "$SOURCE" --assemble "$RUNS/distilled_8" --name demo-distilled-8 \
    --weights-dtype fp16 --use base="$RUNS/base" --use tsr1="$RUNS/tsr1" --use ssr1="$RUNS/ssr1"

cat > "$RUNS/base_round.json" <<'JSON'
{"start_steps": 8, "target_steps": 4, "steps_per_round": 500, "batch_size": 16, "lr": 1e-4,
 "warmup_steps": 50, "checkpoint_every": 100, "keep_checkpoints": 2, "ema_decay": 0.995,
 "w_min": 0.0, "w_max": 8.0}
JSON
resume=()
if [ -d "$RUNS/base_4/checkpoints" ]; then resume=(--resume); fi
$IV distill --model "$RUNS/distilled_8" --stage base --phase progressive --data "$WORLD" \
    --out "$RUNS/base_4" --config "$RUNS/base_round.json" --text-cache "$TEXT_CACHE" --device cpu \
    --no-progress "${resume[@]}" >> "$RUNS/base_4.log" 2>&1

# The shipped cascade: the 4-step base, the rest of the 8-step cascade.
$IV distill --model "$RUNS/distilled_8" --assemble "$RUNS/demo_cascade_distilled" --name demo-distilled \
    --weights-dtype fp16 --use base="$RUNS/base_4"
