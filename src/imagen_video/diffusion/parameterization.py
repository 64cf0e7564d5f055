"""Forward process and the v / eps / x parameterizations (paper secs. 2.1, 2.4; docs/math.md sec. 2).

All functions take a log-SNR that is a Python float, a 0-d tensor, or a (B,) tensor broadcast over
the trailing dims of a (B, ...) tensor such as a (B, C, T, H, W) video. Arithmetic runs in the
promoted dtype of the inputs and at least float32, so a bf16 network output is converted in float32.

    z_t = alpha x + sigma eps        v = alpha eps - sigma x
    x   = alpha z - sigma v          eps = sigma z + alpha v
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from imagen_video.diffusion.config import PREDICTIONS
from imagen_video.diffusion.schedule import alpha_sigma


def _work_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def broadcast_logsnr(
    logsnr: torch.Tensor | float, like: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Reshape a (B,) or scalar log-SNR to (B, 1, ..., 1) matching ``like`` (B, ...).

    The result has ``dtype`` (default: like's dtype promoted to at least float32).
    """
    dtype = dtype or _work_dtype(like)
    logsnr = torch.as_tensor(logsnr, dtype=dtype, device=like.device)
    if logsnr.ndim == 0:
        return logsnr
    if logsnr.ndim != 1 or logsnr.shape[0] != like.shape[0]:
        raise ValueError(
            f"logsnr must be a scalar or have shape (B,) = ({like.shape[0]},), got {tuple(logsnr.shape)}"
        )
    return logsnr.reshape(-1, *([1] * (like.ndim - 1)))


def alpha_sigma_like(
    logsnr: torch.Tensor | float, *tensors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) of a (B,) or scalar log-SNR, shaped (B, 1, ..., 1) for ``tensors[0]`` (B, ...).

    The dtype is the promotion of all ``tensors`` and float32 (paper eq. 1).
    """
    return alpha_sigma(broadcast_logsnr(logsnr, tensors[0], _work_dtype(*tensors)))


def upcast(tensor: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``tensor`` in the promoted dtype of itself, ``others`` and float32."""
    return tensor.to(_work_dtype(tensor, *others))


def q_sample(x: torch.Tensor, logsnr: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Forward process ``z_t = alpha_t x + sigma_t eps`` (paper eq. 1, q(z_t | x)); (B, ...) -> (B, ...)."""
    alpha, sigma = alpha_sigma_like(logsnr, x, noise)
    return alpha * upcast(x, noise) + sigma * upcast(noise, x)


def v_from(x: torch.Tensor, eps: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``v = alpha eps - sigma x`` (paper sec. 2.4, Salimans & Ho 2022)."""
    alpha, sigma = alpha_sigma_like(logsnr, x, eps)
    return alpha * upcast(eps, x) - sigma * upcast(x, eps)


def x_from_v(z: torch.Tensor, v: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``x_hat = alpha z_t - sigma v_hat`` (docs/math.md sec. 2)."""
    alpha, sigma = alpha_sigma_like(logsnr, z, v)
    return alpha * upcast(z, v) - sigma * upcast(v, z)


def eps_from_v(z: torch.Tensor, v: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``eps_hat = sigma z_t + alpha v_hat`` (docs/math.md sec. 2)."""
    alpha, sigma = alpha_sigma_like(logsnr, z, v)
    return sigma * upcast(z, v) + alpha * upcast(v, z)


def eps_from_x(z: torch.Tensor, x: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``eps_hat = (z_t - alpha x_hat) / sigma`` (paper sec. 2.1, below eq. 2)."""
    alpha, sigma = alpha_sigma_like(logsnr, z, x)
    return (upcast(z, x) - alpha * upcast(x, z)) / sigma


def x_from_eps(z: torch.Tensor, eps: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``x_hat = (z_t - sigma eps_hat) / alpha`` (inverse of paper eq. 1; ill-conditioned at low SNR)."""
    alpha, sigma = alpha_sigma_like(logsnr, z, eps)
    return (upcast(z, eps) - sigma * upcast(eps, z)) / alpha


def v_from_x(z: torch.Tensor, x: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``v_hat = (alpha z_t - x_hat) / sigma`` (v = alpha eps - sigma x with eps from x)."""
    alpha, sigma = alpha_sigma_like(logsnr, z, x)
    return (alpha * upcast(z, x) - upcast(x, z)) / sigma


def v_from_eps(z: torch.Tensor, eps: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    """``v_hat = (eps_hat - sigma z_t) / alpha`` (v = alpha eps - sigma x with x from eps)."""
    alpha, sigma = alpha_sigma_like(logsnr, z, eps)
    return (upcast(eps, z) - sigma * upcast(z, eps)) / alpha


def _identity(z: torch.Tensor, pred: torch.Tensor, logsnr: torch.Tensor | float) -> torch.Tensor:
    return upcast(pred, z)


_Converter = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | float"], torch.Tensor]

# (source, target) -> f(z, pred, logsnr): each pair uses its direct closed form.
_CONVERTERS: dict[tuple[str, str], _Converter] = {
    ("v", "x"): x_from_v,
    ("v", "eps"): eps_from_v,
    ("eps", "x"): x_from_eps,
    ("eps", "v"): v_from_eps,
    ("x", "eps"): eps_from_x,
    ("x", "v"): v_from_x,
    **{(p, p): _identity for p in PREDICTIONS},
}


def convert_prediction(
    pred: torch.Tensor, z: torch.Tensor, logsnr: torch.Tensor | float, source: str, target: str
) -> torch.Tensor:
    """Convert a ``source`` prediction ("v", "eps" or "x") at z_t to ``target`` (docs/math.md sec. 2)."""
    for name in (source, target):
        if name not in PREDICTIONS:
            raise ValueError(f"prediction {name!r} is not allowed; allowed: {', '.join(PREDICTIONS)}")
    return _CONVERTERS[(source, target)](z, pred, logsnr)


def to_x(pred: torch.Tensor, z: torch.Tensor, logsnr: torch.Tensor | float, prediction: str) -> torch.Tensor:
    """Raw network output ``pred`` (of kind ``prediction``) to x_hat (docs/math.md secs. 2, 3b)."""
    return convert_prediction(pred, z, logsnr, prediction, "x")
