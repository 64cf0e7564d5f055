"""Typed configs for the diffusion math, samplers, guidance and thresholding, with named presets.

Every config is a frozen dataclass inheriting :class:`~imagen_video.serialization.JsonConfig`
(lossless JSON round trip); ``__post_init__`` rejects bad values with an error that names the
allowed ones.

Guidance weights everywhere in this project use the paper's eq. 5 convention,
``x_tilde = (1 + w) * x_hat(z, c) - w * x_hat(z, null)``, so ``w = 0`` is plain conditional sampling.
Saharia et al. (Imagen) write ``W = 1 + w`` (``W = 1`` = no guidance); the paper's Table 1 entry
"oscillate(15, 1)" follows Saharia and is ``w`` alternating 14 and 0 here (docs/math.md sec. 6).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, get_args

from imagen_video.serialization import JsonConfig

Prediction = Literal["v", "eps", "x"]
Loss = Literal["v_mse", "eps_mse", "x_mse", "snr_trunc"]
SamplerName = Literal["ancestral", "ddim", "stochastic"]
StartFrom = Literal["upsampled", "interpolated"]
GuidanceMode = Literal["constant", "oscillating"]
ThresholdMode = Literal["none", "static", "dynamic"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)
LOSSES: tuple[str, ...] = get_args(Loss)
SAMPLER_NAMES: tuple[str, ...] = get_args(SamplerName)
START_FROM: tuple[str, ...] = get_args(StartFrom)
GUIDANCE_MODES: tuple[str, ...] = get_args(GuidanceMode)
THRESHOLD_MODES: tuple[str, ...] = get_args(ThresholdMode)


def _check_choice(owner: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")


def _check_finite(owner: str, name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name}={value!r} must be a finite float")


@dataclasses.dataclass(frozen=True)
class ScheduleConfig(JsonConfig):
    """Continuous-time cosine log-SNR schedule (paper sec. 2.1; docs/math.md sec. 1).

    ``logsnr(t) = -2 log tan(a t + b) + shift`` with ``logsnr(0) = logsnr_max + shift`` (data end) and
    ``logsnr(1) = logsnr_min + shift`` (noise end).
    """

    logsnr_min: float = -20.0  # log-SNR at t = 1 before the shift (paper: -20)
    logsnr_max: float = 20.0  # log-SNR at t = 0 before the shift (paper: 20)
    shift: float = 0.0  # resolution shift 2 * log(ref_res / res) added to every log-SNR; 0 = paper

    def __post_init__(self) -> None:
        for name in ("logsnr_min", "logsnr_max", "shift"):
            _check_finite("ScheduleConfig", name, getattr(self, name))
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError(
                f"ScheduleConfig needs logsnr_min < logsnr_max, got {self.logsnr_min} >= {self.logsnr_max}"
            )


@dataclasses.dataclass(frozen=True)
class DiffusionConfig(JsonConfig):
    """What a stage's network predicts and how it is trained (paper secs. 2.1, 2.4, 2.5, 2.6.1).

    ``aug_t_max``: training draws the noise-conditioning-augmentation time ``t_a ~ U(0, aug_t_max)``
    per sample through ``schedule``. The default 0.5 (log-SNR 0, SNR 1) covers the paper's sampling
    levels "SNR 3 or 5" (log-SNR 1.1 / 1.6, i.e. t_a = 0.33 / 0.27 on the default schedule) well
    inside the training range, while not spending capacity on conditioning that is mostly noise.

    ``t_max``: training draws the diffusion time ``t ~ U(0, t_max)`` instead of the paper's
    ``U(0, 1)``. Only for super-resolution stages that are always sampled from their noised input at
    ``SamplerConfig.t_start <= t_max`` (SDEdit): a small network then spends all of its training on
    the noise levels it is sampled at. The default 1 is the paper's, with identical random draws.
    """

    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    prediction: Prediction = "v"  # network output: "v" (paper sec. 2.4), "eps" or "x"
    loss: Loss = "v_mse"  # "v_mse" (default), "eps_mse" (paper eq. 2), "x_mse", "snr_trunc"
    p_uncond: float = 0.1  # probability of dropping the text for classifier-free guidance
    aug_t_max: float = 0.5  # max t of the noise-conditioning-augmentation level in training
    t_max: float = 1.0  # max diffusion time t in training (< 1: SR stages sampled from t_start <= t_max)

    def __post_init__(self) -> None:
        _check_choice("DiffusionConfig", "prediction", self.prediction, PREDICTIONS)
        _check_choice("DiffusionConfig", "loss", self.loss, LOSSES)
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"DiffusionConfig.p_uncond={self.p_uncond!r} must be in [0, 1]")
        if not 0.0 <= self.aug_t_max <= 1.0:
            raise ValueError(f"DiffusionConfig.aug_t_max={self.aug_t_max!r} must be in [0, 1]")
        if not 0.0 < self.t_max <= 1.0:
            raise ValueError(f"DiffusionConfig.t_max={self.t_max!r} must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class SamplerConfig(JsonConfig):
    """Which sampler and how many steps (paper eqs. 3-4, secs. 2.1 and 2.7).

    ``gamma`` (ancestral only) interpolates the log-variance between the small posterior variance
    (gamma = 0) and the large forward variance (gamma = 1), paper eq. 4. The reference text does
    not state the paper's value; 0.3 is our default. ``t_start`` < 1 (super-resolution stages only)
    starts the sampler at time ``t_start`` from the stage's upsampled input, noised by the forward
    process (SDEdit, Meng et al. 2021), instead of from pure noise at t = 1 as in the paper: fewer,
    easier denoising steps for an SR stage that has not learned the high-noise end well. ``start_from``
    picks the frames that start is noised from: ``"upsampled"``, the stage's upsampled input (the
    frames it is conditioned on: repeated frames in time), or ``"interpolated"``, the input frames
    linearly interpolated in time (temporal SR stages), so a start near t = 0 does not freeze motion
    in groups of repeated frames.
    """

    name: SamplerName = "ancestral"  # "ancestral" (paper eq. 4), "ddim", "stochastic" (distilled, sec. 2.7)
    steps: int = 256  # number of denoiser evaluations (paper: 256 base, 128 SR, 8 distilled)
    gamma: float = 0.3  # ancestral stochasticity in [0, 1]
    t_start: float = 1.0  # SR stages: < 1 starts from the upsampled input noised to t_start (SDEdit)
    start_from: StartFrom = "upsampled"  # frames of that start: "upsampled" (as conditioned), "interpolated"

    def __post_init__(self) -> None:
        _check_choice("SamplerConfig", "name", self.name, SAMPLER_NAMES)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"SamplerConfig.steps={self.steps!r} must be an integer >= 1")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"SamplerConfig.gamma={self.gamma!r} must be in [0, 1]")
        if not 0.0 < self.t_start <= 1.0:
            raise ValueError(f"SamplerConfig.t_start={self.t_start!r} must be in (0, 1]")
        _check_choice("SamplerConfig", "start_from", self.start_from, START_FROM)


@dataclasses.dataclass(frozen=True)
class GuidanceConfig(JsonConfig):
    """Classifier-free guidance weights (paper eq. 5, sec. 2.6.2), eq. 5 convention (w = 0: none).

    ``constant`` uses ``w`` at every step. ``oscillating`` uses ``w_high`` for the first
    ``constant_steps`` sampler steps, then alternates ``w_low, w_high, w_low, ...``; ``w`` is unused.
    """

    mode: GuidanceMode = "constant"  # "constant" or "oscillating"
    w: float = 0.0  # constant weight (eq. 5 convention)
    w_high: float = 0.0  # oscillating: high weight (eq. 5 convention)
    w_low: float = 0.0  # oscillating: low weight (eq. 5 convention)
    constant_steps: int = 0  # oscillating: K initial steps held at w_high

    def __post_init__(self) -> None:
        _check_choice("GuidanceConfig", "mode", self.mode, GUIDANCE_MODES)
        for name in ("w", "w_high", "w_low"):
            value = getattr(self, name)
            _check_finite("GuidanceConfig", name, value)
            if value < 0.0:
                raise ValueError(
                    f"GuidanceConfig.{name}={value!r} must be >= 0 (eq. 5 convention: 0 = no guidance; "
                    "Saharia's W = 1 + w)"
                )
        if isinstance(self.constant_steps, bool) or not isinstance(self.constant_steps, int):
            raise ValueError(f"GuidanceConfig.constant_steps={self.constant_steps!r} must be an integer")
        if self.constant_steps < 0:
            raise ValueError(f"GuidanceConfig.constant_steps={self.constant_steps!r} must be >= 0")


@dataclasses.dataclass(frozen=True)
class ThresholdConfig(JsonConfig):
    """Projection of x_hat to the pixel range (paper sec. 2.6.2; docs/math.md sec. 7)."""

    mode: ThresholdMode = "dynamic"  # "none", "static" (clip to [-1, 1]) or "dynamic" (Saharia et al. 2022)
    percentile: float = 0.995  # dynamic: quantile p of |x_hat| per sample, in (0, 1]

    def __post_init__(self) -> None:
        _check_choice("ThresholdConfig", "mode", self.mode, THRESHOLD_MODES)
        if not 0.0 < self.percentile <= 1.0:
            raise ValueError(f"ThresholdConfig.percentile={self.percentile!r} must be in (0, 1]")


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------


def paper_schedule() -> ScheduleConfig:
    """The paper's cosine log-SNR schedule, log-SNR from 20 (t = 0) to -20 (t = 1), sec. 2.1."""
    return ScheduleConfig()


