"""Sampler registry and config-driven dispatch (paper secs. 2.1, 2.7)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from imagen_video.diffusion.config import SamplerConfig, ScheduleConfig
from imagen_video.samplers.ancestral import sample_ancestral
from imagen_video.samplers.base import Callback, Denoise
from imagen_video.samplers.ddim import sample_ddim
from imagen_video.samplers.stochastic import sample_stochastic

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ancestral": sample_ancestral,
    "ddim": sample_ddim,
    "stochastic": sample_stochastic,
}


def run_sampler(
    config: SamplerConfig,
    denoise: Denoise,
    z_1: torch.Tensor,
    *,
    schedule_cfg: ScheduleConfig,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Run the sampler ``config.name`` for ``config.steps`` steps from z_1 (B, C, T, H, W) at time
    ``config.t_start`` (paper: 1); returns x."""
    extra = {"gamma": config.gamma} if config.name == "ancestral" else {}
    return SAMPLERS[config.name](
        denoise,
        z_1,
        steps=config.steps,
        schedule_cfg=schedule_cfg,
        generator=generator,
        callback=callback,
        t_start=config.t_start,
        **extra,
    )
