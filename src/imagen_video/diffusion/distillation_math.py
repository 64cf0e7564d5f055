"""Targets for guidance and progressive distillation (paper sec. 2.7; docs/math.md secs. 10-11).

Pure math, no network: the teacher enters as a callable ``x_teacher_fn(z, logsnr (B,)) -> x_hat``.
Log-SNRs are floats or (B,) tensors broadcast over (B, C, T, H, W).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from imagen_video.diffusion.config import ScheduleConfig
from imagen_video.diffusion.guidance import guidance_combine
from imagen_video.diffusion.parameterization import alpha_sigma_like, upcast
from imagen_video.diffusion.schedule import logsnr_from_t

XTeacher = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_step(
    x_hat: torch.Tensor,
    z_t: torch.Tensor,
    logsnr_t: torch.Tensor | float,
    logsnr_s: torch.Tensor | float,
) -> torch.Tensor:
    """DDIM update ``z_s = alpha_s x_hat + (sigma_s / sigma_t)(z_t - alpha_t x_hat)`` (math secs. 5, 10)."""
    alpha_t, sigma_t = alpha_sigma_like(logsnr_t, z_t, x_hat)
    alpha_s, sigma_s = alpha_sigma_like(logsnr_s, z_t, x_hat)
    x_hat, z_t = upcast(x_hat, z_t), upcast(z_t, x_hat)
    return alpha_s * x_hat + (sigma_s / sigma_t) * (z_t - alpha_t * x_hat)


def student_times(
    i: torch.Tensor, n_student: int, t_start: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(t, t', t'') = t0 (i/N, i/N - 0.5/N, i/N - 1/N)`` for student step indices i in 1..N (sec. 10).

    ``t0 = t_start`` is where the N-step sampler starts (1 in the paper; < 1 for a truncated start):
    the student's grid is :func:`~imagen_video.diffusion.schedule.time_grid` ``(N, t_start)``.
    """
    if n_student < 1:
        raise ValueError(f"n_student={n_student} must be >= 1")
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start={t_start!r} must be in (0, 1]")
    t = t_start * (i.to(torch.float64) / n_student)
    step = t_start / n_student
    return t, t - 0.5 * step, t - step


def student_logsnrs(
    i: torch.Tensor, n_student: int, cfg: ScheduleConfig, t_start: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-SNRs (float64) at :func:`student_times`; t'' = 0 maps to logsnr_max (finite), sec. 10."""
    t, t1, t2 = student_times(i, n_student, t_start)
    return logsnr_from_t(t, cfg), logsnr_from_t(t1, cfg), logsnr_from_t(t2, cfg)


def distillation_target(
    z_t: torch.Tensor,
    logsnr_t: torch.Tensor | float,
    logsnr_t1: torch.Tensor | float,
    logsnr_t2: torch.Tensor | float,
    x_teacher_fn: XTeacher,
) -> torch.Tensor:
    """Progressive-distillation target x (Salimans & Ho 2022; docs/math.md sec. 10).

    Two teacher DDIM steps t -> t' -> t'', then the x that takes one student DDIM step t -> t''
    exactly to the teacher's z_t'':
    ``x_target = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t)``.
    The general formula is used at every step including t'' = 0 (sigma_0 > 0 for finite logsnr_max).
    ``x_teacher_fn(z, logsnr (B,))`` receives log-SNRs as (B,) tensors in z_t's dtype.
    """
    batch = z_t.shape[0]

    def as_batch(logsnr: torch.Tensor | float) -> torch.Tensor:
        tensor = torch.as_tensor(logsnr, dtype=upcast(z_t).dtype, device=z_t.device)
        return tensor.expand(batch) if tensor.ndim == 0 else tensor

    l_t, l_t1, l_t2 = as_batch(logsnr_t), as_batch(logsnr_t1), as_batch(logsnr_t2)
    z_t1 = ddim_step(x_teacher_fn(z_t, l_t), z_t, l_t, l_t1)  # teacher step t -> t'
    z_t2 = ddim_step(x_teacher_fn(z_t1, l_t1), z_t1, l_t1, l_t2)  # teacher step t' -> t''
    alpha_t, sigma_t = alpha_sigma_like(l_t, z_t2)
    alpha_t2, sigma_t2 = alpha_sigma_like(l_t2, z_t2)
    ratio = sigma_t2 / sigma_t
    return (z_t2 - ratio * upcast(z_t, z_t2)) / (alpha_t2 - ratio * alpha_t)


def guided_target(x_cond: torch.Tensor, x_uncond: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
    """Guidance-distillation target ``(1 + w) x_T(z, c) - w x_T(z, null)`` (paper eq. 5; math sec. 11).

    ``w`` is a float or a (B,) tensor of per-sample weights (w ~ U[w_min, w_max] in training).
    """
    return guidance_combine(x_cond, x_uncond, w)
