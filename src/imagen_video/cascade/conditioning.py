"""Conditioning on known frames as wrappers of ``denoise(z_t, logsnr_t, step) -> x_hat``.

Image-to-video, video extension and first/last-frame generation all sample a video ``x = [x^a, x^b]``
whose frames ``x^a`` are given (Ho et al. 2022, "Video Diffusion Models", sec. 3.1). No new sampler
is needed: a wrapper around a stage's denoiser changes what the sampler sees at every step.

- ``"replacement"``: the known frames of the state are replaced by a draw of the forward process,
  ``z^a_t = alpha_t x^a + sigma_t eps`` (paper eq. 1), before the network sees the state, so the
  unknown frames are denoised next to correctly noised known frames. The returned x_hat holds
  ``x^a`` in the known frames, so at the last step they equal the input exactly.
- ``"reconstruction"`` (reconstruction guidance, Video Diffusion Models eq. 7): the same replacement,
  and the unknown frames' prediction is corrected by the gradient of the known frames'
  reconstruction error, ``x~^b = x^b_hat - (w_r alpha_t / 2) grad_{z^b_t} ||x^a - x^a_hat(z_t)||^2``,
  which makes ``x^b_hat`` consistent with ``x^a`` (replacement alone only conditions through the
  network's view of ``z^a_t``).

:class:`KnownFrames` holds the known frames at the top stage's resolution and maps them to every
stage: a stage frame ``k`` stands for the top-stage frames ``k F .. k F + F - 1`` (``F`` the product of
the later stages' temporal factors, whose frame repetition puts input frame ``k`` there, paper sec.
2.3); it is known when one of them is, with the first known one as its value, resized to the
stage's H x W. So the known frames go in at every stage's resolution and survive the whole cascade.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from imagen_video.diffusion import _random
from imagen_video.diffusion._random import Generators
from imagen_video.diffusion.guidance import Denoise

Method = Literal["replacement", "reconstruction", "finetuned"]
METHODS: tuple[str, ...] = get_args(Method)
"""Conditioning methods. ``"finetuned"`` samples the base with a network that takes the known frames
as input channels (:mod:`imagen_video.cascade.frame_base`) and the replacement wrapper, and the later
stages with reconstruction guidance (:func:`stage_method`)."""
DEFAULT_RECONSTRUCTION_WEIGHT = 2.0
"""Default ``w_r`` of reconstruction guidance (Video Diffusion Models eq. 7)."""


def _frame_mask(mask: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """``mask`` (T,) bool as a float (1, 1, T, 1, 1) multiplier for ``video`` (N, C, T, H, W)."""
    return mask.to(device=video.device, dtype=video.dtype).view(1, 1, -1, 1, 1)


def noised_known(
    z_t: torch.Tensor,
    logsnr_t: torch.Tensor,
    known: torch.Tensor,
    mask: torch.Tensor,
    generator: Generators,
) -> torch.Tensor:
    """``z_t`` (N, C, T, H, W) with the ``mask`` (T,) frames replaced by ``alpha_t known + sigma_t eps``,
    a fresh draw of the forward process q(z_t | x^a) (paper eq. 1) at each sample's ``logsnr_t`` (N,)."""
    alpha = torch.sigmoid(logsnr_t).sqrt().view(-1, 1, 1, 1, 1).to(z_t.dtype)  # (N, 1, 1, 1, 1)
    sigma = torch.sigmoid(-logsnr_t).sqrt().view(-1, 1, 1, 1, 1).to(z_t.dtype)
    eps = _random.randn(z_t.shape, generator=generator, device=z_t.device, dtype=z_t.dtype)
    m = _frame_mask(mask, z_t)
    return z_t * (1.0 - m) + (alpha * known.to(z_t.dtype) + sigma * eps) * m


def replacement_denoiser(
    denoise: Denoise,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    generator: Generators = None,
    keep: bool = True,
) -> Denoise:
    """The replacement method (Video Diffusion Models sec. 3.1) around ``denoise``.

    ``known`` (N, C, T, H, W) in [-1, 1] is read only where ``mask`` (T,) is True. The network sees the
    state with the known frames noised by :func:`noised_known`; the returned x_hat holds ``known`` in
    those frames when ``keep`` (the model's own reconstruction of them otherwise).
    """

    def wrapped(z_t: torch.Tensor, logsnr_t: torch.Tensor, step: int) -> torch.Tensor:
        x_hat = denoise(noised_known(z_t, logsnr_t, known, mask, generator), logsnr_t, step)
        return _keep_known(x_hat, known, mask) if keep else x_hat

    return wrapped


