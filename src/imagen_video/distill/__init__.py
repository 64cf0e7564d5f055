"""Distillation for fast sampling (paper secs. 2.7, 3.4; docs/math.md secs. 10-12).

Two stages (Meng et al. 2022):

1. guidance distillation: a w-conditioned copy of the teacher learns, in one forward pass, the
   teacher's guided combination ``(1 + w) x(z, c) - w x(z, null)`` for ``w ~ U[w_min, w_max]``;
2. progressive distillation (Salimans & Ho 2022): rounds that halve the DDIM step count
   (e.g. 256 -> 8 for the base, 128 -> 8 for SR stages), each student initialised from its teacher.

Distilled stage folders default to the stochastic N-step sampler (``imagen_video.samplers``,
"stochastic") with the stage's guidance passed as ``guidance_w`` (one forward per step).

- :class:`DistillConfig`, :func:`distillation_plan`, :func:`paper_distill_config`,
  :func:`tiny_distill_config`;
- :func:`distill_stage` (resumable loop) and :class:`DistillResult`;
- objectives: :func:`prepare_inputs`, :func:`guidance_distillation_loss`, :func:`progressive_target`,
  :func:`progressive_distillation_loss`;
- students: :func:`make_guidance_student`, :func:`distilled_stage_config`, :func:`rescale_guidance`;
- cascades: :func:`load_cascade_stage`, :func:`assemble_distilled_cascade`, :func:`mixed_cascade`.
"""

from imagen_video.distill.cascade_io import (
    assemble_distilled_cascade,
    load_cascade_stage,
    mixed_cascade,
    stage_folder,
)
from imagen_video.distill.config import (
    DistillConfig,
    Round,
    distillation_plan,
    paper_distill_config,
    tiny_distill_config,
)
from imagen_video.distill.loop import DistillResult, distill_stage
from imagen_video.distill.objectives import (
    ProgressiveTarget,
    StageInputs,
    guidance_distillation_loss,
    guided_teacher_x,
    network_raw,
    prepare_inputs,
    progressive_distillation_loss,
    progressive_target,
    sample_w,
)
from imagen_video.distill.records import read_distill_log
from imagen_video.distill.student import (
    distilled_stage_config,
    guidance_student_config,
    make_guidance_student,
    rescale_guidance,
    trainable_copy,
)

__all__ = [
    "DistillConfig",
    "DistillResult",
    "ProgressiveTarget",
    "Round",
    "StageInputs",
    "assemble_distilled_cascade",
    "distill_stage",
    "distillation_plan",
    "distilled_stage_config",
    "guidance_distillation_loss",
    "guidance_student_config",
    "guided_teacher_x",
    "load_cascade_stage",
    "make_guidance_student",
    "mixed_cascade",
    "network_raw",
    "paper_distill_config",
    "prepare_inputs",
    "progressive_distillation_loss",
    "progressive_target",
    "read_distill_log",
    "rescale_guidance",
    "sample_w",
    "stage_folder",
    "tiny_distill_config",
    "trainable_copy",
]
