"""Deterministic DDIM sampler (paper sec. 2.1; docs/math.md sec. 5)."""

from __future__ import annotations

import torch

from imagen_video.diffusion.config import ScheduleConfig
from imagen_video.samplers.base import Callback, Denoise, Grid, alpha_sigma_f64, run_loop


def ddim_coefficients(logsnr_t: float, logsnr_s: float) -> tuple[float, float]:
    """Float64 ``(c_z, c_x)`` with ``z_s = c_z z_t + c_x x_hat`` (docs/math.md sec. 5).

    From ``z_s = alpha_s x_hat + sigma_s eps_hat``, ``eps_hat = (z_t - alpha_t x_hat) / sigma_t``.
    """
    alpha_t, sigma_t = alpha_sigma_f64(logsnr_t)
    alpha_s, sigma_s = alpha_sigma_f64(logsnr_s)
    return sigma_s / sigma_t, alpha_s - sigma_s / sigma_t * alpha_t


def sample_ddim(
    denoise: Denoise,
    z_1: torch.Tensor,
    *,
    steps: int,
    schedule_cfg: ScheduleConfig,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    t_start: float = 1.0,
) -> torch.Tensor:
    """DDIM sampling from z_1 (B, C, T, H, W) to x (paper sec. 2.1; docs/math.md sec. 5).

    Deterministic: ``generator`` is accepted for the shared signature and never used.
    eps_hat is recomputed from x_hat and z_t, so a thresholded x_hat also corrects eps_hat.
    """
    del generator  # deterministic
    grid = Grid.build(steps, schedule_cfg, t_start)

    def update(z: torch.Tensor, x_hat: torch.Tensor, i: int) -> torch.Tensor:
        c_z, c_x = ddim_coefficients(grid.logsnr[i], grid.logsnr[i + 1])
        return c_z * z + c_x * x_hat

    return run_loop(denoise, z_1, grid, update, callback)
