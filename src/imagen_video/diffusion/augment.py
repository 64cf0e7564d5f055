"""Noise conditioning augmentation for super-resolution stages (paper sec. 2.5; docs/math.md sec. 8).

The conditioning video, already upsampled to the stage's (T, H, W), is corrupted with the forward
process ``c_aug = alpha_a c + sigma_a eps'`` and the level's log-SNR ``lambda_a`` is given to the
network as a second conditioning signal.
"""

from __future__ import annotations

import torch

from imagen_video.diffusion import _random
from imagen_video.diffusion.config import DiffusionConfig
from imagen_video.diffusion.parameterization import q_sample
from imagen_video.diffusion.schedule import logsnr_from_t


def noise_augment(
    cond: torch.Tensor,
    *,
    config: DiffusionConfig,
    training: bool,
    aug_logsnr: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(cond_aug, aug_logsnr)``: (B, C, T, H, W) at least float32, and (B,) float32 (sec. 2.5).

    Training with ``aug_logsnr=None`` draws ``t_a ~ U(0, config.aug_t_max)`` per sample (first draw
    from ``generator``, shape (B,)) and maps it through ``config.schedule``. Sampling (``training``
    False) needs the fixed level ``aug_logsnr`` (a float or (B,) tensor; the paper's "SNR 3 or 5"
    is log-SNR 1.1 / 1.6). Then ``eps' ~ N(0, I)`` of cond's shape is drawn from ``generator``.
    """
    batch = cond.shape[0]
    if aug_logsnr is None:
        if not training:
            raise ValueError("noise_augment at sampling time needs a fixed aug_logsnr (e.g. log(3) = 1.1)")
        t_a = config.aug_t_max * _random.rand((batch,), generator=generator, device=cond.device)
        logsnr = logsnr_from_t(t_a, config.schedule)
    else:
        logsnr = torch.as_tensor(aug_logsnr, dtype=torch.float32, device=cond.device)
        logsnr = logsnr.expand(batch).clone() if logsnr.ndim == 0 else logsnr
        if logsnr.shape != (batch,):
            raise ValueError(f"aug_logsnr must be a float or shape ({batch},), got {tuple(logsnr.shape)}")
    noise = _random.randn(cond.shape, generator=generator, device=cond.device)
    return q_sample(cond, logsnr, noise), logsnr
