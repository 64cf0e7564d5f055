"""Continuous-time cosine noise schedule in log-SNR (paper sec. 2.1; docs/math.md sec. 1).

``logsnr(t) = -2 log tan(a t + b)`` with ``b = arctan(exp(-logsnr_max / 2))`` and
``a = arctan(exp(-logsnr_min / 2)) - b``; t = 0 is data, t = 1 is (almost) pure noise.
``alpha^2 = sigmoid(logsnr)``, ``sigma^2 = sigmoid(-logsnr)``.

Numerics: near t = 1 the angle ``a t + b`` is within 5e-5 of pi/2, where float32 loses the
digits that matter (the naive formula gives logsnr(1) = -20.001 in float32). We evaluate the
upper half of the schedule with the mirrored, algebraically identical
``logsnr(t) = 2 log tan(c + a (1 - t))``, ``c = arctan(exp(logsnr_min / 2))``, so both ends are
accurate to a few float32 ulps (|error| < 1e-5 at t in {0, 1}); float64 is accurate to ~1e-14.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from imagen_video.diffusion.config import ScheduleConfig


def _constants(cfg: ScheduleConfig) -> tuple[float, float, float]:
    """Return (a, b, c) in float64: b, c are the end angles, a = pi/2 - b - c the angle span."""
    b = math.atan(math.exp(-cfg.logsnr_max / 2.0))
    c = math.atan(math.exp(cfg.logsnr_min / 2.0))
    return math.pi / 2.0 - b - c, b, c


def _as_float_tensor(value: torch.Tensor | float) -> torch.Tensor:
    """Python floats become float64 tensors; half/bfloat16 tensors are computed in float32."""
    tensor = torch.as_tensor(value, dtype=torch.float64) if not torch.is_tensor(value) else value
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def logsnr_from_t(t: torch.Tensor | float, cfg: ScheduleConfig) -> torch.Tensor:
    """Cosine log-SNR ``lambda_t`` for t in [0, 1] (paper sec. 2.1; docs/math.md sec. 1).

    Any shape; returns t's dtype (at least float32; Python floats give float64).
    """
    t = _as_float_tensor(t)
    a, b, c = _constants(cfg)
    low = -2.0 * torch.log(torch.tan(b + a * t))  # accurate where the angle is small (t near 0)
    high = 2.0 * torch.log(torch.tan(c + a * (1.0 - t)))  # mirrored form, accurate near t = 1
    return torch.where(b + a * t <= math.pi / 4.0, low, high) + cfg.shift


def t_from_logsnr(logsnr: torch.Tensor | float, cfg: ScheduleConfig) -> torch.Tensor:
    """Inverse schedule ``t(lambda) = (arctan(exp(-lambda / 2)) - b) / a`` (docs/math.md sec. 1)."""
    logsnr = _as_float_tensor(logsnr) - cfg.shift
    a, b, c = _constants(cfg)
    upper = (torch.atan(torch.exp(-logsnr / 2.0)) - b) / a  # lambda >= 0, t <= 1/2
    lower = 1.0 - (torch.atan(torch.exp(logsnr / 2.0)) - c) / a  # lambda < 0, accurate near t = 1
    return torch.where(logsnr >= 0, upper, lower)


def alpha_sigma(logsnr: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, sigma)`` with alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda) (paper eq. 1).

    Computed as ``exp(0.5 * logsigmoid(+-lambda))``, stable for any finite lambda; same shape as input.
    """
    logsnr = _as_float_tensor(logsnr)
    return torch.exp(0.5 * F.logsigmoid(logsnr)), torch.exp(0.5 * F.logsigmoid(-logsnr))


def time_grid(
    steps: int,
    *,
    t_start: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Uniform time grid ``t_i = t_start (1 - i / steps)`` from ``t_start`` (paper: 1) to 0, shape
    (steps + 1,) (paper sec. 2.1; ``t_start < 1`` is the truncated start of :class:`SamplerConfig`)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be an integer >= 1")
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start={t_start!r} must be in (0, 1]")
    return t_start * (1.0 - torch.arange(steps + 1, dtype=dtype, device=device) / steps)


def logsnr_grid(steps: int, cfg: ScheduleConfig, t_start: float = 1.0) -> torch.Tensor:
    """Log-SNR on :func:`time_grid`, float64 on CPU, shape (steps + 1,), increasing from t_start to 0."""
    return logsnr_from_t(time_grid(steps, t_start=t_start), cfg)


def snr_trunc_weight(logsnr: torch.Tensor) -> torch.Tensor:
    """``max(SNR, 1) = exp(max(lambda, 0))``, the truncated-SNR weight (docs/math.md secs. 3, 10)."""
    return torch.exp(torch.clamp(logsnr, min=0.0))