def reconstruction_guided_denoiser(
    denoise: Denoise,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    weight: float = DEFAULT_RECONSTRUCTION_WEIGHT,
    generator: Generators = None,
    keep: bool = True,
    low: torch.Tensor | None = None,
) -> Denoise:
    """Reconstruction-guided sampling (Video Diffusion Models eq. 7) around ``denoise``.

    As :func:`replacement_denoiser`, and the unknown frames' x_hat is corrected by
    ``- (w_r alpha_t / 2) grad_{z^b_t} ||x^a - x^a_hat(z_t)||^2`` with ``w_r = weight``; the gradient
    is taken through ``denoise`` (the network runs forward and backward once per step). Each
    sample's error involves only its own frames, so the batch's summed error gives every sample
    its own gradient.

    ``low`` (N, C, T / k, h, w), a super-resolution stage's input: the error also holds
    ``||low^b - D(x^b_hat)||^2`` over the unknown frames, ``D`` the degradation the stage was trained
    to invert (every k-th frame, paper sec. 2.3, resized to h x w with antialiasing), so they keep to
    the input they super-resolve (the super-resolution form of reconstruction guidance, Video
    Diffusion Models sec. 3.1).
    """
    if weight < 0:
        raise ValueError(f"reconstruction guidance weight w_r must be >= 0, got {weight}")

    def wrapped(z_t: torch.Tensor, logsnr_t: torch.Tensor, step: int) -> torch.Tensor:
        z = noised_known(z_t, logsnr_t, known, mask, generator).detach()
        m = _frame_mask(mask, z)
        with torch.enable_grad():
            z.requires_grad_(True)
            x_hat = denoise(z, logsnr_t, step)  # (N, C, T, H, W)
            error = ((known.to(x_hat.dtype) - x_hat) * m).square().sum()
            if low is not None:
                factor = x_hat.shape[2] // low.shape[2]
                down = resize_frames(x_hat[:, :, ::factor], low.shape[-2], low.shape[-1])
                free = (1.0 - m)[:, :, ::factor]
                error = error + ((low.to(down.dtype) - down) * free).square().sum()
            (grad,) = torch.autograd.grad(error, z)
        alpha = torch.sigmoid(logsnr_t).sqrt().view(-1, 1, 1, 1, 1).to(z.dtype)
        guided = x_hat.detach() - (weight * alpha / 2.0) * grad * (1.0 - m)  # eq. 7 on x^b only
        return _keep_known(guided, known, mask) if keep else guided

    return wrapped


def _keep_known(x_hat: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x_hat`` with its ``mask`` frames set to ``known`` (both (N, C, T, H, W))."""
    m = _frame_mask(mask, x_hat)
    return x_hat * (1.0 - m) + known.to(x_hat.dtype) * m


def conditioned_denoiser(
    denoise: Denoise,
    known: torch.Tensor,
    mask: torch.Tensor,
    method: str,
    *,
    weight: float = DEFAULT_RECONSTRUCTION_WEIGHT,
    generator: Generators = None,
    keep: bool = True,
    low: torch.Tensor | None = None,
) -> Denoise:
    """``denoise`` conditioned on ``known`` frames by ``method`` (:data:`METHODS`); a mask without
    known frames returns ``denoise`` itself. ``low``: a super-resolution stage's input, for
    reconstruction guidance (:func:`reconstruction_guided_denoiser`; replacement does not use it)."""
    check_method(method)
    if method == "finetuned":
        raise ValueError("'finetuned' picks a method per stage; pass stage_method(method, stage kind)")
    if not bool(mask.any()):
        return denoise
    if method == "replacement":
        return replacement_denoiser(denoise, known, mask, generator=generator, keep=keep)
    return reconstruction_guided_denoiser(
        denoise, known, mask, weight=weight, generator=generator, keep=keep, low=low
    )


def stage_method(method: str, kind: str) -> str:
    """The denoiser wrapper ``method`` uses at a stage of ``kind`` ("base", "tsr", "ssr"): its own,
    except for ``"finetuned"``: replacement at the frame-conditioned base, reconstruction guidance at
    the super-resolution stages."""
    check_method(method)
    if method != "finetuned":
        return method
    return "replacement" if kind == "base" else "reconstruction"


def check_method(method: str) -> None:
    """ValueError naming the allowed methods unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"conditioning method {method!r} is not allowed; allowed: {', '.join(METHODS)}")


def resize_frames(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize a (N, C, T, H, W) video's frames to ``height`` x ``width`` (bilinear, antialiased when
    shrinking, as the paper's data processing)."""
    n, c, t, h, w = video.shape
    if (h, w) == (height, width):
        return video
    frames = video.transpose(1, 2).reshape(n * t, c, h, w)  # (N*T, C, H, W)
    shrink = h > height or w > width
    out = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return out.reshape(n, t, c, height, width).transpose(1, 2)


@dataclasses.dataclass(frozen=True)
class KnownFrames:
    """Known frames at the top stage's shape: ``video`` (N, C, T, H, W) in [-1, 1], read where
    ``mask`` (T,) bool is True."""

    video: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.video.dim() != 5 or self.mask.shape != (self.video.shape[2],):
            raise ValueError(
                f"known frames need video (N, C, T, H, W) and mask (T,), got {tuple(self.video.shape)} "
                f"and {tuple(self.mask.shape)}"
            )
        if not bool(self.mask.any()):
            raise ValueError("no frame is known; give at least one known frame")

    def at_stage(self, frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(video (N, C, frames, height, width), mask (frames,))`` for a stage of ``frames`` frames.

        Stage frame ``k`` covers top frames ``k F .. k F + F - 1`` with ``F = T / frames``; it is known
        when one of them is, and takes the first known one (see the module docstring).
        """
        total = self.video.shape[2]
        if total % frames:
            raise ValueError(f"a stage of {frames} frames does not divide the {total} top-stage frames")
        factor = total // frames
        blocks = self.mask.view(frames, factor)  # (frames, F)
        mask = blocks.any(dim=1)  # (frames,)
        first = blocks.to(torch.int64).argmax(dim=1)  # (frames,) first known offset in each block
        index = torch.arange(frames) * factor + first
        picked = self.video[:, :, index.to(self.video.device)]  # (N, C, frames, H, W)
        return resize_frames(picked, height, width), mask
