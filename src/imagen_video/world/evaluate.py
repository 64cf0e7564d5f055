"""Both in-domain evaluators in one call, and the ground-truth row on real rendered clips (docs/world.md).

:func:`evaluate_world` gives the world's version of the paper's Table 1 (sec. 3.4): attribute
accuracy (analyzer), in-domain CLIP score and CLIP R-Precision, and the Fréchet distance (float64,
``imagen_video.metrics.frechet_distance``) of in-domain CLIP video features between the videos and
rendered reference clips of the same prompts (an in-domain FVD). :func:`ground_truth_row` applies it
to freshly rendered clips, the paper's "ground truth" row, so generated numbers have a reference;
its FD compares two independent renderings of the prompts (the FD noise floor at that sample size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imagen_video.world.analyze import as_clip_list, attribute_accuracy, motion_step_cv
from imagen_video.world.clip import (
    WorldClip,
    clip_score_from_frames,
    embed_videos,
    load_world_clip,
    r_precision_from_frames,
)
from imagen_video.world.render import render_batch
from imagen_video.world.spec import parse_caption


def render_prompts(prompts: Sequence[str], frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Render one clip per canonical caption: uint8 (B, T, H, W, 3) (deterministic per seed)."""
    return render_batch(
        [parse_caption(p) for p in prompts], frames=frames, height=height, width=width, seed=seed
    )


def evaluate_world(
    videos: Any,
    prompts: Sequence[str],
    *,
    reference: Any = None,
    model: WorldClip | None = None,
    distractors: int = 99,
    seed: int = 0,
    layout: str | None = None,
) -> dict[str, Any]:
    """Evaluate clips against their canonical captions with both in-domain evaluators.

    ``videos``: (B, C, T, H, W) / (B, T, H, W, 3) batch or a sequence of clips, float in [0, 1] or
    uint8. ``reference``: clips for the FD (default: the prompts rendered with ``seed + 1`` at the
    first video's size). Returns ``attribute_accuracy`` (all three attributes right), ``clip_score``
    (0-100), ``r_precision`` (0-1, ``distractors`` drawn with ``seed``), ``fd`` (``None`` with fewer
    than 2 videos), ``motion_step_cv`` (unevenness of the motion, :func:`motion_step_cv`; ``None``
    without moving prompts), plus ``attributes`` (per-attribute and per-prompt accuracy) and
    ``num_videos``.
    """
    from imagen_video.metrics.frechet import frechet_distance

    clips = as_clip_list(videos, layout)  # each float64 (T, H, W, 3)
    model = load_world_clip() if model is None else model
    accuracy = attribute_accuracy(clips, prompts, layout="THWC")
    frames = embed_videos(clips, model=model)  # (B, T, D)
    fd = None
    if len(clips) >= 2:
        if reference is None:
            count, height, width, _ = clips[0].shape
            reference = render_prompts(prompts, count, height, width, seed=seed + 1)
        reference_features = embed_videos(reference, model=model).mean(dim=1)  # (B_ref, D)
        fd = frechet_distance(frames.mean(dim=1).double(), reference_features.double())
    return {
        "attribute_accuracy": accuracy["overall"],
        "clip_score": clip_score_from_frames(frames, prompts, model),
        "r_precision": r_precision_from_frames(frames, prompts, model, distractors=distractors, seed=seed),
        "fd": fd,
        "motion_step_cv": motion_step_cv(clips, prompts, layout="THWC"),
        "attributes": accuracy,
        "num_videos": len(clips),
    }


def ground_truth_row(
    prompts: Sequence[str],
    frames: int = 16,
    height: int = 24,
    width: int = 40,
    seed: int = 0,
    *,
    model: WorldClip | None = None,
    distractors: int = 99,
) -> dict[str, Any]:
    """The paper's "ground truth" row (Table 1) in this domain: :func:`evaluate_world` of the prompts
    rendered with ``seed``; the FD reference is a second rendering with ``seed + 1``."""
    videos = render_prompts(prompts, frames, height, width, seed=seed)
    return evaluate_world(videos, prompts, model=model, distractors=distractors, seed=seed, layout="THWC")
