"""Samplers against closed forms (paper eqs. 3-4, sec. 2.7; docs/math.md secs. 4, 5, 12).

The analytic denoiser for Gaussian data x ~ N(mu, s^2) is the posterior mean
``E[x | z_t] = mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (z_t - alpha mu)``, so any error in a
sampler's update shows up as a wrong mean or spread of its samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch

from imagen_video.diffusion import SAMPLER_NAMES, SamplerConfig, ScheduleConfig, alpha_sigma, logsnr_from_t
from imagen_video.samplers import (
    SAMPLERS,
    NonFiniteStateError,
    StepInfo,
    run_sampler,
    sample_ancestral,
    sample_ddim,
    sample_stochastic,
)

CFG = ScheduleConfig()
MU, S = 1.0, 0.5

SAMPLER_CASES: dict[str, tuple[Callable[..., torch.Tensor], dict[str, float]]] = {
    "ancestral_0": (sample_ancestral, {"gamma": 0.0}),
    "ancestral_0.3": (sample_ancestral, {"gamma": 0.3}),
    "ancestral_1": (sample_ancestral, {"gamma": 1.0}),
    "ddim": (sample_ddim, {}),
    "stochastic": (sample_stochastic, {}),
}

# Regression pins: (mean, std) of 20,000 float64 samples, seed 1234, exact Gaussian denoiser,
# mu = 1, s = 0.5. Few steps are measurably biased in s (0.33-0.52 at 8 steps).
PINNED = {
    (8, "ancestral_0"): (0.99697892, 0.36968902),
    (8, "ancestral_0.3"): (0.99674652, 0.40653072),
    (8, "ancestral_1"): (0.99615748, 0.52211515),
    (8, "ddim"): (1.00191005, 0.41108652),
    (8, "stochastic"): (0.99743932, 0.33219879),
    (32, "ancestral_0"): (0.99770292, 0.45174784),
    (32, "ancestral_0.3"): (0.99750228, 0.46759331),
    (32, "ancestral_1"): (0.99694556, 0.51109830),
    (32, "ddim"): (1.00221225, 0.47612577),
    (32, "stochastic"): (0.99750450, 0.44286839),
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The machine is shared; one thread is faster than oversubscribed ones for these loops."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gaussian_denoiser(z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
    alpha, sigma = (float(v) for v in alpha_sigma(float(logsnr[0])))
    return MU + alpha * S**2 / (alpha**2 * S**2 + sigma**2) * (z - alpha * MU)


def nonlinear_denoiser(z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
    return torch.tanh(z) * (1.0 + 0.05 * logsnr.reshape(-1, *[1] * (z.ndim - 1))) + 0.1 * step


def draw(case: str, steps: int, n: int, seed: int = 1234) -> torch.Tensor:
    fn, kwargs = SAMPLER_CASES[case]
    g = torch.Generator().manual_seed(seed)
    z_1 = torch.randn(n, 1, generator=g, dtype=torch.float64)
    return fn(gaussian_denoiser, z_1, steps=steps, schedule_cfg=CFG, generator=g, **kwargs)


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
def test_recovers_gaussian_at_256_steps(case: str) -> None:
    x = draw(case, 256, 50_000, seed=99)
    assert float(x.mean()) == pytest.approx(MU, rel=0.03)
    assert float(x.std()) == pytest.approx(S, rel=0.03)


@pytest.mark.parametrize("steps,case", list(PINNED))
def test_few_steps_pinned(steps: int, case: str) -> None:
    x = draw(case, steps, 20_000)
    mean, std = PINNED[(steps, case)]
    assert float(x.mean()) == pytest.approx(mean, abs=1e-6)
    assert float(x.std()) == pytest.approx(std, abs=1e-6)
    if steps == 8:  # biased by more than 5 standard errors of the sample std (0.0025)
        assert abs(std - S) > 5 * S / math.sqrt(2 * 20_000)


def test_ddim_is_deterministic_and_ignores_generator() -> None:
    z_1 = torch.randn(3, 2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    a = sample_ddim(
        nonlinear_denoiser, z_1, steps=6, schedule_cfg=CFG, generator=torch.Generator().manual_seed(1)
    )
    b = sample_ddim(nonlinear_denoiser, z_1.clone(), steps=6, schedule_cfg=CFG)
    assert torch.equal(a, b)


def test_ancestral_step_matches_paper_eqs_3_4() -> None:
    """One step t = 1 -> s = 1/2, written out from eqs. 3-4 in float64 with the replayed noise."""
    gamma = 0.3
    g = torch.Generator().manual_seed(5)
    z_1 = torch.randn(2, 3, 2, 3, 3, generator=g, dtype=torch.float64)
    replay = torch.Generator()
    replay.set_state(g.get_state())
    seen: list[StepInfo] = []
    sample_ancestral(
        nonlinear_denoiser, z_1, steps=2, schedule_cfg=CFG, gamma=gamma, generator=g, callback=seen.append
    )
    l_t, l_s = (float(v) for v in logsnr_from_t(torch.tensor([1.0, 0.5], dtype=torch.float64), CFG))
    (a_t, s_t), (a_s, s_s) = [(float(a), float(s)) for a, s in (alpha_sigma(l_t), alpha_sigma(l_s))]
    r = math.exp(l_t - l_s)
    x_hat = nonlinear_denoiser(z_1, torch.full((2,), l_t, dtype=torch.float64), 0)
    mu = r * (a_s / a_t) * z_1 + (1 - r) * a_s * x_hat
    var = ((1 - r) * s_s**2) ** (1 - gamma) * ((1 - r) * s_t**2) ** gamma
    expected = mu + math.sqrt(var) * torch.randn(z_1.shape, generator=replay, dtype=torch.float64)
    torch.testing.assert_close(seen[1].z, expected, atol=1e-12, rtol=1e-12)


def test_stochastic_step_matches_sec_12() -> None:
    """steps = 3 (h = 1/3): DDIM 1 -> 1/3, then forward-process noise back up to 2/3."""
    g = torch.Generator().manual_seed(6)
    z_1 = torch.randn(2, 1, 2, 3, 3, generator=g, dtype=torch.float64)
    replay = torch.Generator()
    replay.set_state(g.get_state())
    seen: list[StepInfo] = []
    sample_stochastic(nonlinear_denoiser, z_1, steps=3, schedule_cfg=CFG, generator=g, callback=seen.append)
    ls = logsnr_from_t(torch.tensor([1.0, 2 / 3, 1 / 3], dtype=torch.float64), CFG).tolist()
    (a_t, s_t), (a_m, s_m), (a_u, s_u) = [(float(a), float(s)) for a, s in map(alpha_sigma, ls)]
    x_hat = nonlinear_denoiser(z_1, torch.full((2,), ls[0], dtype=torch.float64), 0)
    z_u = a_u * x_hat + s_u * (z_1 - a_t * x_hat) / s_t
    std = math.sqrt(s_m**2 - (a_m / a_u) ** 2 * s_u**2)
    expected = (a_m / a_u) * z_u + std * torch.randn(z_1.shape, generator=replay, dtype=torch.float64)
    torch.testing.assert_close(seen[1].z, expected, atol=1e-12, rtol=1e-12)
    assert [info.t for info in seen] == pytest.approx([1.0, 2 / 3, 1 / 3])


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
def test_callback_and_last_step_returns_x_hat(case: str) -> None:
    fn, kwargs = SAMPLER_CASES[case]
    z_1 = torch.randn(2, 1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    seen: list[StepInfo] = []
    out = fn(
        nonlinear_denoiser,
        z_1,
        steps=4,
        schedule_cfg=CFG,
        generator=torch.Generator().manual_seed(1),
        callback=seen.append,
        **kwargs,
    )
    assert [(i.step, i.steps) for i in seen] == [(k, 4) for k in range(4)]
    assert [i.t for i in seen] == [1.0, 0.75, 0.5, 0.25]
    assert seen[0].logsnr == pytest.approx(-20.0) and torch.equal(seen[0].z, z_1)
    assert torch.equal(out, seen[-1].x_hat)  # no noise after the final prediction
    one = fn(nonlinear_denoiser, z_1, steps=1, schedule_cfg=CFG, **kwargs)
    torch.testing.assert_close(one, nonlinear_denoiser(z_1, torch.full((2,), -20.0), 0), atol=1e-4, rtol=0)


def test_low_precision_input_runs_in_float32() -> None:
    z_1 = torch.randn(2, 1, 1, 2, 2, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    seen: list[StepInfo] = []
    out = sample_ddim(lambda z, l, i: seen.append(l) or z.to(torch.bfloat16), z_1, steps=2, schedule_cfg=CFG)
    assert out.dtype == torch.float32 and seen[0].dtype == torch.float32 and seen[0].shape == (2,)


def test_run_sampler_dispatches() -> None:
    assert set(SAMPLERS) == set(SAMPLER_NAMES)
    z_1 = torch.randn(2, 1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    for name in SAMPLER_NAMES:
        config = SamplerConfig(name=name, steps=3, gamma=0.7)
        got = run_sampler(
            config, nonlinear_denoiser, z_1, schedule_cfg=CFG, generator=torch.Generator().manual_seed(2)
        )
        extra = {"gamma": 0.7} if name == "ancestral" else {}
        want = SAMPLERS[name](
            nonlinear_denoiser,
            z_1,
            steps=3,
            schedule_cfg=CFG,
            generator=torch.Generator().manual_seed(2),
            **extra,
        )
        assert torch.equal(got, want)


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
@pytest.mark.parametrize("steps", [0, -2, 2.5])
def test_bad_step_count_raises(case: str, steps: float) -> None:
    fn, kwargs = SAMPLER_CASES[case]
    with pytest.raises(ValueError, match="steps=.* must be an integer >= 1"):
        fn(gaussian_denoiser, torch.zeros(2, 1), steps=steps, schedule_cfg=CFG, **kwargs)


@pytest.mark.parametrize("gamma", [-0.1, 1.01, float("nan")])
def test_bad_gamma_raises(gamma: float) -> None:
    with pytest.raises(ValueError, match=r"gamma=.* must be in \[0, 1\]"):
        sample_ancestral(gaussian_denoiser, torch.zeros(2, 1), steps=4, schedule_cfg=CFG, gamma=gamma)


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
def test_nan_in_state_names_the_step(case: str) -> None:
    fn, kwargs = SAMPLER_CASES[case]

    def breaks_at_3(z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
        return torch.full_like(z, float("nan")) if step == 3 else torch.tanh(z)

    with pytest.raises(NonFiniteStateError, match="at step 3 of 6") as info:
        fn(breaks_at_3, torch.zeros(2, 1), steps=6, schedule_cfg=CFG, **kwargs)
    assert info.value.step == 3
    z_1 = torch.zeros(2, 1)
    z_1[1, 0] = float("inf")
    with pytest.raises(NonFiniteStateError, match="initial noise"):
        fn(gaussian_denoiser, z_1, steps=6, schedule_cfg=CFG, **kwargs)


@pytest.mark.parametrize("case", ["ddim", "ancestral_0.3", "stochastic"])
def test_truncated_start_from_the_true_marginal_recovers_the_gaussian(case: str) -> None:
    """Started at t0 = 0.4 from z_t0 ~ q(z_t0) = N(alpha mu, alpha^2 s^2 + sigma^2), the sampler solves
    the rest of the reverse process: 256 steps recover mu and s (SamplerConfig.t_start)."""
    fn, kwargs = SAMPLER_CASES[case]
    t0 = 0.4
    logsnr_t0 = logsnr_from_t(torch.tensor([t0], dtype=torch.float64), CFG)
    alpha, sigma = (float(v) for v in alpha_sigma(logsnr_t0))
    g = torch.Generator().manual_seed(7)
    unit = torch.randn(20_000, 1, generator=g, dtype=torch.float64)
    unit = (unit - unit.mean()) / unit.std()  # exact moments: what remains is the sampler's error
    z_t0 = alpha * MU + math.sqrt(alpha**2 * S**2 + sigma**2) * unit
    seen: list[float] = []

    def denoise(z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
        seen.append(float(logsnr[0]))
        return gaussian_denoiser(z, logsnr, step)

    x = fn(denoise, z_t0, steps=256, schedule_cfg=CFG, generator=g, t_start=t0, **kwargs)
    assert seen[0] == pytest.approx(math.log(alpha**2 / sigma**2))  # the first call is at t0, not t = 1
    assert float(x.mean()) == pytest.approx(MU, abs=0.01)
    assert float(x.std()) == pytest.approx(S, rel=0.01)


def test_bad_t_start_raises() -> None:
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="t_start"):
            SamplerConfig(t_start=bad)
