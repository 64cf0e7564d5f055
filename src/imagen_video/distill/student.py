"""Students and the stage configs of distilled models (paper sec. 2.7; docs/math.md secs. 11-12).

A guidance student is the teacher's U-Net with ``use_guidance_embedding=True``: every teacher weight is
copied and the new w-embedding's last layer is zero-initialised by the U-Net, so the student starts
equal to the teacher's conditional model at every w. A progressive student is an exact copy of its
teacher (Salimans & Ho 2022). Distilled stage folders default to the stochastic N-step sampler
(sec. 12) with the stage's guidance schedule passed to the network as ``guidance_w``, over the same
time range ``[0, t_start]`` as the sampler they were distilled from.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from imagen_video.cascade.config import StageConfig
from imagen_video.diffusion.config import GuidanceConfig, distilled_sampler
from imagen_video.models import VideoUNet

GUIDANCE_EMBED_PREFIX = "guidance_embed."


def guidance_student_config(stage: StageConfig) -> StageConfig:
    """``stage`` with a w-embedding in its U-Net (paper sec. 2.7 stage 1; docs/math.md sec. 11).

    Sampler, guidance schedule and thresholding are kept: the student replaces the guided pair of
    forwards by one forward with ``guidance_w`` at the same steps.
    """
    if stage.unet.use_guidance_embedding:
        raise ValueError(f"stage {stage.name!r} is already guidance-distilled (use_guidance_embedding=True)")
    return stage.replace(unet=stage.unet.replace(use_guidance_embedding=True))


def make_guidance_student(
    teacher: nn.Module, stage: StageConfig, *, generator: torch.Generator | None = None
) -> tuple[StageConfig, VideoUNet]:
    """A trainable w-conditioned copy of ``teacher`` (the stage's VideoUNet) and its stage config.

    All teacher weights are copied; only the new ``guidance_embed.*`` parameters are initialised
    (``generator`` makes that reproducible; the last layer is zero, so student == teacher at start).
    """
    config = guidance_student_config(stage)
    student = VideoUNet(config.unet, generator=generator)
    result = student.load_state_dict(teacher.state_dict(), strict=False)
    foreign = [k for k in result.missing_keys if not k.startswith(GUIDANCE_EMBED_PREFIX)]
    if foreign or result.unexpected_keys:
        raise ValueError(
            f"stage {stage.name!r}: the teacher's weights do not fit the student (missing {foreign[:4]}, "
            f"unexpected {result.unexpected_keys[:4]})"
        )
    return config, student.to(next(teacher.parameters()).device).train()


def trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy in train mode with gradients (a progressive student initialised from its teacher)."""
    return copy.deepcopy(model).train().requires_grad_(True)


def rescale_guidance(guidance: GuidanceConfig, from_steps: int, to_steps: int) -> GuidanceConfig:
    """Oscillating guidance's K initial high-w steps scaled from a ``from_steps`` to a ``to_steps``
    sampler (paper sec. 2.6.2 counts K in sampler steps): ``K' = round(K to / from)``, at least 1
    when K > 0. Constant guidance is returned unchanged."""
    if guidance.mode != "oscillating" or guidance.constant_steps == 0:
        return guidance
    scaled = math.floor(guidance.constant_steps * to_steps / from_steps + 0.5)
    return guidance.replace(constant_steps=max(1, scaled))


def distilled_stage_config(stage: StageConfig, student_steps: int, source_steps: int) -> StageConfig:
    """Stage config of an ``student_steps``-step distilled model: stochastic sampler (sec. 2.7, math
    sec. 12) over the stage's time range (its ``sampler.t_start``, which the rounds distilled) from
    the same start frames (``sampler.start_from``), and the stage's guidance schedule rescaled from
    the source's ``source_steps`` steps."""
    if not stage.unet.use_guidance_embedding:
        raise ValueError(f"stage {stage.name!r}: a distilled stage must be guidance-conditioned")
    return stage.replace(
        sampler=distilled_sampler(student_steps, stage.sampler.t_start).replace(
            start_from=stage.sampler.start_from
        ),
        guidance=rescale_guidance(stage.guidance, source_steps, student_steps),
    )
