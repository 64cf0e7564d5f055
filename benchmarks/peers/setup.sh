#!/usr/bin/env bash
# Builds the virtual environment of the peer benchmarks: PyPI imagen-pytorch 2.1.0 and diffusers beside
# torch 2.13.0 (pinned in every install, so no peer replaces it). imagen-pytorch is installed without
# its dependencies because it requires torchvision, which the peer scripts do not need (they stub it);
# its other dependencies are listed explicitly. Prints the environment's path.
#
#   venv=$(bash benchmarks/peers/setup.sh [VENV_DIR])     # default: $PEER_VENV or .peer-venv in the repo
#   TORCH_INDEX=https://download.pytorch.org/whl/cu128 bash benchmarks/peers/setup.sh   # a CUDA build
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-${PEER_VENV:-$repo/.peer-venv}}
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" >&2; fi
pip=("$venv/bin/python" -m pip install -q)
if [ -n "${TORCH_INDEX:-}" ]; then pip+=(--extra-index-url "$TORCH_INDEX"); fi
"${pip[@]}" torch==2.13.0 >&2
"${pip[@]}" --no-deps imagen-pytorch==2.1.0 >&2
"${pip[@]}" torch==2.13.0 diffusers accelerate beartype click datasets einops ema-pytorch fsspec kornia \
  numpy packaging pillow 'pydantic>=2' pytorch-warmup sentencepiece transformers tqdm >&2
echo "$venv"
