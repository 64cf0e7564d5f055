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

import torch

from imagen_video.metrics.base import MetricResult, MetricsConfig, register_metric
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

    def compute(
        self, videos: torch.Tensor, prompts: Sequence[str], reference: torch.Tensor | None
    ) -> MetricResult:
        """In-domain metrics of ``videos`` (N, 3, T, H, W) in [0, 1] for their canonical captions."""
        from imagen_video.world.analyze import attribute_accuracy
        from imagen_video.world.clip import clip_score, r_precision, video_features

        common: dict[str, Any] = {"model": self.model, "batch_size": self.batch_size}
        accuracy = attribute_accuracy(videos, list(prompts), layout="CTHW")
        values = {
            "world_attribute_accuracy": 100.0 * accuracy["overall"],
            "world_clip_score": clip_score(videos, prompts, **common),
            "world_clip_r_precision": 100.0
            * r_precision(videos, prompts, distractors=self.num_distractors, seed=self.seed, **common),
        }
        details: dict[str, Any] = {
            "world_clip": self.clip_dir or "shipped assets",
            "num_distractors": self.num_distractors,
            "distractor_seed": self.seed,
            "attribute_accuracy": {k: accuracy[k] for k in ("color", "shape", "motion")},
            "videos": videos.shape[0],
        }
        if reference is not None and reference.shape[0] >= 2 and videos.shape[0] >= 2:
            values["world_fd"] = frechet_distance(
                video_features(videos, **common), video_features(reference, **common)
            )
            details["reference_videos"] = reference.shape[0]
        return MetricResult(values, details)


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
