#!/usr/bin/env bash
# Every GPU measurement of the paper-scale benchmark (docs/performance.md, "Paper scale"), on one CUDA
# GPU in at most 8 minutes, one JSON line per measurement under OUT (default benchmarks/results/paper_scale):
#   base_train.json      5.6B base train step at 16x24x40, bf16, the largest batch that fits with the
#                        memory options (checkpointing + 8-bit AdamW; BASE_BATCHES overrides the tries)
#   base_train_fsdp.json the same step through FSDP2 under torchrun with one rank (--fsdp)
#   sample_STAGE.json    guided sampling step (and the distilled single forward) of every stage; ssr3 at
#                        128x768x1280 through spatial tiles of SSR3_TILE
#   cascade.json         seconds and FLOPs per video, original vs distilled 8-step settings
#   peers.json           ours vs diffusers and imagen-pytorch on the reference workload, bf16 (needs the
#                        peer virtualenv of benchmarks/peers/setup.sh at PEER_VENV; skipped without it)
#
#   bash scripts/gpu_paper_scale.sh [OUT]
#   PAPER_SCALE_SMOKE=1 bash scripts/gpu_paper_scale.sh /tmp/smoke   # the same steps on the CPU, tiny preset
#
# Each command has its own time limit and all of them share BUDGET seconds (default 470), so one slow
# or failing measurement does not stop the others and the script ends within 8 minutes; a failure or a
# skip leaves a line {"error": ...} in its file. IV names the CLI (default imagen-video).
set -uo pipefail
OUT=${1:-benchmarks/results/paper_scale}
IV=${IV:-imagen-video}
PYTHON=${PYTHON:-python}
BUDGET=${BUDGET:-470}
mkdir -p "$OUT"

if [ "${PAPER_SCALE_SMOKE:-0}" = 1 ]; then
  DEVICE=cpu PRESET=tiny STAGES="ssr base tsr" TOP=ssr BASE_BATCHES="2 1" TILE=8x8
  FAST=(--repeats 1 --warmup 0) OPTIM=adamw LIMIT=120 TRAIN_LIMIT=120
else
  DEVICE=cuda PRESET=paper STAGES="ssr3 base tsr1 ssr1 ssr2 tsr2 tsr3" TOP=ssr3
  BASE_BATCHES=${BASE_BATCHES:-} TILE=${SSR3_TILE:-192x320}
  FAST=(--repeats 2 --warmup 1) OPTIM=${BASE_OPTIMIZER:-adamw8bit} LIMIT=150 TRAIN_LIMIT=240
fi
BENCH=(bench stage --preset "$PRESET" --device "$DEVICE" "${FAST[@]}")

# run NAME SECONDS COMMAND...: the command's last stdout line to OUT/NAME.json, or an error line.
run() {
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo '{"error": "skipped: time budget spent"}' >"$OUT/$name.json"
    echo "$name: skipped (time budget spent)" >&2
    return 1
  fi
  if [ "$limit" -gt "$left" ]; then limit=$left; fi
  if timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; then
    tail -n 1 "$OUT/$name.out" >"$OUT/$name.json"
    rm -f "$OUT/$name.err"
  else
    local code=$?
    printf '{"error": "exit %s", "stderr": %s}\n' "$code" \
      "$(tail -n 3 "$OUT/$name.err" | "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" \
      >"$OUT/$name.json"
  fi
  rm -f "$OUT/$name.out"
  echo "$name: $((SECONDS - started)) s: $(head -c 300 "$OUT/$name.json")" >&2
  grep -q '"error"' "$OUT/$name.json" && return 1 || return 0
}

# 1. Base train step: the largest batch that fits (memory options: activation checkpointing per block,
#    8-bit AdamW state; bf16 autocast), trying the memory model's largest batch for 80 GB first. The
#    warm-up step includes torchao's compilation of its 8-bit update, hence the longer limit.
if [ -z "$BASE_BATCHES" ]; then
  max=$("$IV" "${BENCH[@]}" --stage base --mode train --checkpointing --optimizer "$OPTIM" --predict-only \
    | "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["predicted_max_batch_80gib"])')
  BASE_BATCHES="$max $((max / 2)) 1"
  echo "memory model: largest base batch for 80 GB: $max" >&2
fi
for batch in $BASE_BATCHES; do
  [ "$batch" -ge 1 ] || continue
  run base_train "$TRAIN_LIMIT" "$IV" "${BENCH[@]}" --stage base --mode train --batch "$batch" \
    --checkpointing --optimizer "$OPTIM" && break
done

# 2. Guided sampling step of every stage (the top stage through spatial tiles).
for stage in $STAGES; do
  tile=()
  if [ "$stage" = "$TOP" ]; then tile=(--tile "$TILE"); fi
  run "sample_$stage" "$LIMIT" "$IV" "${BENCH[@]}" --stage "$stage" --mode sample --batch 1 "${tile[@]}"
done

# 3. The same path through FSDP2 (per-block fully_shard, bf16 MixedPrecisionPolicy) under torchrun.
run base_train_fsdp "$LIMIT" "$PYTHON" -m torch.distributed.run --nproc_per_node 1 -m imagen_video.cli \
  "${BENCH[@]}" --stage base --mode train --batch 1 --fsdp --checkpointing --optimizer "$OPTIM"

# 4. Whole cascade per video: measured step times x steps, FLOPs of both sampler settings.
run cascade "$LIMIT" "$IV" bench cascade --preset "$PRESET" --results "$OUT"/sample_*.json

# 5. Peers on the same device, bf16 on CUDA.
if [ -x "${PEER_VENV:-.peer-venv}/bin/python" ]; then
  run peers 240 "$PYTHON" benchmarks/compare_peers.py --device "$DEVICE" --rounds 1 \
    --peer-venv "${PEER_VENV:-.peer-venv}" --out "$OUT/peers_runs.json"
else
  echo "peers: skipped (no peer virtualenv; bash benchmarks/peers/setup.sh)" >&2
fi
echo "results in $OUT ($SECONDS s)" >&2
