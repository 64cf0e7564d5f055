#!/usr/bin/env bash
# Fine-tune the demo cascade's base into a frame-conditioned base (docs/conditional.md, "The
# frame-conditioned base") and install it as base_frames/ in a cascade directory, for
# `animate` / `extend --method finetuned`. One CPU thread; resumes from its last checkpoint.
#
#   RUNS=/path/to/runs bash scripts/train_frame_base.sh
#
# CASCADE: the cascade whose base is fine-tuned (default: the shipped demo). STEPS: optimiser steps
# (default 3000). INSTALL: cascade directories to copy the result into as base_frames/, fp16 weights,
# sampled without guidance (default: none).
set -euo pipefail
RUNS=${RUNS:-runs/demo}
IV=${IV:-imagen-video}
STEPS=${STEPS:-3000}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$RUNS"
CASCADE=${CASCADE:-$(python -c "from imagen_video.cascade.registry import shipped_cascade_dir as d; print(d('demo'))")}

if [ ! -f "$RUNS/world/manifest.jsonl" ]; then
  python -c "from imagen_video.world.spec import DEFAULT_HOLDOUT as H; print('\n'.join(f'{c.color} {c.shape} {c.motion}' for c in H))" > "$RUNS/holdout.txt"
  $IV data synth --out "$RUNS/world" --num 4000 --images 1000 --frames 32 --height 48 --width 80 --fps 8 \
      --holdout "$RUNS/holdout.txt" --seed 0 --quiet
fi
[ -d "$RUNS/text_cache" ] || $IV encode-text --encoder embedded --out "$RUNS/text_cache" --data "$RUNS/world" --no-progress

# The cascade's own config with a frame-conditioned base network (known frames as input channels).
python - "$CASCADE" "$RUNS/cascade_frame_base.json" <<'PY'
import json, sys
config = json.load(open(f"{sys.argv[1]}/cascade.json"))["config"]
config["stages"][0]["unet"]["frame_conditioning"] = True
json.dump(config, open(sys.argv[2], "w"), indent=1)
PY
cat > "$RUNS/train_frame_base.json" <<'JSON'
{"batch_size": 16, "lr": 0.0002, "warmup_steps": 50, "ema_decay": 0.999, "max_steps": 100000,
 "checkpoint_every": 100, "keep_checkpoints": 2, "log_every": 10, "seed": 0, "num_workers": 1,
 "image_fraction": 0.2}
JSON
start=(--init-from "$CASCADE/base")  # the new input channels start at zero: the base, unchanged
[ -e "$RUNS/frame_base/checkpoints/latest" ] && start=(--resume)
$IV train --stage base --data "$RUNS/world" --out "$RUNS/frame_base" --cascade "$RUNS/cascade_frame_base.json" \
    --config "$RUNS/train_frame_base.json" --max-steps "$STEPS" --text-cache "$RUNS/text_cache" \
    --no-progress "${start[@]}"

for target in ${INSTALL:-}; do
  python - "$RUNS/frame_base/stage" "$target/base_frames" <<'PY'
import sys
from imagen_video.cascade.stage_io import load_stage, save_stage
from imagen_video.diffusion.config import constant_guidance
config, model = load_stage(sys.argv[1], stage_name="base")
# Sampled unguided: with known frames the base keeps a clip's speed best at w = 0 (docs/conditional.md).
save_stage(sys.argv[2], config.replace(guidance=constant_guidance(0.0)), model.half())
PY
done
