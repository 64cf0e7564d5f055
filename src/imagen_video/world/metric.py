"""The synthetic world's in-domain evaluators as one :class:`~imagen_video.metrics.Metric`, ``world``.

The in-domain version of the paper's Table 1 (sec. 3.4), see docs/world.md. :func:`register_world_metric`
registers it under the name ``world`` (``imagen-video evaluate`` does), so :mod:`imagen_video.metrics`
never imports the world. Values, on the 0-100 scale of Table 1:

- ``world_attribute_accuracy``: clips whose recognised color, shape and motion all match the prompt
  (``imagen_video.world.analyze.attribute_accuracy``; prompts must be canonical world captions);
- ``world_clip_score`` and ``world_clip_r_precision``: the in-domain CLIP's frame-averaged score and
  top-1 R-Precision against ``num_distractors`` other tier-1 captions (``imagen_video.world.clip``);
- ``world_fd``: the Fréchet distance (float64) of in-domain CLIP video features between the videos
  and the reference set, when a reference with at least 2 videos is given (an in-domain FVD).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from imagen_video.metrics.base import (
    Features,
    MetricResult,
    MetricsConfig,
    ReferenceFeatures,
    register_metric,
    video_sizes,
)
from imagen_video.metrics.frechet import frechet_distance


class WorldMetrics:
    """Attribute accuracy, in-domain CLIP score / R-Precision and in-domain FD of world clips."""

    name = "world"
    requires_reference = False

    def __init__(
        self,
        *,
        clip_dir: str | None = None,
        num_distractors: int = 99,
        seed: int = 0,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
    ) -> None:
        from imagen_video.world.clip import load_world_clip

        self.model = load_world_clip(clip_dir, device)
        self.clip_dir = clip_dir
        self.num_distractors, self.seed, self.batch_size = num_distractors, seed, batch_size
        self._reference = ReferenceFeatures()

    def features(self, videos: torch.Tensor, prompts: Sequence[str] | None, name: str = "videos") -> Features:
        """``frames``: in-domain CLIP frame embeddings (N, T, D) in batches of ``batch_size`` videos;
        ``attributes``: the recognised (color, shape, motion) of each clip as indices into the world's
        lists (-1: not recognised), int64 (N, 3); ``size``: (N, 3) = (T, H, W)."""
        from imagen_video.world.analyze import analyze_clip, as_clip_list
        from imagen_video.world.clip import embed_videos

        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(f"world: {name} must be (N, 3, T, H, W), got {tuple(videos.shape)}")
        found = [analyze_clip(clip, "THWC") for clip in as_clip_list(videos, "CTHW")]
        attributes = torch.tensor(
            [_attribute_indices(a.color, a.shape, a.motion) for a in found], dtype=torch.int64
        )
        return {
            "frames": embed_videos(videos, model=self.model, batch_size=self.batch_size).cpu(),
            "attributes": attributes.reshape(len(found), 3),
            "size": video_sizes(videos),
        }

    def compute_from_features(
        self, features: Features, prompts: Sequence[str], reference: Features | None
    ) -> MetricResult:
        """In-domain metrics from :meth:`features` of the videos (and of the reference, for ``world_fd``)."""
        from imagen_video.world.clip import clip_score_from_frames, r_precision_from_frames

        frames = features["frames"].to(self.model.device)  # (N, T, D)
        accuracy = _attribute_accuracy(features["attributes"], prompts)
        values = {
            "world_attribute_accuracy": 100.0 * accuracy["overall"],
            "world_clip_score": clip_score_from_frames(frames, prompts, self.model),
            "world_clip_r_precision": 100.0
            * r_precision_from_frames(
                frames, prompts, self.model, distractors=self.num_distractors, seed=self.seed
            ),
        }
        details: dict[str, Any] = {
            "world_clip": self.clip_dir or "shipped assets",
            "num_distractors": self.num_distractors,
            "distractor_seed": self.seed,
            "attribute_accuracy": {k: accuracy[k] for k in ("color", "shape", "motion")},
            "videos": frames.shape[0],
        }
        if reference is not None and reference["frames"].shape[0] >= 2 and frames.shape[0] >= 2:
            values["world_fd"] = frechet_distance(
                _video_features(frames), _video_features(reference["frames"].to(self.model.device))
            )
            details["reference_videos"] = reference["frames"].shape[0]
        return MetricResult(values, details)

    def compute(
        self, videos: torch.Tensor, prompts: Sequence[str], reference: torch.Tensor | None
    ) -> MetricResult:
        """In-domain metrics of ``videos`` (N, 3, T, H, W) in [0, 1] for their canonical captions; the
        reference features are kept across calls with the same reference tensor."""
        ref = None
        if reference is not None:
            ref = self._reference.get(reference, lambda r: self.features(r, None, "reference"))
        return self.compute_from_features(self.features(videos, prompts), prompts, ref)


def _attribute_indices(color: str | None, shape: str | None, motion: str | None) -> list[int]:
    from imagen_video.world.spec import COLORS, MOTIONS, SHAPES

    names = (list(COLORS), SHAPES, MOTIONS)
    return [
        -1 if value is None else list(pool).index(value)
        for value, pool in zip((color, shape, motion), names, strict=True)
    ]


def _attribute_accuracy(found: torch.Tensor, prompts: Sequence[str]) -> dict[str, float]:
    """Attribute accuracy (as ``imagen_video.world.analyze.attribute_accuracy``) from the recognised
    attribute indices (N, 3) of :meth:`WorldMetrics.features` and the prompts' canonical captions."""
    from imagen_video.world.spec import parse_caption

    if len(prompts) != found.shape[0] or not len(prompts):
        raise ValueError(
            "need one prompt per clip and at least one clip; "
            f"got {found.shape[0]} clips, {len(prompts)} prompts"
        )
    targets = [parse_caption(p) for p in prompts]
    wanted = torch.tensor([_attribute_indices(c.color, c.shape, c.motion) for c in targets]).reshape(-1, 3)
    right = (found == wanted).numpy()  # (N, 3) bool: color, shape, motion
    return {
        "overall": float(right.all(axis=1).mean()),
        "color": float(np.mean(right[:, 0])),
        "shape": float(np.mean(right[:, 1])),
        "motion": float(np.mean(right[:, 2])),
    }


def _video_features(frames: torch.Tensor) -> np.ndarray:
    """Video embeddings for the in-domain FD: the mean of the frame embeddings, float64 (N, D)
    (``imagen_video.world.clip.video_features``)."""
    return frames.mean(dim=1).double().cpu().numpy()


def build_world_metrics(config: MetricsConfig) -> WorldMetrics:
    """Registry factory for ``world``."""
    return WorldMetrics(
        clip_dir=config.world_clip,
        num_distractors=config.num_distractors,
        seed=config.distractor_seed,
        batch_size=config.batch_size,
        device=config.device,
    )


def register_world_metric() -> None:
    """Make ``world`` a metric name of :class:`~imagen_video.metrics.MetricsConfig` (idempotent)."""
    register_metric("world", build_world_metrics)
