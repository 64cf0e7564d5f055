#!/usr/bin/env bash
# Distill the shipped demo cascade (paper sec. 2.7; docs/distillation.md) with `imagen-video distill`, the way the
# shipped `demo-distilled` cascade was made. Three chains run side by side, one CPU thread each: the
# base, then tsr1 -> ssr1, and tsr2 -> ssr2. Every command resumes, so rerunning continues.
#
#   RUNS=/path/to/runs bash scripts/distill_demo_cascade.sh
#
# Needs the training data and caption cache of scripts/train_demo_cascade.sh (WORLD, TEXT_CACHE).
# - base: guidance distillation (w in [0, 15], eq. 5 convention), then DDIM 64 -> 32 -> 16 -> 8.
# - tsr1, ssr1 (guided in the demo, w = 4/1): guidance distillation for w in [0, 8], then 32 -> 16 -> 8,
#   then one more round, 8 -> 4, at the end.
# - tsr2, ssr2 (unguided, sampled with 2 DDIM steps from t = 0.1 in the demo): only the
#   zero-initialised w-embedding, then 8 -> 4 -> 2 on [0, 0.1]. 8 steps would be 4 times the demo's
#   own cost there, so these two go to 2 (the 2026-11-26 02:08 UTC distillation took them 32 -> 8 from t = 0.3).
# SR stages keep their sampler's truncated start (t = 0.3 for tsr1 and ssr1, 0.1 for tsr2 and ssr2):
# the rounds distill the DDIM sampler on [0, t_start], the range it visits, and the stochastic
# student samples that range.
set -euo pipefail
RUNS=${RUNS:-runs/distill}
WORLD=${WORLD:-runs/demo/world}
TEXT_CACHE=${TEXT_CACHE:-runs/demo/text_cache}
IV=${IV:-imagen-video}
SOURCE=${SOURCE:-demo}  # the shipped demo cascade (or a cascade directory)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"

cat > "$RUNS/base.json" <<'JSON'
{"guidance_steps": 600, "start_steps": 64, "target_steps": 8, "steps_per_round": 500, "batch_size": 16,
 "lr": 1e-4, "warmup_steps": 50, "checkpoint_every": 100, "keep_checkpoints": 2, "ema_decay": 0.995}
JSON
cat > "$RUNS/sr_guided.json" <<'JSON'
{"guidance_steps": 300, "start_steps": 32, "target_steps": 8, "steps_per_round": 300, "batch_size": 8,
 "lr": 1e-4, "warmup_steps": 30, "checkpoint_every": 50, "keep_checkpoints": 2, "ema_decay": 0.995,
 "w_min": 0.0, "w_max": 8.0}
JSON
cat > "$RUNS/sr_unguided.json" <<'JSON'
{"guidance_steps": 0, "start_steps": 8, "target_steps": 2, "steps_per_round": 300, "batch_size": 8,
 "lr": 1e-4, "warmup_steps": 30, "checkpoint_every": 50, "keep_checkpoints": 2, "ema_decay": 0.995,
 "w_min": 0.0, "w_max": 0.0}
JSON

distill() {  # stage config
  local resume=()
  if [ -d "$RUNS/$1/checkpoints" ]; then resume=(--resume); fi
  $IV distill --model "$SOURCE" --stage "$1" --data "$WORLD" --out "$RUNS/$1" --config "$RUNS/$2" \
      --text-cache "$TEXT_CACHE" --device cpu --no-progress "${resume[@]}" >> "$RUNS/$1.log" 2>&1
}

distill base base.json &
base_pid=$!
{ distill tsr1 sr_guided.json; distill ssr1 sr_guided.json; } &
chain_pid=$!
distill tsr2 sr_unguided.json
distill ssr2 sr_unguided.json
wait "$base_pid" "$chain_pid"

# The fully distilled cascade at 8 steps per stage (2 for tsr2, ssr2), weights stored as fp16 (half
# the size, loaded as float32).
$IV distill --model "$SOURCE" --assemble "$RUNS/distilled_8" --name demo-distilled-8 \
    --weights-dtype fp16 --use base="$RUNS/base" --use tsr1="$RUNS/tsr1" --use ssr1="$RUNS/ssr1" \
    --use tsr2="$RUNS/tsr2" --use ssr2="$RUNS/ssr2"

# One more progressive round for tsr1 and ssr1 (8 -> 4), from their 8-step students as assembled
# above: the demo samples them with 4 guided DDIM steps, so at 8 student steps they saved nothing.
more() {  # stage
  local resume=()
  if [ -d "$RUNS/$1_4/checkpoints" ]; then resume=(--resume); fi
  $IV distill --model "$RUNS/distilled_8" --stage "$1" --data "$WORLD" --out "$RUNS/$1_4" \
      --config "$RUNS/sr_guided.json" --phase progressive --start-steps 8 --target-steps 4 \
      --text-cache "$TEXT_CACHE" --device cpu --no-progress "${resume[@]}" >> "$RUNS/$1_4.log" 2>&1
}
more tsr1 &
tsr1_pid=$!
more ssr1
wait "$tsr1_pid"

# The shipped cascade: base 8, tsr1 and ssr1 4, tsr2 and ssr2 2 stochastic steps.
$IV distill --model "$RUNS/distilled_8" --assemble "$RUNS/demo_cascade_distilled" --name demo-distilled \
    --weights-dtype fp16 --use tsr1="$RUNS/tsr1_4" --use ssr1="$RUNS/ssr1_4"
