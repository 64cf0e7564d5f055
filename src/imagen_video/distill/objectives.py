"""Distillation targets and losses on one micro-batch (paper sec. 2.7; docs/math.md secs. 10-11).

Both phases see the training data exactly as training does: clips ``x`` from ``imagen_video.data``,
cached text embeddings, and for SR stages the low-resolution clip upsampled with ``upsample_video``
and noise-augmented at a random level ``t_a ~ U(0, aug_t_max)`` (paper sec. 2.5). Teacher and
student get the same conditioning, the same z_t and the same guidance weight w.

- Guidance distillation (sec. 11, Meng et al. 2022): ``t ~ U(0, t0)``, ``w ~ U[w_min, w_max]`` per
  sample, target ``(1 + w) x_T(z_t, c) - w x_T(z_t, null)`` from ONE batched teacher forward of 2B
  samples; the student makes one forward with ``drop_text=False, guidance_w=w``.
- Progressive distillation (sec. 10, Salimans & Ho 2022): ``i ~ U{1..N}``, ``t = t0 i / N``, two teacher
  DDIM steps t -> t' -> t'' and the x_target that takes one student DDIM step t -> t'' onto the
  teacher's z_t'' (general formula at every i, t'' = 0 included), computed in float64.

``t0`` is the stage sampler's ``t_start``: 1 in the paper; below 1 (a truncated start from the
upsampled input, SR stages) the student learns only the range its sampler visits.

Loss: ``max(SNR_t, 1) ||x_student - x_target||^2`` ("snr_trunc") or the v-MSE, per sample (B,).
Random draws come from the caller's ``torch.Generator`` in the order the docstrings state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from imagen_video.cascade.config import StageConfig
from imagen_video.diffusion import _random
from imagen_video.diffusion.augment import noise_augment
from imagen_video.diffusion.distillation_math import distillation_target, guided_target, student_logsnrs
from imagen_video.diffusion.guidance import threshold
from imagen_video.diffusion.losses import prediction_loss
from imagen_video.diffusion.parameterization import q_sample, to_x
from imagen_video.diffusion.schedule import logsnr_from_t
from imagen_video.models import upsample_video
from imagen_video.text.base import TextEmbeddings
from imagen_video.train.step import autocast


@dataclasses.dataclass(frozen=True)
class StageInputs:
    """One micro-batch with its conditioning, as teacher and student see it (``VideoUNet.forward``'s
    shapes)."""

    x: torch.Tensor  # (B, C, T, H, W) clean clips in [-1, 1], float32
    tokens: torch.Tensor  # (B, L, D) text tokens
    mask: torch.Tensor  # (B, L) bool
    cond_video: torch.Tensor | None = None  # (B, C, T, H, W) upsampled, noise-augmented (SR stages)
    aug_logsnr: torch.Tensor | None = None  # (B,) its aug level
    image_mode: torch.Tensor | None = None  # (B,) bool, packed images (paper sec. 2.6)

    def repeat(self, times: int) -> StageInputs:
        """The batch ``times`` times along B (the cond + uncond pair of guidance, eq. 5)."""

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat(times, *([1] * (t.ndim - 1)))

        return StageInputs(*(rep(getattr(self, f.name)) for f in dataclasses.fields(self)))  # type: ignore[arg-type]


def prepare_inputs(
    batch: Mapping[str, Any],
    text: TextEmbeddings,
    stage: StageConfig,
    *,
    device: torch.device,
    generator: torch.Generator,
) -> StageInputs:
    """Move a collated batch to ``device`` and build its conditioning like training (secs. 2.3, 2.5).

    SR stages: ``batch["cond_video"]`` is upsampled to the clip's (T, H, W) (bilinear, the stage's
    temporal mode) and noise-augmented with ``t_a ~ U(0, aug_t_max)`` drawn from ``generator``.
    """
    x = batch["video"].to(device=device, dtype=torch.float32)  # (B, C, T, H, W)
    if len(text) != x.shape[0]:
        raise ValueError(f"text embeddings hold {len(text)} prompts but the batch holds {x.shape[0]} clips")
    image_mode = batch.get("image_mode")
    image_mode = None if image_mode is None else image_mode.to(device=device, dtype=torch.bool)
    cond_video = aug_logsnr = None
    if stage.kind != "base":
        if batch.get("cond_video") is None:
            raise ValueError(f"stage {stage.name!r} ({stage.kind}) needs batch['cond_video']")
        cond = upsample_video(
            batch["cond_video"].to(device=device, dtype=torch.float32),
            size=tuple(x.shape[2:]),
            temporal=stage.temporal_upsample,
        )  # (B, C, T, H, W)
        cond_video, aug_logsnr = noise_augment(
            cond, config=stage.diffusion, training=True, generator=generator
        )
    return StageInputs(x, text.tokens.to(device), text.mask.to(device), cond_video, aug_logsnr, image_mode)


def network_raw(
    model: nn.Module,
    z_t: torch.Tensor,
    logsnr: torch.Tensor,
    inputs: StageInputs,
    *,
    drop_text: torch.Tensor | None = None,
    guidance_w: torch.Tensor | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """One forward of a stage network on z_t (B, C, T, H, W) at log-SNR (B,); raw float32 output.

    ``guidance_w`` (B,) is passed only to guidance-conditioned networks (``use_guidance_embedding``).
    """
    if not model.config.use_guidance_embedding:
        guidance_w = None
    with autocast(z_t.device, precision):
        out = model(
            z_t.float(),
            logsnr.float(),
            inputs.tokens,
            inputs.mask,
            drop_text=drop_text,
            cond_video=inputs.cond_video,
            aug_logsnr=inputs.aug_logsnr,
            image_mode=inputs.image_mode,
            guidance_w=None if guidance_w is None else guidance_w.float(),
        )  # (B, C, T, H, W)
    return out.float()


def guided_teacher_x(
    teacher: nn.Module,
    z_t: torch.Tensor,
    logsnr: torch.Tensor,
    inputs: StageInputs,
    w: torch.Tensor,
    *,
    prediction: str,
    precision: str = "fp32",
) -> torch.Tensor:
    """The teacher's guided x (paper eq. 5) from ONE forward of 2B samples (cond, then null text)."""
    batch = z_t.shape[0]
    drop = torch.arange(2 * batch, device=z_t.device) >= batch  # (2B,) second half uses null tokens
    z2, logsnr2 = torch.cat([z_t, z_t]), torch.cat([logsnr, logsnr])
    raw = network_raw(teacher, z2, logsnr2, inputs.repeat(2), drop_text=drop, precision=precision)
    x2 = to_x(raw.to(z2.dtype), z2, logsnr2, prediction)  # (2B, C, T, H, W)
    return guided_target(x2[:batch], x2[batch:], w)