def shifted_schedule(res: int, ref_res: int) -> ScheduleConfig:
    """Cosine schedule shifted by ``2 log(ref_res / res)`` for a stage at resolution ``res``.

    Not in the paper (docs/math.md sec. 1, optional extension): larger stages get noisier.
    """
    if res < 1 or ref_res < 1:
        raise ValueError(f"shifted_schedule needs positive resolutions, got res={res}, ref_res={ref_res}")
    return ScheduleConfig(shift=2.0 * math.log(ref_res / res))


def paper_diffusion() -> DiffusionConfig:
    """v-prediction with v-MSE, p_uncond 0.1 (paper secs. 2.4, 2.6.1)."""
    return DiffusionConfig()


def distillation_diffusion() -> DiffusionConfig:
    """v-prediction trained with the truncated-SNR x loss used by progressive distillation (sec. 2.7)."""
    return DiffusionConfig(loss="snr_trunc")


def paper_base_sampler() -> SamplerConfig:
    """Ancestral sampler with 256 steps, the paper's base model setting (Table 1)."""
    return SamplerConfig(name="ancestral", steps=256)


def paper_sr_sampler() -> SamplerConfig:
    """Ancestral sampler with 128 steps, the paper's super-resolution setting (Table 1)."""
    return SamplerConfig(name="ancestral", steps=128)


