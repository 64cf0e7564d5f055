#!/usr/bin/env bash
# The GPU phases of the embedded demo cascade (docs/demo-cascade.md), run after scripts/train_demo_cascade.sh, on one
# CUDA GPU, four `train` processes side by side (the networks are small, so one process leaves most of
# the GPU idle), in bf16 autocast at batch 64, each starting from a stage folder (--init-from):
# - phase 1 (2026-11-26, 06:02 UTC weights): base, tsr1, ssr1 and ssr2 from the CPU run's stage folders;
# - phase 2 (2026-11-26, 07:45 UTC weights, the shipped ones): base, ssr1 and ssr2 from phase 1's, and tsr2 from the CPU run's.
# Every command resumes, so rerunning the script continues.
#
#   RUNS=runs/demo GPU_RUNS=runs/demo_gpu bash scripts/train_demo_gpu.sh
#
# Step counts (the shipped ones) are overridable: BASE_STEPS, TSR1_STEPS, SSR1_STEPS, SSR2_STEPS for
# phase 1, and BASE2_STEPS, SSR1_2_STEPS, TSR2_STEPS, SSR2_2_STEPS for phase 2; DEVICE (default cuda)
# names the torch device. The shipped runs took about 11 and 7 minutes on one H200 (stopped by time;
# docs/demo-cascade.md, "Training record").
set -euo pipefail
RUNS=${RUNS:-runs/demo}
GPU_RUNS=${GPU_RUNS:-runs/demo_gpu}
IV=${IV:-imagen-video}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$GPU_RUNS"
[ -f "$RUNS/cascade/cascade.json" ] || { echo "run scripts/train_demo_cascade.sh first ($RUNS/cascade)" >&2; exit 2; }

cat > "$GPU_RUNS/train_base.json" <<'JSON'
{"batch_size": 64, "lr": 0.0005, "warmup_steps": 200, "ema_decay": 0.999, "max_steps": 100000,
 "checkpoint_every": 500, "keep_checkpoints": 1, "log_every": 50, "seed": 7, "num_workers": 3,
 "image_fraction": 0.2, "precision": "bf16"}
JSON
cat > "$GPU_RUNS/train_sr.json" <<'JSON'
{"batch_size": 64, "lr": 0.001, "warmup_steps": 200, "ema_decay": 0.999, "max_steps": 100000,
 "checkpoint_every": 500, "keep_checkpoints": 1, "log_every": 50, "seed": 7, "num_workers": 3,
 "precision": "bf16"}
JSON

train() {  # stage out-folder init-folder steps config [more train options]
  local start=(--init-from "$3")
  if [ -e "$GPU_RUNS/$2/checkpoints/latest" ]; then start=(--resume); fi
  $IV train --stage "$1" --data "$RUNS/world" --out "$GPU_RUNS/$2" --cascade "$RUNS/cascade" \
      --config "$5" --max-steps "$4" --text-cache "$RUNS/text_cache" --device "${DEVICE:-cuda}" --no-progress \
      "${start[@]}" "${@:6}" > "$GPU_RUNS/$2.log" 2>&1
}
wait_all() { for pid in "$@"; do wait "$pid"; done; }  # set -e: a failed stage stops the script here

BASE=$GPU_RUNS/train_base.json SR=$GPU_RUNS/train_sr.json
p=(); train base base "$RUNS/cascade/base" "${BASE_STEPS:-6091}" "$BASE" & p+=($!)
train tsr1 tsr1 "$RUNS/cascade/tsr1" "${TSR1_STEPS:-6429}" "$SR" & p+=($!)
train ssr1 ssr1 "$RUNS/cascade/ssr1" "${SSR1_STEPS:-3230}" "$SR" & p+=($!)
train ssr2 ssr2 "$RUNS/cascade/ssr2" "${SSR2_STEPS:-2504}" "$SR" --t-max 0.35 & p+=($!)
wait_all "${p[@]}"

p=(); train base base_2 "$GPU_RUNS/base/stage" "${BASE2_STEPS:-3692}" "$BASE" & p+=($!)
train ssr1 ssr1_2 "$GPU_RUNS/ssr1/stage" "${SSR1_2_STEPS:-1900}" "$SR" & p+=($!)
train tsr2 tsr2 "$RUNS/cascade/tsr2" "${TSR2_STEPS:-1456}" "$SR" --t-max 0.35 & p+=($!)
train ssr2 ssr2_2 "$GPU_RUNS/ssr2/stage" "${SSR2_2_STEPS:-1481}" "$SR" --t-max 0.35 & p+=($!)
wait_all "${p[@]}"

$IV cascade assemble "$GPU_RUNS/cascade" "$GPU_RUNS"/base_2/stage "$GPU_RUNS"/tsr1/stage \
    "$GPU_RUNS"/ssr1_2/stage "$GPU_RUNS"/tsr2/stage "$GPU_RUNS"/ssr2_2/stage --preset demo
