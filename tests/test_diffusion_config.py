"""Diffusion, sampler, guidance and threshold configs: lossless JSON, validation, presets."""

from __future__ import annotations

import json
import math

import pytest

from imagen_video.diffusion import (
    DiffusionConfig,
    GuidanceConfig,
    SamplerConfig,
    ScheduleConfig,
    ThresholdConfig,
    constant_guidance,
    ddim_sampler,
    distillation_diffusion,
    distilled_sampler,
    dynamic_threshold,
    no_guidance,
    no_threshold,
    oscillating_guidance,
    paper_base_sampler,
    paper_diffusion,
    paper_oscillating_guidance,
    paper_schedule,
    paper_sr_sampler,
    saharia_to_eq5,
    shifted_schedule,
    static_threshold,
)

CONFIGS = [
    ScheduleConfig(),
    DiffusionConfig(),
    SamplerConfig(),
    GuidanceConfig(),
    ThresholdConfig(),
    paper_schedule(),
    shifted_schedule(256, 64),
    paper_diffusion(),
    distillation_diffusion(),
    DiffusionConfig(schedule=shifted_schedule(80, 40), prediction="eps", loss="eps_mse", aug_t_max=0.3),
    paper_base_sampler(),
    paper_sr_sampler(),
    ddim_sampler(16),
    distilled_sampler(),
    no_guidance(),
    constant_guidance(6.0),
    oscillating_guidance(15, 1, 10),
    paper_oscillating_guidance(),
    dynamic_threshold(),
    static_threshold(),
    no_threshold(),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_json_round_trip_is_lossless(config: object) -> None:
    cls = type(config)
    assert cls.from_json(config.to_json()) == config  # type: ignore[attr-defined]
    assert cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # type: ignore[attr-defined]


def test_presets_hold_paper_values() -> None:
    assert (paper_base_sampler().name, paper_base_sampler().steps) == ("ancestral", 256)
    assert paper_sr_sampler().steps == 128
    assert (distilled_sampler().name, distilled_sampler().steps) == ("stochastic", 8)
    assert (paper_diffusion().prediction, paper_diffusion().loss, paper_diffusion().p_uncond) == (
        "v",
        "v_mse",
        0.1,
    )
    osc = paper_oscillating_guidance(5)
    assert (osc.mode, osc.w_high, osc.w_low, osc.constant_steps) == ("oscillating", 14.0, 0.0, 5)
    assert saharia_to_eq5(1.0) == 0.0
    assert shifted_schedule(64, 64).shift == 0.0
    assert shifted_schedule(128, 64).shift == pytest.approx(-2 * math.log(2))


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: DiffusionConfig(prediction="score"), "allowed: v, eps, x"),
        (lambda: DiffusionConfig(loss="l1"), "allowed: v_mse, eps_mse, x_mse, snr_trunc"),
        (lambda: DiffusionConfig(p_uncond=1.5), r"p_uncond=1.5 must be in \[0, 1\]"),
        (lambda: DiffusionConfig(aug_t_max=-0.1), r"aug_t_max=-0.1 must be in \[0, 1\]"),
        (lambda: DiffusionConfig(t_max=0.0), r"t_max=0.0 must be in \(0, 1\]"),
        (lambda: DiffusionConfig(t_max=1.5), r"t_max=1.5 must be in \(0, 1\]"),
        (lambda: ScheduleConfig(logsnr_min=5.0, logsnr_max=5.0), "logsnr_min < logsnr_max"),
        (lambda: ScheduleConfig(shift=float("nan")), "shift=nan must be a finite float"),
        (lambda: SamplerConfig(name="euler"), "allowed: ancestral, ddim, stochastic"),
        (lambda: SamplerConfig(steps=0), "steps=0 must be an integer >= 1"),
        (lambda: SamplerConfig(steps=2.5), r"steps=2.5 must be an integer >= 1"),  # type: ignore[arg-type]
        (lambda: SamplerConfig(gamma=1.5), r"gamma=1.5 must be in \[0, 1\]"),
        (lambda: SamplerConfig(gamma=-0.01), r"gamma=-0.01 must be in \[0, 1\]"),
        (lambda: SamplerConfig(start_from="noise"), "allowed: upsampled, interpolated"),
        (lambda: GuidanceConfig(mode="cosine"), "allowed: constant, oscillating"),
        (lambda: GuidanceConfig(w=-1.0), "eq. 5 convention"),
        (lambda: GuidanceConfig(mode="oscillating", constant_steps=-1), "constant_steps=-1 must be >= 0"),
        (lambda: ThresholdConfig(mode="soft"), "allowed: none, static, dynamic"),
        (lambda: ThresholdConfig(percentile=0.0), r"percentile=0.0 must be in \(0, 1\]"),
        (lambda: ThresholdConfig(percentile=1.5), r"percentile=1.5 must be in \(0, 1\]"),
        (lambda: shifted_schedule(0, 64), "positive resolutions"),
    ],
)
def test_invalid_values_name_what_is_allowed(build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_from_dict_validates_and_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"gamma=2.0 must be in \[0, 1\]"):
        SamplerConfig.from_dict({"name": "ancestral", "steps": 4, "gamma": 2.0})
    with pytest.raises(ValueError, match="eta"):
        SamplerConfig.from_dict({"name": "ddim", "eta": 0.0})
    assert ThresholdConfig.from_dict({"mode": "dynamic", "percentile": 1}).percentile == 1.0
