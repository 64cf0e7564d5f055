"""Checks that need a CUDA device (marked ``gpu``; skipped elsewhere, run with ``pytest -m gpu``).

- Every attention layer runs on a fused SDPA kernel in bf16 (flash for unmasked self-attention,
  memory-efficient where a mask is given) and agrees with the math kernel.
- The shipped demo cascade gives the same video on CUDA (bf16 autocast) as on the CPU (fp32) from the
  same seed: noise is drawn on the generator's device, so only the arithmetic differs.
- ``imagen-video train`` under torchrun on CUDA (NCCL), and its stage folder loads on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from imagen_video.cascade import Cascade
from imagen_video.cascade.registry import shipped_cascade_dir
from imagen_video.cascade.stage_io import load_stage
from imagen_video.models.attention import (
    CrossAttention,
    SpatialSelfAttention,
    TemporalAttention,
    temporal_attention_mask,
)
from imagen_video.train import read_checkpoint
from imagen_video.train.checkpoint import find_latest_checkpoint
from test_cascade_helpers import HashTextEncoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _bf16_matches_math(layer: torch.nn.Module, backend: SDPBackend, *inputs: object) -> None:
    """The layer under bf16 autocast on ``backend`` alone agrees with the math kernel."""
    with torch.autocast("cuda", dtype=torch.bfloat16):
        with sdpa_kernel([backend]):
            fused = layer(*inputs).float()
        with sdpa_kernel([SDPBackend.MATH]):
            reference = layer(*inputs).float()
    assert torch.isfinite(fused).all()
    assert (fused - reference).abs().max().item() < 0.05, (fused - reference).abs().max().item()


def test_attention_layers_run_on_fused_sdpa_kernels_in_bf16() -> None:
    torch.manual_seed(0)
    b, t, c, h, w = 2, 8, 64, 12, 20
    x = torch.randn(b * t, c, h, w, device="cuda")
    spatial = SpatialSelfAttention(c, 32, norm="group", groups=8).cuda()
    _bf16_matches_math(spatial, SDPBackend.FLASH_ATTENTION, x)

    context = torch.randn(b, 16, 384, device="cuda")
    mask = torch.ones(b, 16, dtype=torch.bool, device="cuda")
    mask[:, 9:] = False
    cross = CrossAttention(c, 384, 32, norm="group", groups=8).cuda()
    _bf16_matches_math(cross, SDPBackend.EFFICIENT_ATTENTION, x, context, mask)

    temporal = TemporalAttention(c, 32, norm="group", groups=8).cuda()
    torch.nn.init.normal_(temporal.out.weight, std=0.05)  # zero-initialised: make the attention count
    _bf16_matches_math(temporal, SDPBackend.FLASH_ATTENTION, x, t, None)
    frame_mask = temporal_attention_mask(torch.tensor([False, True], device="cuda"), t)
    _bf16_matches_math(temporal, SDPBackend.EFFICIENT_ATTENTION, x, t, frame_mask)


def test_demo_cascade_on_cuda_matches_the_cpu() -> None:
    prompts = ["a red circle moving right", "a blue square growing"]
    videos = {}
    for device in ("cpu", "cuda"):
        cascade = Cascade.from_pretrained(
            shipped_cascade_dir("demo"), device=device, text_encoder=HashTextEncoder(max_length=64)
        )
        with pytest.warns(UserWarning, match="text encoder identity"):
            out = cascade.generate(prompts, generator=torch.Generator().manual_seed(0), progress=False)
        videos[device] = out.video.float().cpu()
    assert videos["cuda"].shape == (2, 3, 32, 48, 80)
    difference = (videos["cuda"] - videos["cpu"]).abs()
    print(f"demo cascade cuda (bf16 autocast) vs cpu (fp32): mean |diff| {difference.mean():.4f}")
    assert difference.mean().item() < 0.02


def test_train_under_torchrun_on_cuda_with_nccl(tmp_path: Path) -> None:
    from test_train_distributed import _train_args
    from test_train_loop import make_dataset, make_text_cache, tiny_config

    data = make_dataset(tmp_path / "data")
    config = tmp_path / "train.json"
    config.write_text(tiny_config(max_steps=6, checkpoint_every=3, log_every=3, precision="bf16").to_json())
    args = _train_args((data, make_text_cache(tmp_path / "cache", data), config), tmp_path / "run")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m"]
    command += ["imagen_video.cli", *args, "--device", "cuda"]
    done = subprocess.run(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _, state = read_checkpoint(find_latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 6 and state["world_size"] == 1
    _, model = load_stage(tmp_path / "run" / "stage", device="cpu")  # trained on the GPU, sampled anywhere
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())
