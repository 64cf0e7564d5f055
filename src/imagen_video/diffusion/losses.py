"""Training losses and conditioning dropout (paper eq. 2, secs. 2.4, 2.6.1; docs/math.md sec. 3).

For the same z_t, the prediction errors in the three spaces are tied in closed form:
``||eps_hat - eps||^2 = SNR ||x_hat - x||^2`` and ``||v_hat - v||^2 = (1 + SNR) ||x_hat - x||^2``,
so eps-MSE, v-MSE, x-MSE and truncated-SNR (``max(SNR, 1) ||x_hat - x||^2``) differ only by a
per-sample weight of the x error.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from imagen_video.diffusion import _random
from imagen_video.diffusion.config import LOSSES, PREDICTIONS, DiffusionConfig
from imagen_video.diffusion.parameterization import (
    broadcast_logsnr,
    convert_prediction,
    eps_from_x,
    q_sample,
    v_from,
    v_from_x,
)
from imagen_video.diffusion.schedule import logsnr_from_t, snr_trunc_weight

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_sample_mean(err: torch.Tensor) -> torch.Tensor:
    """Mean of squares over all non-batch dims: (B, ...) -> (B,)."""
    return err.square().reshape(err.shape[0], -1).mean(dim=1)


def prediction_loss(
    pred: torch.Tensor,
    z_t: torch.Tensor,
    x: torch.Tensor,
    logsnr: torch.Tensor,
    *,
    prediction: str,
    loss: str,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample loss (B,) of a raw prediction against the clean ``x`` (docs/math.md sec. 3).

    pred, z_t, x: (B, ...); logsnr (B,). ``eps`` is the true noise if known (exact targets); else it
    is implied by ``z_t`` and ``x`` (as for a distillation target x). ``loss``: "v_mse" (target
    v = alpha eps - sigma x), "eps_mse" (paper eq. 2), "x_mse", or "snr_trunc" =
    ``max(SNR, 1) * ||x_hat - x||^2`` (progressive distillation, sec. 2.7). Means over non-batch dims.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction {prediction!r} is not allowed; allowed: {', '.join(PREDICTIONS)}")
    if loss == "v_mse":
        target = v_from(x, eps, logsnr) if eps is not None else v_from_x(z_t, x, logsnr)
        return _per_sample_mean(convert_prediction(pred, z_t, logsnr, prediction, "v") - target)
    if loss == "eps_mse":
        target = eps if eps is not None else eps_from_x(z_t, x, logsnr)
        return _per_sample_mean(convert_prediction(pred, z_t, logsnr, prediction, "eps") - target)
    if loss in ("x_mse", "snr_trunc"):
        x_err = _per_sample_mean(convert_prediction(pred, z_t, logsnr, prediction, "x") - x)
        if loss == "x_mse":
            return x_err
        return snr_trunc_weight(broadcast_logsnr(logsnr, x_err)) * x_err
    raise ValueError(f"loss {loss!r} is not allowed; allowed: {', '.join(LOSSES)}")


def diffusion_loss(
    predict: Predict,
    x: torch.Tensor,
    config: DiffusionConfig,
    *,
    generator: torch.Generator | None = None,
    logsnr: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample diffusion loss (B,) for clean data ``x`` (B, C, T, H, W) (paper eq. 2; sec. 2.4).

    ``predict(z_t, logsnr) -> raw`` is the network with its conditioning bound (raw has z_t's shape
    and is a ``config.prediction``). Randomness, in this order from ``generator``: if ``logsnr`` is
    None, ``t ~ U(0, config.t_max)`` of shape (B,) (float32; the paper's U(0, 1) by default) mapped
    through ``config.schedule``; then, if ``noise`` is None, ``eps ~ N(0, I)`` of x's shape
    (float32). Arithmetic is at least float32.
    """
    batch = x.shape[0]
    if logsnr is None:
        t = _random.rand((batch,), generator=generator, device=x.device) * config.t_max  # exact for 1
        logsnr = logsnr_from_t(t, config.schedule)
    if noise is None:
        noise = _random.randn(x.shape, generator=generator, device=x.device)
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    z_t = q_sample(x, logsnr, noise)  # (B, C, T, H, W)
    pred = predict(z_t, logsnr)
    if pred.shape != z_t.shape:
        raise ValueError(f"predict returned shape {tuple(pred.shape)}, expected z_t's {tuple(z_t.shape)}")
    return prediction_loss(pred, z_t, x, logsnr, prediction=config.prediction, loss=config.loss, eps=noise)


def conditioning_dropout_mask(
    batch: int, p: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B,) bool, True = drop the text (use the null condition) with probability ``p`` (sec. 2.6.1)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"conditioning dropout p={p!r} must be in [0, 1]")
    return _random.rand((batch,), generator=generator, device=device) < p
