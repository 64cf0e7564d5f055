"""Samplers: free functions sharing one signature over ``denoise(z_t, logsnr_t, step) -> x_hat``.

``sample_*(denoise, z_1, *, steps, schedule_cfg, generator=None, callback=None) -> x``
(the ancestral sampler also takes ``gamma``); :func:`run_sampler` dispatches on a
:class:`~imagen_video.diffusion.config.SamplerConfig`. Paper eqs. 3-4, secs. 2.1 and 2.7.
"""

from imagen_video.samplers.ancestral import ancestral_coefficients, check_gamma, sample_ancestral
from imagen_video.samplers.base import (
    Callback,
    Denoise,
    NonFiniteStateError,
    StepInfo,
    initial_noise,
)
from imagen_video.samplers.ddim import ddim_coefficients, sample_ddim
from imagen_video.samplers.registry import SAMPLERS, run_sampler
from imagen_video.samplers.stochastic import renoise_coefficients, sample_stochastic

__all__ = [
    "SAMPLERS",
    "Callback",
    "Denoise",
    "NonFiniteStateError",
    "StepInfo",
    "ancestral_coefficients",
    "check_gamma",
    "ddim_coefficients",
    "initial_noise",
    "renoise_coefficients",
    "run_sampler",
    "sample_ancestral",
    "sample_ddim",
    "sample_stochastic",
]
