"""Stochastic N-step sampler for distilled models (Meng et al. 2022; paper sec. 2.7; math sec. 12)."""

from __future__ import annotations

import math

import torch

from imagen_video.diffusion.config import ScheduleConfig
from imagen_video.samplers.base import (
    Callback,
    Denoise,
    Grid,
    alpha_sigma_f64,
    gaussian_like,
    log_sigmoid,
    run_loop,
)
from imagen_video.samplers.ddim import ddim_coefficients


def renoise_coefficients(logsnr_u: float, logsnr_m: float) -> tuple[float, float]:
    """Float64 ``(c, std)`` of the forward step from u to the noisier m: ``z_m = c z_u + std eps``.

    ``c = alpha_m / alpha_u``; ``std^2 = sigma_m^2 - c^2 sigma_u^2 = (1 - exp(lambda_m - lambda_u))
    sigma_m^2`` (paper eq. 1, q(z_t | z_s)), evaluated with expm1.
    """
    alpha_u, _ = alpha_sigma_f64(logsnr_u)
    alpha_m, _ = alpha_sigma_f64(logsnr_m)
    var = -math.expm1(logsnr_m - logsnr_u) * math.exp(log_sigmoid(-logsnr_m))
    return alpha_m / alpha_u, math.sqrt(var)


def sample_stochastic(
    denoise: Denoise,
    z_1: torch.Tensor,
    *,
    steps: int,
    schedule_cfg: ScheduleConfig,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    t_start: float = 1.0,
) -> torch.Tensor:
    """Stochastic N-step sampling from z_1 (B, C, T, H, W) (paper sec. 2.7; docs/math.md sec. 12).

    With h = 1 / steps, from t: a DDIM step with twice the step, t -> t - 2h, then a forward-process
    step back up to t - h with fresh noise from ``generator``. The last step (t = h) returns x_hat.
    """
    grid = Grid.build(steps, schedule_cfg, t_start)

    def update(z: torch.Tensor, x_hat: torch.Tensor, i: int) -> torch.Tensor:
        l_t, l_m, l_u = grid.logsnr[i], grid.logsnr[i + 1], grid.logsnr[i + 2]  # t, t - h, t - 2h
        c_z, c_x = ddim_coefficients(l_t, l_u)
        c, std = renoise_coefficients(l_u, l_m)
        z_u = c_z * z + c_x * x_hat  # deterministic DDIM step t -> t - 2h
        return c * z_u + std * gaussian_like(z, generator)  # stochastic step t - 2h -> t - h

    return run_loop(denoise, z_1, grid, update, callback)
