"""The loop every sampler shares: time grid, denoiser calls, finiteness checks and callbacks.

Samplers walk the uniform grid ``t_i = 1 - i / steps`` (paper sec. 2.1) and call
``denoise(z_t, logsnr_t (B,), step) -> x_hat`` once per step (docs/math.md sec. 3b). Update
coefficients are computed in float64 from the log-SNR grid; the state ``z`` is kept in the
promotion of z_1's dtype and float32 (float32 for bf16 / float16 / float32 input, float64 for
float64), whatever dtype the network runs in. The last step returns x_hat with no noise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch

from imagen_video.diffusion import _random
from imagen_video.diffusion.config import ScheduleConfig
from imagen_video.diffusion.guidance import Denoise as Denoise  # re-exported: the samplers' input
from imagen_video.diffusion.schedule import logsnr_grid, time_grid


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What a sampler reports to its callback after each step (for progress bars and previews)."""

    step: int  # 0-based step index
    steps: int  # total number of steps
    t: float  # time of the state the denoiser saw at this step
    logsnr: float  # its log-SNR
    z: torch.Tensor  # (B, C, T, H, W) state at time t, the denoiser's input
    x_hat: torch.Tensor  # (B, C, T, H, W) the denoiser's prediction of x at this step


Callback = Callable[[StepInfo], None]
Update = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


class NonFiniteStateError(FloatingPointError):
    """A NaN or inf appeared in a sampler's state or in the denoiser's output; names the step."""

    def __init__(self, message: str, step: int) -> None:
        """Store ``step`` (-1 = the initial noise z_1) beside the message."""
        super().__init__(message)
        self.step = step


def log_sigmoid(x: float) -> float:
    """Stable float64 ``log(sigmoid(x))``."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def alpha_sigma_f64(logsnr: float) -> tuple[float, float]:
    """Float64 ``(alpha, sigma)``: alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda) (paper eq. 1)."""
    return math.exp(0.5 * log_sigmoid(logsnr)), math.exp(0.5 * log_sigmoid(-logsnr))


@dataclasses.dataclass(frozen=True)
class Grid:
    """Uniform time grid 1 -> 0 and its log-SNRs as float64 Python floats, each of length steps + 1."""

    t: Sequence[float]
    logsnr: Sequence[float]

    @classmethod
    def build(cls, steps: int, schedule_cfg: ScheduleConfig, t_start: float = 1.0) -> Grid:
        """Grid for ``steps`` sampler steps from ``t_start`` under ``schedule_cfg``; ``steps`` < 1 raises
        ValueError."""
        return cls(
            t=time_grid(steps, t_start=t_start).tolist(),
            logsnr=logsnr_grid(steps, schedule_cfg, t_start).tolist(),
        )


def _ensure_finite(tensor: torch.Tensor, what: str, step: int, steps: int) -> None:
    if not bool(torch.isfinite(tensor).all()):
        where = "in the initial noise z_1" if step < 0 else f"at step {step} of {steps}"
        raise NonFiniteStateError(f"non-finite values (NaN/inf) in {what} {where}", step)


def state_dtype(z_1: torch.Tensor) -> torch.dtype:
    """Dtype of the sampler state: z_1's dtype promoted to at least float32."""
    return torch.promote_types(z_1.dtype, torch.float32)


def gaussian_like(z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise with z's shape, dtype and device, drawn from ``generator``."""
    return _random.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)


def initial_noise(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``z_1 ~ N(0, I)`` of ``shape``, e.g. (B, C, T, H, W), the sampler's start (paper sec. 2.1)."""
    return _random.randn(shape, generator=generator, device=device, dtype=dtype)


def run_loop(
    denoise: Denoise,
    z_1: torch.Tensor,
    grid: Grid,
    update: Update,
    callback: Callback | None,
) -> torch.Tensor:
    """Call ``denoise`` at each grid time and ``update(z_t, x_hat, i) -> z_next`` except at the last step.

    Returns the last x_hat. Raises :class:`NonFiniteStateError` naming the step where a NaN/inf
    first appears in z_1, in x_hat or in the updated state.
    """
    steps = len(grid.t) - 1
    z = z_1.to(state_dtype(z_1))  # (B, C, T, H, W)
    _ensure_finite(z, "the sampler state z", -1, steps)
    x_hat = z
    for i in range(steps):
        logsnr = torch.full((z.shape[0],), grid.logsnr[i], dtype=z.dtype, device=z.device)  # (B,)
        x_hat = denoise(z, logsnr, i).to(z.dtype)
        _ensure_finite(x_hat, "the denoiser output x_hat", i, steps)
        if callback is not None:
            callback(StepInfo(step=i, steps=steps, t=grid.t[i], logsnr=grid.logsnr[i], z=z, x_hat=x_hat))
        if i < steps - 1:
            z = update(z, x_hat, i)
            _ensure_finite(z, "the sampler state z", i, steps)
    return x_hat
