"""Classifier-free guidance, oscillating schedules and thresholding (paper eq. 5, secs. 2.6.1-2.6.2)."""

from __future__ import annotations

import pytest
import torch

from imagen_video.diffusion import (
    GuidanceConfig,
    GuidanceSchedule,
    ScheduleConfig,
    ThresholdConfig,
    alpha_sigma,
    constant_guidance,
    dynamic_threshold,
    guidance_combine,
    guided_denoiser,
    logsnr_from_t,
    make_denoiser,
    oscillating_guidance,
    paper_oscillating_guidance,
    static_threshold,
    threshold,
    to_x,
)
from imagen_video.samplers import StepInfo, sample_ancestral, sample_ddim

SHAPE = (3, 2, 2, 4, 4)  # (B, C, T, H, W)
CFG = ScheduleConfig()


class PairNet:
    """A fake text-conditional v network: conditional and unconditional outputs differ; counts calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[bool]]] = []

    def v(self, z: torch.Tensor, logsnr: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        scale = torch.where(drop, -0.5, 1.0).to(z.dtype).reshape(-1, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
        return torch.sin(z) * scale + 0.1 * logsnr.reshape(-1, 1, 1, 1, 1)

    def __call__(self, z: torch.Tensor, logsnr: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        self.calls.append((z.shape[0], drop.tolist()))
        return self.v(z, logsnr, drop)


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return z, torch.tensor([-3.0, 0.5, 4.0], dtype=torch.float64)


def test_oscillating_schedule_sequence() -> None:
    schedule = GuidanceSchedule(oscillating_guidance(15.0, 1.0, 3))
    assert schedule.weights(9) == [15.0, 15.0, 15.0, 1.0, 15.0, 1.0, 15.0, 1.0, 15.0]
    assert GuidanceSchedule(oscillating_guidance(7.0, 0.0, 0)).weights(4) == [0.0, 7.0, 0.0, 7.0]
    assert GuidanceSchedule(constant_guidance(6.0)).weights(3) == [6.0, 6.0, 6.0]
    # Table 1's Saharia-convention oscillate(15, 1) is w = 14 / 0 in the eq. 5 convention.
    assert GuidanceSchedule(paper_oscillating_guidance(2)).weights(5) == [14.0, 14.0, 0.0, 14.0, 0.0]
    with pytest.raises(ValueError, match="step=-1"):
        GuidanceSchedule(constant_guidance(1.0)).weight(-1)


def test_w_zero_equals_conditional_prediction() -> None:
    net = PairNet()
    z, logsnr = inputs()
    denoise = guided_denoiser(net, "v", GuidanceSchedule(constant_guidance(0.0)))
    cond = to_x(net.v(z, logsnr, torch.zeros(3, dtype=torch.bool)), z, logsnr, "v")
    torch.testing.assert_close(denoise(z, logsnr, 0), cond, atol=0, rtol=0)
    assert net.calls == [(3, [False, False, False])]  # w = 0 skips the unconditional half


def test_guidance_is_eq5_in_x_and_equals_v_space() -> None:
    net = PairNet()
    z, logsnr = inputs()
    w = 2.5
    out = guided_denoiser(net, "v", GuidanceSchedule(constant_guidance(w)))(z, logsnr, 0)
    v_c = net.v(z, logsnr, torch.zeros(3, dtype=torch.bool))
    v_u = net.v(z, logsnr, torch.ones(3, dtype=torch.bool))
    x_c, x_u = to_x(v_c, z, logsnr, "v"), to_x(v_u, z, logsnr, "v")
    torch.testing.assert_close(out, (1 + w) * x_c - w * x_u, atol=1e-12, rtol=0)
    torch.testing.assert_close(out, to_x((1 + w) * v_c - w * v_u, z, logsnr, "v"), atol=1e-12, rtol=0)
    assert net.calls == [(6, [False] * 3 + [True] * 3)]


def test_pair_forward_called_once_per_step_with_oscillating_weights() -> None:
    net = PairNet()
    seen_w: list[float] = []
    schedule = GuidanceSchedule(oscillating_guidance(4.0, 0.5, 2))
    denoise = guided_denoiser(net, "v", schedule)
    z_1 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    sample_ancestral(
        denoise,
        z_1,
        steps=6,
        schedule_cfg=CFG,
        generator=torch.Generator().manual_seed(2),
        callback=lambda info: seen_w.append(schedule.weight(info.step)),
    )
    assert len(net.calls) == 6
    assert all(c == (6, [False] * 3 + [True] * 3) for c in net.calls)
    assert seen_w == [4.0, 4.0, 0.5, 4.0, 0.5, 4.0]


def test_guidance_combine_per_sample_weights() -> None:
    x_c, x_u = torch.ones(2, 1, 3), torch.zeros(2, 1, 3)
    out = guidance_combine(x_c, x_u, torch.tensor([0.0, 3.0]))
    assert out[:, 0, 0].tolist() == [1.0, 4.0]


def test_dynamic_threshold_in_range_unchanged_out_of_range_bounded() -> None:
    g = torch.Generator().manual_seed(3)
    inside = torch.rand(SHAPE, generator=g) * 2 - 1
    assert torch.equal(threshold(inside, dynamic_threshold(0.995)), inside)
    outside = torch.randn(SHAPE, generator=g) * 4
    out = threshold(outside, dynamic_threshold(0.9))
    assert float(out.abs().max()) <= 1.0
    s = torch.quantile(outside.abs().flatten(1), 0.9, dim=1).clamp(min=1).reshape(-1, 1, 1, 1, 1)
    torch.testing.assert_close(out, outside.clamp(-s, s) / s)
    # percentile 1: s = max |x| per sample, a pure rescale into [-1, 1].
    torch.testing.assert_close(
        threshold(outside, dynamic_threshold(1.0)),
        outside / outside.abs().amax(dim=(1, 2, 3, 4), keepdim=True),
    )


def test_static_and_none_threshold() -> None:
    x = torch.tensor([[-3.0, -0.5, 0.25, 2.0]])
    assert threshold(x, static_threshold()).tolist() == [[-1.0, -0.5, 0.25, 1.0]]
    assert torch.equal(threshold(x, ThresholdConfig(mode="none")), x)


def test_thresholded_x_drives_eps_in_the_sampler_step() -> None:
    """After thresholding, the DDIM step uses eps_hat = (z_t - alpha_t x_thr) / sigma_t (math sec. 7)."""
    net = PairNet()
    denoise = guided_denoiser(net, "v", GuidanceSchedule(constant_guidance(8.0)), dynamic_threshold(0.95))
    z_1 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    seen: list[StepInfo] = []
    sample_ddim(denoise, z_1, steps=2, schedule_cfg=CFG, callback=seen.append)
    x_thr = seen[0].x_hat
    assert float(x_thr.abs().max()) <= 1.0
    l_t, l_s = logsnr_from_t(torch.tensor([1.0, 0.5], dtype=torch.float64), CFG).tolist()
    (a_t, s_t), (a_s, s_s) = [tuple(float(v) for v in alpha_sigma(l)) for l in (l_t, l_s)]
    eps_thr = (z_1 - a_t * x_thr) / s_t
    torch.testing.assert_close(seen[1].z, a_s * x_thr + s_s * eps_thr, atol=1e-12, rtol=1e-12)


def test_make_denoiser_converts_and_thresholds() -> None:
    z, logsnr = inputs()
    net = PairNet()
    plain = make_denoiser(lambda zz, ll: net.v(zz, ll, torch.zeros(3, dtype=torch.bool)), "v")
    expected = to_x(net.v(z, logsnr, torch.zeros(3, dtype=torch.bool)), z, logsnr, "v")
    torch.testing.assert_close(plain(z, logsnr, 0), expected, atol=0, rtol=0)
    clipped = make_denoiser(lambda zz, ll: 10 * zz, "x", static_threshold())
    assert float(clipped(z, logsnr, 0).abs().max()) == 1.0
    bf16 = make_denoiser(lambda zz, ll: zz.to(torch.bfloat16), "x")
    assert bf16(z.float(), logsnr.float(), 0).dtype == torch.float32
    with pytest.raises(ValueError, match="allowed: v, eps, x"):
        make_denoiser(lambda zz, ll: zz, "score")


def test_guidance_config_unused_fields_default() -> None:
    assert GuidanceSchedule(GuidanceConfig()).weights(2) == [0.0, 0.0]


@pytest.mark.parametrize("n", [1, 2, 7, 1001])
def test_dynamic_threshold_scale_matches_torch_quantile(n: int) -> None:
    """The kthvalue quantile (no 2^24-element limit) equals torch.quantile's linear interpolation."""
    x = 3 * torch.randn(4, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    for p in (0.001, 0.5, 0.995, 1.0):
        s = torch.quantile(x.abs(), p, dim=1, keepdim=True).clamp(min=1)
        torch.testing.assert_close(threshold(x, dynamic_threshold(p)), x.clamp(-s, s) / s, atol=1e-12, rtol=0)
