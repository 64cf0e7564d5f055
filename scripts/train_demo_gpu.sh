#!/usr/bin/env bash
# The GPU phase of the embedded demo cascade (issue 7), run after scripts/train_demo_cascade.sh: base,
# tsr1, ssr1 and ssr2 continue from that run's stage folders on one CUDA GPU, four processes side by
# side (the networks are small, so one process leaves most of the GPU idle), in bf16 autocast at batch
# 64. tsr2 keeps its CPU weights. Every command resumes, so rerunning the script continues.
#
#   RUNS=runs/demo GPU_RUNS=runs/demo_gpu bash scripts/train_demo_gpu.sh
#
# Step counts (the shipped ones) are overridable: BASE_STEPS, TSR1_STEPS, SSR1_STEPS, SSR2_STEPS;
# DEVICE (default cuda) names the torch device.
# The shipped run took 12 minutes on one H200 (docs/demo-cascade.md, session 5).
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

train() {  # stage steps config [more train options]
  local start=(--init-from "$RUNS/cascade/$1")
  if [ -e "$GPU_RUNS/$1/checkpoints/latest" ]; then start=(--resume); fi
  $IV train --stage "$1" --data "$RUNS/world" --out "$GPU_RUNS/$1" --cascade "$RUNS/cascade" \
      --config "$3" --max-steps "$2" --text-cache "$RUNS/text_cache" --device "${DEVICE:-cuda}" --no-progress \
      "${start[@]}" "${@:4}" > "$GPU_RUNS/$1.log" 2>&1
}

pids=()
train base "${BASE_STEPS:-6091}" "$GPU_RUNS/train_base.json" & pids+=($!)
train tsr1 "${TSR1_STEPS:-6429}" "$GPU_RUNS/train_sr.json" & pids+=($!)
train ssr1 "${SSR1_STEPS:-3230}" "$GPU_RUNS/train_sr.json" & pids+=($!)
train ssr2 "${SSR2_STEPS:-2504}" "$GPU_RUNS/train_sr.json" --t-max 0.35 & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed stage stops the script here

$IV cascade assemble "$GPU_RUNS/cascade" "$GPU_RUNS"/base/stage "$GPU_RUNS"/tsr1/stage \
    "$GPU_RUNS"/ssr1/stage "$RUNS"/tsr2/stage "$GPU_RUNS"/ssr2/stage --preset demo
