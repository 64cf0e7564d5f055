"""Known-frame conditioning as denoiser wrappers (Video Diffusion Models sec. 3.1, eq. 7): the
replacement draw, reconstruction guidance against a linear denoiser's closed form, the frame
mapping to each stage, and whole sampling loops that end on the known frames."""

from __future__ import annotations

import pytest
import torch

from imagen_video.cascade.conditioning import (
    KnownFrames,
    conditioned_denoiser,
    noised_known,
    reconstruction_guided_denoiser,
    replacement_denoiser,
    resize_frames,
)
from imagen_video.diffusion.config import ScheduleConfig
from imagen_video.samplers import sample_ddim

SHAPE = (2, 3, 6, 4, 5)  # (N, C, T, H, W)
MASK = torch.tensor([True, True, False, False, False, True])


def _seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def _known() -> torch.Tensor:
    return torch.rand(SHAPE, generator=_seed(7)) * 2 - 1


def _alpha_sigma(logsnr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.sigmoid(logsnr).sqrt().view(-1, 1, 1, 1, 1), torch.sigmoid(-logsnr).sqrt().view(
        -1, 1, 1, 1, 1
    )


def test_noised_known_replaces_only_the_known_frames_by_a_forward_draw() -> None:
    z = torch.randn(SHAPE, generator=_seed(0))
    logsnr = torch.tensor([-1.0, 2.5])
    out = noised_known(z, logsnr, _known(), MASK, _seed(3))
    eps = torch.randn(SHAPE, generator=_seed(3))  # the same draw
    alpha, sigma = _alpha_sigma(logsnr)
    torch.testing.assert_close(out[:, :, MASK], (alpha * _known() + sigma * eps)[:, :, MASK])
    torch.testing.assert_close(out[:, :, ~MASK], z[:, :, ~MASK])


def test_replacement_feeds_the_noised_state_and_returns_the_known_frames() -> None:
    seen: list[torch.Tensor] = []

    def denoise(z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
        seen.append(z)
        return 0.5 * z

    z, logsnr = torch.randn(SHAPE, generator=_seed(0)), torch.tensor([0.0, 1.0])
    kept = replacement_denoiser(denoise, _known(), MASK, generator=_seed(3))(z, logsnr, 0)
    expected_z = noised_known(z, logsnr, _known(), MASK, _seed(3))
    torch.testing.assert_close(seen[0], expected_z)
    torch.testing.assert_close(kept[:, :, MASK], _known()[:, :, MASK])
    torch.testing.assert_close(kept[:, :, ~MASK], 0.5 * expected_z[:, :, ~MASK])
    free = replacement_denoiser(denoise, _known(), MASK, generator=_seed(3), keep=False)(z, logsnr, 0)
    torch.testing.assert_close(free, 0.5 * expected_z)


def _linear_denoiser(c: float):  # type: ignore[no-untyped-def]
    """x_hat = alpha_t (z + c * mean over frames of z): every frame's prediction sees every frame."""

    def denoise(z: torch.Tensor, logsnr: torch.Tensor, step: int) -> torch.Tensor:
        alpha, _ = _alpha_sigma(logsnr)
        return alpha * (z + c * z.mean(dim=2, keepdim=True))

    return denoise


@pytest.mark.parametrize("weight", [0.5, 3.0])
def test_reconstruction_guidance_matches_eq7_for_a_linear_denoiser(weight: float) -> None:
    """eq. 7: x~^b = x^b_hat - (w_r alpha / 2) grad_{z^b} ||x^a - x^a_hat||^2; with x_hat =
    alpha (z + c mean_T z) the gradient at every unknown frame is (2 alpha c / T) sum_a (x^a_hat - x^a)."""
    c, frames = 0.8, SHAPE[2]
    denoise = _linear_denoiser(c)
    z, logsnr = torch.randn(SHAPE, generator=_seed(0)), torch.tensor([0.3, -2.0])
    guided = reconstruction_guided_denoiser(
        denoise, _known(), MASK, weight=weight, generator=_seed(3), keep=False
    )
    out = guided(z, logsnr, 0)
    z_in = noised_known(z, logsnr, _known(), MASK, _seed(3))
    x_hat = denoise(z_in, logsnr, 0)
    alpha, _ = _alpha_sigma(logsnr)
    residual = (x_hat - _known())[:, :, MASK].sum(dim=2, keepdim=True)  # (N, C, 1, H, W)
    grad = 2.0 * alpha * c / frames * residual
    torch.testing.assert_close(out[:, :, ~MASK], (x_hat - weight * alpha / 2.0 * grad)[:, :, ~MASK])
    torch.testing.assert_close(out[:, :, MASK], x_hat[:, :, MASK])  # known frames are not guided


def test_reconstruction_guidance_with_zero_weight_is_replacement() -> None:
    denoise = _linear_denoiser(0.5)
    z, logsnr = torch.randn(SHAPE, generator=_seed(0)), torch.tensor([1.0, 1.0])
    a = reconstruction_guided_denoiser(denoise, _known(), MASK, weight=0.0, generator=_seed(3))(z, logsnr, 2)
    b = replacement_denoiser(denoise, _known(), MASK, generator=_seed(3))(z, logsnr, 2)
    torch.testing.assert_close(a, b)


def test_reconstruction_guidance_pulls_unknown_frames_toward_consistency() -> None:
    """A denoiser that copies the mean frame: guidance moves the unknown frames' prediction so the
    known frames' reconstruction error falls (a gradient step on the eq. 7 objective)."""
    denoise = _linear_denoiser(4.0)
    z, logsnr = torch.randn(SHAPE, generator=_seed(0)), torch.tensor([0.0, 0.0])
    known = _known()
    plain = replacement_denoiser(denoise, known, MASK, generator=_seed(3), keep=False)(z, logsnr, 0)
    guided = reconstruction_guided_denoiser(denoise, known, MASK, weight=0.2, generator=_seed(3), keep=False)
    x_guided = guided(z, logsnr, 0)
    # Feed the guided unknown frames back as the state: the known frames are reconstructed better.
    alpha, _ = _alpha_sigma(logsnr)
    z_b = noised_known(z, logsnr, known, MASK, _seed(3))

    def error(x_b: torch.Tensor) -> float:
        state = z_b.clone()
        state[:, :, ~MASK] = alpha * x_b[:, :, ~MASK]
        return float((denoise(state, logsnr, 0) - known)[:, :, MASK].square().sum())

    assert error(x_guided) < error(plain)


def test_an_ssr_input_guides_the_unknown_frames_to_it() -> None:
    """With ``low`` at the stage's own size (D the identity) and x_hat = alpha z (c = 0: the known
    frames' term has no gradient at the unknown ones), ``||low - x^b_hat||^2`` has gradient
    ``2 alpha (x^b_hat - low)``, so eq. 7 gives ``x^b_hat - w_r alpha^2 (x^b_hat - low)``."""
    denoise, weight = _linear_denoiser(0.0), 0.7
    z, logsnr = torch.randn(SHAPE, generator=_seed(0)), torch.tensor([0.3, -2.0])
    low = torch.rand(SHAPE, generator=_seed(9)) * 2 - 1
    out = reconstruction_guided_denoiser(
        denoise, _known(), MASK, weight=weight, generator=_seed(3), keep=False, low=low
    )(z, logsnr, 0)
    alpha, _ = _alpha_sigma(logsnr)
    x_hat = denoise(noised_known(z, logsnr, _known(), MASK, _seed(3)), logsnr, 0)
    expected = x_hat - weight * alpha**2 * (x_hat - low)
    torch.testing.assert_close(out[:, :, ~MASK], expected[:, :, ~MASK])
    torch.testing.assert_close(out[:, :, MASK], x_hat[:, :, MASK])


def test_a_tsr_input_guides_every_k_th_unknown_frame_to_it() -> None:
    """A TSR stage's input holds every k-th frame (D picks them): with ``low`` of T / 2 frames the
    unknown even frames are guided as above, the odd ones (no input frame) not at all."""
    denoise, weight = _linear_denoiser(0.0), 0.7
    z, logsnr = torch.randn(SHAPE, generator=_seed(0)), torch.tensor([0.3, -2.0])
    low = torch.rand(2, 3, 3, 4, 5, generator=_seed(9)) * 2 - 1  # frames 0, 2, 4 of the output
    out = reconstruction_guided_denoiser(
        denoise, _known(), MASK, weight=weight, generator=_seed(3), keep=False, low=low
    )(z, logsnr, 0)
    alpha, _ = _alpha_sigma(logsnr)
    x_hat = denoise(noised_known(z, logsnr, _known(), MASK, _seed(3)), logsnr, 0)
    # frames 0 and 5 are known; frame 2 and 4 unknown with an input frame; 1 and 3 without one
    for frame, index in ((2, 1), (4, 2)):
        expected = x_hat[:, :, frame] - weight * alpha[:, :, 0] ** 2 * (x_hat[:, :, frame] - low[:, :, index])
        torch.testing.assert_close(out[:, :, frame], expected)
    torch.testing.assert_close(out[:, :, [0, 1, 3, 5]], x_hat[:, :, [0, 1, 3, 5]])


def test_an_ssr_input_pulls_the_downsampled_prediction_toward_it() -> None:
    """At half the size (the antialiased resize the SSR stages are trained on), one guided
    prediction is closer to the input, downsampled, than the plain one."""
    denoise = _linear_denoiser(0.0)
    shape = (2, 3, 6, 8, 8)
    z, logsnr = torch.randn(shape, generator=_seed(0)), torch.tensor([0.0, 1.0])
    known, low = torch.zeros(shape), torch.rand(2, 3, 6, 4, 4, generator=_seed(9)) * 2 - 1
    plain = replacement_denoiser(denoise, known, MASK, generator=_seed(3), keep=False)(z, logsnr, 0)
    guided = reconstruction_guided_denoiser(
        denoise, known, MASK, weight=2.0, generator=_seed(3), keep=False, low=low
    )(z, logsnr, 0)

    def error(x: torch.Tensor) -> float:
        return float((resize_frames(x, 4, 4) - low)[:, :, ~MASK].square().sum())

    assert error(guided) < 0.9 * error(plain)


def test_no_known_frame_leaves_the_denoiser_alone() -> None:
    denoise = _linear_denoiser(0.0)
    none = torch.zeros(SHAPE[2], dtype=torch.bool)
    assert conditioned_denoiser(denoise, _known(), none, "replacement") is denoise
    with pytest.raises(ValueError, match="allowed: replacement, reconstruction"):
        conditioned_denoiser(denoise, _known(), MASK, "inpaint")
    with pytest.raises(ValueError, match="w_r must be >= 0"):
        reconstruction_guided_denoiser(denoise, _known(), MASK, weight=-1.0)


@pytest.mark.parametrize("method", ["replacement", "reconstruction"])
def test_ddim_loop_ends_exactly_on_the_known_frames(method: str) -> None:
    """A whole DDIM loop with a Gaussian-data denoiser (x_hat = alpha z, the optimum for x ~ N(0, I)):
    at t -> 0 the known frames are the input exactly, the others are finite samples."""
    known = _known()
    denoise = conditioned_denoiser(_linear_denoiser(0.3), known, MASK, method, generator=_seed(5))
    z_1 = torch.randn(SHAPE, generator=_seed(4))
    x = sample_ddim(denoise, z_1, steps=6, schedule_cfg=ScheduleConfig())
    assert torch.equal(x[:, :, MASK], known[:, :, MASK])
    assert torch.isfinite(x).all() and not torch.allclose(x[:, :, ~MASK], known[:, :, ~MASK])


def test_known_frames_map_to_each_stage_by_the_covered_top_frames() -> None:
    top = torch.arange(32, dtype=torch.float32).view(1, 1, 32, 1, 1).expand(1, 3, 32, 4, 4).clone()
    extension = torch.arange(32) < 16  # the first 16 of 32 frames known
    video, mask = KnownFrames(top, extension).at_stage(8, 2, 2)
    assert mask.tolist() == [True] * 4 + [False] * 4
    assert video[0, 0, :4, 0, 0].tolist() == [0.0, 4.0, 8.0, 12.0] and video.shape == (1, 3, 8, 2, 2)
    backward = torch.arange(32) >= 16
    _, mask = KnownFrames(top, backward).at_stage(16, 4, 4)
    assert mask.tolist() == [False] * 8 + [True] * 8
    first_last = torch.zeros(32, dtype=torch.bool)
    first_last[[0, 31]] = True
    video, mask = KnownFrames(top, first_last).at_stage(8, 4, 4)
    assert mask.tolist() == [True] + [False] * 6 + [True]
    assert video[0, 0, [0, 7], 0, 0].tolist() == [0.0, 31.0]
    with pytest.raises(ValueError, match="does not divide"):
        KnownFrames(top, first_last).at_stage(5, 4, 4)
    with pytest.raises(ValueError, match="no frame is known"):
        KnownFrames(top, torch.zeros(32, dtype=torch.bool))


def test_a_fully_known_clip_reaches_each_stage_as_that_stage_was_trained() -> None:
    from imagen_video.data.transforms import conditioning_clip

    clip = torch.rand(1, 3, 32, 48, 80, generator=_seed(5)) * 2 - 1
    known = KnownFrames(clip, torch.ones(32, dtype=torch.bool))
    for frames, height, width in ((8, 12, 20), (16, 24, 40), (32, 48, 80)):
        video, mask = known.at_stage(frames, height, width)
        trained = conditioning_clip(clip[0].transpose(0, 1), frames, (height, width)).transpose(0, 1)
        assert bool(mask.all())
        torch.testing.assert_close(video[0], trained, rtol=0, atol=1e-6)
