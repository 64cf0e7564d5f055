"""Ancestral sampler with gamma-interpolated variance (paper eqs. 3-4; docs/math.md sec. 4)."""

from __future__ import annotations

import math

import torch

from imagen_video.diffusion.config import ScheduleConfig
from imagen_video.samplers.base import (
    Callback,
    Denoise,
    Grid,
    gaussian_like,
    log_sigmoid,
    run_loop,
)


def check_gamma(gamma: float) -> None:
    """Raise unless ``gamma`` is a number in [0, 1] (paper eq. 4)."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma!r} must be in [0, 1] (0: small posterior variance, 1: large)")


def ancestral_coefficients(logsnr_t: float, logsnr_s: float, gamma: float) -> tuple[float, float, float]:
    """Float64 ``(c_z, c_x, std)`` with ``z_s = c_z z_t + c_x x_hat + std eps`` (paper eqs. 3-4), s < t.

    ``r = exp(lambda_t - lambda_s)``; ``c_z = r alpha_s / alpha_t``; ``c_x = (1 - r) alpha_s``;
    ``log std^2 = (1 - gamma) log[(1 - r) sigma_s^2] + gamma log[(1 - r) sigma_t^2]``.
    """
    delta = logsnr_t - logsnr_s  # < 0
    log_one_minus_r = math.log(-math.expm1(delta))
    c_z = math.exp(delta + 0.5 * (log_sigmoid(logsnr_s) - log_sigmoid(logsnr_t)))
    c_x = -math.expm1(delta) * math.exp(0.5 * log_sigmoid(logsnr_s))
    log_var_small = log_one_minus_r + log_sigmoid(-logsnr_s)  # tilde sigma^2_{s|t}
    log_var_large = log_one_minus_r + log_sigmoid(-logsnr_t)  # sigma^2_{t|s}
    std = math.exp(0.5 * ((1.0 - gamma) * log_var_small + gamma * log_var_large))
    return c_z, c_x, std


def sample_ancestral(
    denoise: Denoise,
    z_1: torch.Tensor,
    *,
    steps: int,
    schedule_cfg: ScheduleConfig,
    gamma: float = 0.3,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    t_start: float = 1.0,
) -> torch.Tensor:
    """Ancestral sampling from z_1 ~ N(0, I) (B, C, T, H, W) to x (paper eqs. 3-4; math sec. 4).

    ``steps`` denoiser calls on the uniform grid 1 -> 0; each non-final step draws eps ~ N(0, I)
    of z's shape and dtype from ``generator``; the last step returns x_hat without noise.
    """
    check_gamma(gamma)
    grid = Grid.build(steps, schedule_cfg, t_start)

    def update(z: torch.Tensor, x_hat: torch.Tensor, i: int) -> torch.Tensor:
        c_z, c_x, std = ancestral_coefficients(grid.logsnr[i], grid.logsnr[i + 1], float(gamma))
        return c_z * z + c_x * x_hat + std * gaussian_like(z, generator)

    return run_loop(denoise, z_1, grid, update, callback)
