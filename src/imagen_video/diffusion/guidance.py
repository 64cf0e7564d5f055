"""Denoise callables, classifier-free guidance and thresholding (paper secs. 2.6.1-2.6.2; math 3b, 6, 7).

Samplers consume ``denoise(z_t, logsnr_t, step) -> x_hat`` with z_t (B, C, T, H, W), logsnr_t (B,)
and ``step`` the sampler's 0-based step index. The wrappers here build that callable from a network:

- :func:`make_denoiser`: one network, raw prediction converted to x_hat, optional thresholding;
- :func:`guided_denoiser`: conditional and unconditional passes as ONE batched forward of 2B
  samples, combined in x space by paper eq. 5 (identical to combining v or eps, since each is
  affine in the other at a fixed z_t), then thresholded. Samplers recompute eps_hat from the
  returned x_hat and z_t, so thresholding also corrects eps (docs/math.md sec. 7).

Guidance weights use the eq. 5 convention (w = 0: no guidance); see :mod:`imagen_video.diffusion.config`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from imagen_video.diffusion.config import PREDICTIONS, GuidanceConfig, ThresholdConfig
from imagen_video.diffusion.parameterization import to_x

Denoise = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
NetworkFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PairFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class GuidanceSchedule:
    """Guidance weight per sampler step (paper sec. 2.6.2), eq. 5 convention.

    constant: ``w`` at every step. oscillating: ``w_high`` for steps 0..K-1, then
    ``w_low, w_high, w_low, ...`` (step K gets ``w_low``), K = ``constant_steps``.
    """

    def __init__(self, config: GuidanceConfig) -> None:
        """Wrap a validated :class:`GuidanceConfig`."""
        self.config = config

    def weight(self, step: int) -> float:
        """Guidance weight w at the sampler's 0-based ``step``."""
        if step < 0:
            raise ValueError(f"guidance step={step} must be >= 0")
        cfg = self.config
        if cfg.mode == "constant":
            return cfg.w
        if step < cfg.constant_steps:
            return cfg.w_high
        return cfg.w_low if (step - cfg.constant_steps) % 2 == 0 else cfg.w_high

    def weights(self, n_steps: int) -> list[float]:
        """Weights for steps 0..n_steps-1."""
        return [self.weight(i) for i in range(n_steps)]

    def __repr__(self) -> str:
        return f"GuidanceSchedule({self.config!r})"


def guidance_combine(x_cond: torch.Tensor, x_uncond: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
    """Paper eq. 5: ``(1 + w) x_cond - w x_uncond``; w a float or (B,) broadcast over (B, ...)."""
    if torch.is_tensor(w) and w.ndim == 1:
        w = w.to(x_cond.dtype).reshape(-1, *([1] * (x_cond.ndim - 1)))
    return x_cond + w * (x_cond - x_uncond)


def _quantile(a: torch.Tensor, p: float) -> torch.Tensor:
    """Linear-interpolation quantile of each row of ``a`` (B, N) -> (B,), like torch.quantile.

    Uses ``kthvalue`` so it also works past torch.quantile's 2^24-element input limit (video).
    """
    pos = p * (a.shape[1] - 1)
    lo = int(pos)
    frac = pos - lo
    low = torch.kthvalue(a, lo + 1, dim=1).values
    if frac == 0.0:
        return low
    high = torch.kthvalue(a, lo + 2, dim=1).values
    return low + frac * (high - low)


def threshold(x: torch.Tensor, config: ThresholdConfig) -> torch.Tensor:
    """Project x_hat (B, ...) to the pixel range (paper sec. 2.6.2; docs/math.md sec. 7).

    static: ``clip(x, -1, 1)``. dynamic: per sample ``s = max(1, quantile(|x|, p))``, then
    ``clip(x, -s, s) / s``; in-range samples (all |x| <= 1) are returned unchanged.
    """
    if config.mode == "none":
        return x
    if config.mode == "static":
        return x.clamp(-1.0, 1.0)
    flat = x.detach().abs().reshape(x.shape[0], -1)  # (B, N)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    s = _quantile(flat, config.percentile).clamp(min=1.0).to(x.dtype)  # (B,)
    s = s.reshape(-1, *([1] * (x.ndim - 1)))
    return torch.maximum(torch.minimum(x, s), -s) / s


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction {prediction!r} is not allowed; allowed: {', '.join(PREDICTIONS)}")


def make_denoiser(
    network_fn: NetworkFn, prediction: str, threshold_config: ThresholdConfig | None = None
) -> Denoise:
    """``denoise(z_t, logsnr_t, step) -> x_hat`` from ``network_fn(z_t, logsnr (B,)) -> raw`` (sec. 3b).

    The raw output (any dtype, e.g. bf16) is converted to x_hat in z_t's dtype (at least float32),
    then thresholded if ``threshold_config`` is given. No guidance.
    """
    _check_prediction(prediction)

    def denoise(z_t: torch.Tensor, logsnr_t: torch.Tensor, step: int) -> torch.Tensor:
        raw = network_fn(z_t, logsnr_t)  # (B, C, T, H, W)
        x_hat = to_x(raw.to(z_t.dtype), z_t, logsnr_t, prediction)
        return threshold(x_hat, threshold_config) if threshold_config is not None else x_hat

    return denoise


def guided_denoiser(
    pair_fn: PairFn,
    prediction: str,
    guidance: GuidanceSchedule,
    threshold_config: ThresholdConfig | None = None,
) -> Denoise:
    """Classifier-free guided ``denoise`` with one batched forward per step (paper eq. 5, sec. 2.6).

    ``pair_fn(z (2B, ...), logsnr (2B,), drop_text (2B,) bool) -> raw (2B, ...)`` gets the batch
    twice, ``drop_text`` False for the first half (conditional) and True for the second
    (unconditional). At a step whose weight is exactly 0 the unconditional half is skipped and
    ``pair_fn`` gets only the B conditional samples. x_hat = eq. 5 in x space, then thresholded.
    """
    _check_prediction(prediction)

    def denoise(z_t: torch.Tensor, logsnr_t: torch.Tensor, step: int) -> torch.Tensor:
        w = guidance.weight(step)
        batch = z_t.shape[0]
        if w == 0.0:
            drop = torch.zeros(batch, dtype=torch.bool, device=z_t.device)
            x_hat = to_x(pair_fn(z_t, logsnr_t, drop).to(z_t.dtype), z_t, logsnr_t, prediction)
        else:
            z2 = torch.cat([z_t, z_t])  # (2B, C, T, H, W)
            logsnr2 = torch.cat([logsnr_t, logsnr_t])  # (2B,)
            drop = torch.arange(2 * batch, device=z_t.device) >= batch  # (2B,) first half False
            x2 = to_x(pair_fn(z2, logsnr2, drop).to(z_t.dtype), z2, logsnr2, prediction)
            x_cond, x_uncond = x2[:batch], x2[batch:]
            x_hat = guidance_combine(x_cond, x_uncond, w)
        return threshold(x_hat, threshold_config) if threshold_config is not None else x_hat

    return denoise