def ddim_sampler(steps: int) -> SamplerConfig:
    """Deterministic DDIM sampler (paper sec. 2.1), e.g. the teacher in progressive distillation."""
    return SamplerConfig(name="ddim", steps=steps)


def distilled_sampler(steps: int = 8, t_start: float = 1.0) -> SamplerConfig:
    """Stochastic N-step sampler for distilled models, 8 steps per stage in the paper (sec. 2.7),
    starting at ``t_start`` (1 in the paper; the truncated start of :class:`SamplerConfig` below 1)."""
    return SamplerConfig(name="stochastic", steps=steps, t_start=t_start)


def no_guidance() -> GuidanceConfig:
    """Plain conditional sampling, w = 0 (eq. 5 convention)."""
    return GuidanceConfig()


def constant_guidance(w: float) -> GuidanceConfig:
    """Constant guidance weight ``w`` in the eq. 5 convention (w = 0: none; Saharia's W = w + 1)."""
    return GuidanceConfig(mode="constant", w=float(w))


def oscillating_guidance(w_high: float, w_low: float, constant_steps: int) -> GuidanceConfig:
    """Oscillating guidance (paper sec. 2.6.2); weights in the eq. 5 convention.

    ``w_high`` for the first ``constant_steps`` steps, then ``w_low, w_high, w_low, ...``. To reproduce
    Table 1's Saharia-convention "oscillate(15, 1)" pass ``saharia_to_eq5(15), saharia_to_eq5(1)``.
    """
    return GuidanceConfig(
        mode="oscillating", w_high=float(w_high), w_low=float(w_low), constant_steps=constant_steps
    )


def saharia_to_eq5(weight: float) -> float:
    """Convert a Saharia et al. guidance weight ``W`` (W = 1: none) to the eq. 5 ``w = W - 1``."""
    return float(weight) - 1.0


def paper_oscillating_guidance(constant_steps: int = 32) -> GuidanceConfig:
    """Table 1's "oscillate(15, 1)" (Saharia convention) = w alternating 14 and 0 (eq. 5 convention).

    The paper does not state K; the default 32 (1/8 of the base's 256 steps) is our choice.
    """
    return oscillating_guidance(saharia_to_eq5(15.0), saharia_to_eq5(1.0), constant_steps)


def dynamic_threshold(percentile: float = 0.995) -> ThresholdConfig:
    """Dynamic thresholding at quantile ``percentile`` of |x_hat| (Saharia et al. 2022; sec. 2.6.2)."""
    return ThresholdConfig(mode="dynamic", percentile=percentile)


def static_threshold() -> ThresholdConfig:
    """Static clipping of x_hat to [-1, 1] (paper sec. 2.6.2)."""
    return ThresholdConfig(mode="static")


def no_threshold() -> ThresholdConfig:
    """No projection of x_hat."""
    return ThresholdConfig(mode="none")
