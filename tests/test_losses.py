"""Training losses and conditioning dropout (paper eq. 2, secs. 2.4, 2.6.1; docs/math.md sec. 3)."""

from __future__ import annotations

import itertools

import pytest
import torch

from imagen_video.diffusion import (
    LOSSES,
    PREDICTIONS,
    DiffusionConfig,
    alpha_sigma,
    conditioning_dropout_mask,
    diffusion_loss,
    logsnr_from_t,
    prediction_loss,
    q_sample,
    t_from_logsnr,
    v_from,
)

SHAPE = (6, 2, 3, 4, 4)  # (B, C, T, H, W)


def clone(g: torch.Generator) -> torch.Generator:
    copy = torch.Generator()
    copy.set_state(g.get_state())
    return copy


def data() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("prediction,loss", list(itertools.product(PREDICTIONS, LOSSES)))
def test_perfect_predictor_has_zero_loss(prediction: str, loss: str) -> None:
    x = data()
    config = DiffusionConfig(prediction=prediction, loss=loss)
    g = torch.Generator().manual_seed(7)
    replay = clone(g)  # replays the documented draw order: t (B,), then eps (x's shape)

    def perfect(z_t: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        t = torch.rand((SHAPE[0],), generator=replay)
        eps = torch.randn(SHAPE, generator=replay)
        torch.testing.assert_close(logsnr, logsnr_from_t(t, config.schedule))
        truth = {"x": x, "eps": eps.double(), "v": v_from(x, eps, logsnr)}
        return truth[prediction]

    out = diffusion_loss(perfect, x, config, generator=g)
    assert out.shape == (SHAPE[0],)
    # eps-prediction to x divides by alpha (up to 2.2e4 at logsnr -20): float64 error stays tiny.
    assert float(out.max()) < 1e-12


def test_loss_relations_closed_form() -> None:
    """Same z_t: eps_mse = SNR x_mse, v_mse = (1 + SNR) x_mse, snr_trunc = max(SNR, 1) x_mse."""
    x = data()
    logsnr = torch.tensor([-6.0, -1.0, 0.0, 0.5, 3.0, 9.0], dtype=torch.float64)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    garbage = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    snr = torch.exp(logsnr)
    for prediction in PREDICTIONS:
        losses = {
            name: diffusion_loss(
                lambda z, l: garbage,
                x,
                DiffusionConfig(prediction=prediction, loss=name),
                logsnr=logsnr,
                noise=noise,
            )
            for name in LOSSES
        }
        x_mse = losses["x_mse"]
        torch.testing.assert_close(losses["eps_mse"], snr * x_mse, rtol=1e-9, atol=0)
        torch.testing.assert_close(losses["v_mse"], (1 + snr) * x_mse, rtol=1e-9, atol=0)
        torch.testing.assert_close(losses["snr_trunc"], torch.clamp(snr, min=1) * x_mse, rtol=1e-9, atol=0)


def test_v_mse_of_zero_prediction_is_mean_v_squared() -> None:
    x = data()
    logsnr = torch.linspace(-4, 4, SHAPE[0], dtype=torch.float64)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = diffusion_loss(lambda z, l: torch.zeros_like(z), x, DiffusionConfig(), logsnr=logsnr, noise=noise)
    alpha, sigma = alpha_sigma(logsnr.reshape(-1, 1, 1, 1, 1))
    expected = (alpha * noise - sigma * x).square().flatten(1).mean(1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=0)


def test_prediction_loss_without_eps_uses_implied_noise() -> None:
    x = data()
    logsnr = torch.linspace(-3, 3, SHAPE[0], dtype=torch.float64)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    z = q_sample(x, logsnr, noise)
    pred = torch.randn(SHAPE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for loss in LOSSES:
        with_eps = prediction_loss(pred, z, x, logsnr, prediction="v", loss=loss, eps=noise)
        implied = prediction_loss(pred, z, x, logsnr, prediction="v", loss=loss)
        torch.testing.assert_close(implied, with_eps, rtol=1e-9, atol=1e-12)


def test_timesteps_are_uniform_per_sample() -> None:
    config = DiffusionConfig()
    seen: list[torch.Tensor] = []

    def record(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        seen.append(logsnr)
        return torch.zeros_like(z)

    x = torch.zeros(4000, 1)
    diffusion_loss(record, x, config, generator=torch.Generator().manual_seed(0))
    (logsnr,) = seen
    assert logsnr.shape == (4000,) and logsnr.dtype == torch.float32
    assert float(logsnr.max()) <= 20.0 + 1e-4 and float(logsnr.min()) >= -20.0 - 1e-4
    t = t_from_logsnr(logsnr.double(), config.schedule)
    # U(0, 1): mean 1/2 and variance 1/12 within ~5 standard errors for 4000 samples.
    assert abs(float(t.mean()) - 0.5) < 0.025
    assert abs(float(t.var()) - 1 / 12) < 0.01


def test_t_max_draws_times_from_the_truncated_range() -> None:
    """``t_max`` < 1 draws t ~ U(0, t_max) (SR stages sampled from t_start <= t_max); t_max = 1 is the
    paper's draw, bit for bit."""
    seen: list[torch.Tensor] = []

    def record(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        seen.append(logsnr)
        return torch.zeros_like(z)

    x = torch.zeros(4000, 1)
    for t_max in (0.3, 1.0):
        diffusion_loss(record, x, DiffusionConfig(t_max=t_max), generator=torch.Generator().manual_seed(0))
    truncated, full = seen
    config = DiffusionConfig()
    t = t_from_logsnr(truncated.double(), config.schedule)
    assert float(t.max()) <= 0.3 + 1e-5 and abs(float(t.mean()) - 0.15) < 0.025 * 0.3
    expected = logsnr_from_t(torch.rand(4000, generator=torch.Generator().manual_seed(0)), config.schedule)
    torch.testing.assert_close(full, expected, rtol=0, atol=0)
    # the same uniform draws, scaled by t_max
    torch.testing.assert_close(t, 0.3 * t_from_logsnr(full.double(), config.schedule), rtol=0, atol=1e-5)


def test_wrong_prediction_shape_raises() -> None:
    with pytest.raises(ValueError, match="expected z_t's"):
        diffusion_loss(lambda z, l: z[:, :1], data(), DiffusionConfig())


def test_conditioning_dropout_mask() -> None:
    mask = conditioning_dropout_mask(100_000, 0.1, torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (100_000,)
    assert abs(mask.float().mean().item() - 0.1) < 0.005  # 5 standard errors
    again = conditioning_dropout_mask(100_000, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)
    assert not conditioning_dropout_mask(1000, 0.0, torch.Generator().manual_seed(1)).any()
    assert conditioning_dropout_mask(1000, 1.0, torch.Generator().manual_seed(1)).all()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            conditioning_dropout_mask(4, bad)