def sample_w(
    batch: int, w_range: tuple[float, float], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Guidance weights ``w ~ U[w_min, w_max]`` (B,) float32, eq. 5 convention (math sec. 11)."""
    low, high = w_range
    return low + (high - low) * _random.rand((batch,), generator=generator, device=device)


def guidance_distillation_loss(
    student: nn.Module,
    teacher: nn.Module,
    inputs: StageInputs,
    stage: StageConfig,
    w: torch.Tensor,
    *,
    generator: torch.Generator,
    loss: str = "snr_trunc",
    precision: str = "fp32",
) -> torch.Tensor:
    """Per-sample stage-1 loss (B,) (paper sec. 2.7; docs/math.md sec. 11; Meng et al. 2022).

    Draws ``t ~ U(0, t0)`` (B,) (``t0 = stage.sampler.t_start``) then ``eps ~ N(0, I)`` from
    ``generator``; z_t from the forward process; target = the teacher's guided x at weight ``w`` (B,);
    the student predicts with ``guidance_w=w``.
    """
    x = inputs.x
    t = stage.sampler.t_start * _random.rand((x.shape[0],), generator=generator, device=x.device)
    logsnr = logsnr_from_t(t, stage.diffusion.schedule).float()  # (B,)
    eps = _random.randn(x.shape, generator=generator, device=x.device)
    z_t = q_sample(x, logsnr, eps)  # (B, C, T, H, W)
    with torch.no_grad():
        target = guided_teacher_x(
            teacher, z_t, logsnr, inputs, w, prediction=stage.diffusion.prediction, precision=precision
        )
    raw = network_raw(student, z_t, logsnr, inputs, guidance_w=w, precision=precision)
    return prediction_loss(raw, z_t, target, logsnr, prediction=stage.diffusion.prediction, loss=loss)


@dataclasses.dataclass(frozen=True)
class ProgressiveTarget:
    """One progressive-distillation example (docs/math.md sec. 10), float64 except ``w``."""

    z_t: torch.Tensor  # (B, C, T, H, W) the student's input at t = t0 i / N
    logsnr_t: torch.Tensor  # (B,) at t
    logsnr_t1: torch.Tensor  # (B,) at t' = t - 0.5 t0 / N
    logsnr_t2: torch.Tensor  # (B,) at t'' = t - t0 / N
    x_target: torch.Tensor  # (B, C, T, H, W): one student DDIM step t -> t'' lands on the teacher's z_t''
    w: torch.Tensor  # (B,) guidance weight given to teacher and student


def progressive_target(
    teacher: nn.Module,
    inputs: StageInputs,
    stage: StageConfig,
    w: torch.Tensor,
    *,
    n_student: int,
    generator: torch.Generator,
    teacher_threshold: bool = False,
    precision: str = "fp32",
) -> ProgressiveTarget:
    """Draw ``i ~ U{1..N}`` (B,) then ``eps`` from ``generator`` and build the x_target of sec. 10
    on the student's grid ``t = t0 i / N`` (``t0 = stage.sampler.t_start``).

    The teacher's x (one forward with ``guidance_w=w``; thresholded with the stage's setting when
    ``teacher_threshold``) drives two DDIM steps of the 2N-step sampler; arithmetic in float64.
    """
    x = inputs.x
    batch, device = x.shape[0], x.device
    i = torch.randint(1, n_student + 1, (batch,), generator=generator, device=generator.device).to(device)
    l_t, l_t1, l_t2 = (
        v.to(device) for v in student_logsnrs(i, n_student, stage.diffusion.schedule, stage.sampler.t_start)
    )
    eps = _random.randn(x.shape, generator=generator, device=device)
    z_t = q_sample(x.double(), l_t, eps.double())  # (B, C, T, H, W) float64
    prediction = stage.diffusion.prediction

    def teacher_x(z: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        raw = network_raw(teacher, z, logsnr, inputs, guidance_w=w, precision=precision)
        x_hat = to_x(raw.to(z.dtype), z, logsnr, prediction)
        return threshold(x_hat, stage.threshold) if teacher_threshold else x_hat

    with torch.no_grad():
        x_target = distillation_target(z_t, l_t, l_t1, l_t2, teacher_x)
    return ProgressiveTarget(z_t, l_t, l_t1, l_t2, x_target, w)


def progressive_distillation_loss(
    student: nn.Module,
    target: ProgressiveTarget,
    inputs: StageInputs,
    stage: StageConfig,
    *,
    loss: str = "snr_trunc",
    precision: str = "fp32",
) -> torch.Tensor:
    """Per-sample stage-2 loss (B,): ``max(SNR_t, 1) ||x_student(z_t) - x_target||^2`` (math sec. 10)."""
    z_t, logsnr = target.z_t.float(), target.logsnr_t.float()
    raw = network_raw(student, z_t, logsnr, inputs, guidance_w=target.w, precision=precision)
    return prediction_loss(
        raw, z_t, target.x_target.float(), logsnr, prediction=stage.diffusion.prediction, loss=loss
    )
