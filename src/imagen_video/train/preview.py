"""Preview samples during training: a few DDIM steps from the EMA weights, a grid and a GIF per prompt.

Sampling is the cascade's own ``imagen_video.cascade.sampling.sample_stage`` (docs/math.md secs.
3b, 5-8): the stage's guidance schedule and thresholding wrap the network; SR stages see their
conditioning clip upsampled with ``upsample_video`` and noise-augmented at the stage's fixed
``aug_logsnr``. Only the sampler is swapped for a short DDIM run (``preview_sampling_steps``):
previews are for watching a run, not for evaluation.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from imagen_video.cascade.config import StageConfig
from imagen_video.cascade.export import write_video
from imagen_video.cascade.sampling import StageOverride, TextCondition, sample_stage
from imagen_video.text.base import TextEmbeddings
from imagen_video.train.step import model_device


@torch.no_grad()
def sample_preview(
    model: nn.Module,
    stage_cfg: StageConfig,
    text: TextEmbeddings,
    *,
    cond_video: torch.Tensor | None = None,
    steps: int = 8,
    generator: torch.Generator,
    precision: str = "fp32",
) -> torch.Tensor:
    """Sample B clips (B, C, T, H, W) in [-1, 1] with ``steps`` DDIM steps (docs/math.md sec. 5).

    ``text``: B prompt embeddings; ``cond_video`` (B, C, T', H', W') in [-1, 1] for SR stages, at the
    stage's input shape. Draws from ``generator`` as ``sample_stage`` does (aug noise, then z_1).
    """
    device = model_device(model)
    stage_cfg = crop_stage(stage_cfg, cond_video)
    condition = TextCondition(
        tokens=text.tokens.to(device),
        mask=text.mask.to(device),
        null=torch.zeros(len(text), dtype=torch.bool, device=device),
    )
    stage = StageOverride(steps=steps, sampler="ddim").apply(stage_cfg)
    autocast_dtype = torch.bfloat16 if precision == "bf16" and device.type == "cuda" else None
    return sample_stage(
        model, stage, condition, cond_video, generator=generator, autocast_dtype=autocast_dtype
    )


def crop_stage(stage_cfg: StageConfig, cond_video: torch.Tensor | None) -> StageConfig:
    """``stage_cfg`` at the size of a training crop when ``cond_video`` (B, C, T', H', W') is one (a
    stage with ``train_crop`` trains, and previews, on crops of its clips; it is fully convolutional,
    sec. 2.3), else ``stage_cfg`` itself."""
    if cond_video is None or stage_cfg.cond_height is None or stage_cfg.cond_width is None:
        return stage_cfg
    height, width = cond_video.shape[-2:]
    if (height, width) == (stage_cfg.cond_height, stage_cfg.cond_width):
        return stage_cfg
    scale_h, scale_w = stage_cfg.height // stage_cfg.cond_height, stage_cfg.width // stage_cfg.cond_width
    return stage_cfg.replace(
        height=height * scale_h, width=width * scale_w, cond_height=height, cond_width=width, train_crop=None
    )


def _slug(prompt: str, limit: int = 40) -> str:
    """File-name-safe short form of a prompt."""
    return re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-")[:limit] or "prompt"


def write_previews(videos: torch.Tensor, prompts: list[str], directory: Path, fps: float) -> list[Path]:
    """Write each clip of ``videos`` (B, C, T, H, W) in [-1, 1] as ``<i>_<prompt>.gif``, and all of them
    as ``grid.png`` (a row per prompt, a column per frame; :func:`imagen_video.viz.write_grid`)."""
    from imagen_video.viz import write_grid

    directory.mkdir(parents=True, exist_ok=True)
    scale = max(1, 128 // max(videos.shape[-2:]))  # nearest-neighbour upscale so tiny clips are visible
    units = ((videos.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)  # (B, C, T, H, W) in [0, 1]
    paths = [
        write_video(unit, directory / f"{index:02d}_{_slug(prompt)}.gif", fps, scale=scale)
        for index, (unit, prompt) in enumerate(zip(units, prompts, strict=True))
    ]
    paths.append(write_grid(units, directory / "grid.png", prompts, max_frames=units.shape[2]))
    return paths
