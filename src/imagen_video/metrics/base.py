"""The metric interface: one protocol for the standard metrics and the synthetic world's metrics.

A metric maps generated videos (N, C, T, H, W) float in [0, 1], their prompts (one per video) and an
optional reference video set to a :class:`MetricResult`. Metrics are built by name from a
:class:`MetricsConfig` through a registry, so in-domain metrics plug in with :func:`register_metric`
(see ``imagen_video.world.metric``). The built-in metrics are also :class:`FeatureMetric`: a per-video
feature step and a compute step, so ``imagen-video evaluate`` under torchrun extracts the features on
every rank and computes once (docs/scale.md). Paper sec. 3 and Table 1; docs/math.md sec. 13.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from imagen_video.metrics.i3d import I3D_FEATURE_LAYERS, I3DFeatureLayer
from imagen_video.serialization import JsonConfig


@dataclass(frozen=True)
class MetricsConfig(JsonConfig):
    """What ``imagen-video evaluate`` measures and with which networks (all weights are local files)."""

    metrics: tuple[str, ...] = ("clip", "rprec")
    """Metric names, from :func:`available_metrics` (e.g. fid, fvd, clip, rprec, world)."""
    inception_weights: str | None = None
    """TorchScript Inception for frame FID (e.g. StyleGAN2-ADA's ``inception-2015-12-05.pt``)."""
    i3d_weights: str | None = None
    """I3D for FVD: StyleGAN-V's ``i3d_torchscript.pt`` or an InceptionI3d state dict."""
    i3d_features: I3DFeatureLayer = "logits"
    """State-dict I3D only: "logits" (400-d, the reference FVD embedding) or "pool" (1024-d)."""
    fvd_frames: int | None = None
    """Use the first N frames of every clip for FVD (None: all frames)."""
    clip_model: str | None = None
    """CLIP through transformers: a local directory or a hub name already in the HF cache."""
    num_distractors: int = 99
    """CLIP R-Precision: distractor prompts per video, drawn from the other evaluation prompts."""
    distractor_seed: int = 0
    """Seed of the distractor draw (numpy Generator)."""
    world_clip: str | None = None
    """Directory of the synthetic world's in-domain CLIP (None: the weights shipped with the package)."""
    batch_size: int = 8
    """Videos per feature-network batch."""
    device: str = "cpu"
    """Torch device for the feature networks."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in _REGISTRY]
        if unknown or not self.metrics:
            raise ValueError(f"unknown metric(s) {unknown or '(none given)'}; allowed: {available_metrics()}")
        if self.i3d_features not in I3D_FEATURE_LAYERS:
            raise ValueError(f"i3d_features must be one of {I3D_FEATURE_LAYERS}, got {self.i3d_features!r}")
        if self.fvd_frames is not None and self.fvd_frames < 1:
            raise ValueError(f"fvd_frames must be a positive number of frames or None, got {self.fvd_frames}")
        if self.num_distractors < 1:
            raise ValueError(f"num_distractors must be >= 1, got {self.num_distractors}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class MetricResult:
    """``values`` are the numbers of the results table; ``details`` say how they were measured."""

    values: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """A video metric. ``requires_reference``: needs the reference set (FID, FVD)."""

    name: str
    requires_reference: bool

    def compute(
        self, videos: torch.Tensor, prompts: Sequence[str], reference: torch.Tensor | None
    ) -> MetricResult:
        """videos (N, C, T, H, W) in [0, 1], one prompt per video; reference (M, C, T', H', W') or None."""
        ...


Features = dict[str, torch.Tensor]
"""Per-video features of one metric: every tensor has one row per video (dim 0), on the CPU."""


@runtime_checkable
class FeatureMetric(Metric, Protocol):
    """A metric split into a per-video feature step and a compute step, so the features of a video set
    can be extracted in shards (e.g. by the ranks of a torchrun job) and concatenated in video order.
    ``compute(videos, prompts, reference)`` equals
    ``compute_from_features(features(videos, prompts), prompts, features(reference, None, "reference"))``.
    """

    def features(self, videos: torch.Tensor, prompts: Sequence[str] | None, name: str = "videos") -> Features:
        """Features of videos (N, C, T, H, W) in [0, 1], one row per video; ``prompts`` (one per video)
        may be None (e.g. a reference set); ``name`` names the set in error messages."""
        ...

    def compute_from_features(
        self, features: Features, prompts: Sequence[str], reference: Features | None
    ) -> MetricResult:
        """The metric from the features of all videos (in prompt order) and of the reference set."""
        ...


def video_sizes(videos: torch.Tensor) -> torch.Tensor:
    """(T, H, W) of every video (N, C, T, H, W) as int64 (N, 3): the shape a compute step reports."""
    return torch.tensor(videos.shape[2:5], dtype=torch.int64).expand(videos.shape[0], 3).clone()


def concat_features(parts: Sequence[Features]) -> Features:
    """Concatenate the features of consecutive shards of one video set (dim 0, video order)."""
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


class ReferenceFeatures:
    """The features of the last reference set seen, kept while that tensor lives, so the runs of one
    evaluation extract the reference once."""

    def __init__(self) -> None:
        self._key: weakref.ref[torch.Tensor] | None = None
        self._features: Features | None = None

    def get(self, reference: torch.Tensor, extract: Callable[[torch.Tensor], Features]) -> Features:
        """``extract(reference)``, or the stored result when ``reference`` is the tensor seen last."""
        if self._key is None or self._key() is not reference or self._features is None:
            self._features = extract(reference)
            self._key = weakref.ref(reference)
        return self._features


MetricFactory = Callable[[MetricsConfig], Metric]
_REGISTRY: dict[str, MetricFactory] = {}


def register_metric(name: str, factory: MetricFactory) -> None:
    """Register ``factory(config) -> Metric`` under ``name``; names sharing a factory build it once."""
    if not name or "," in name:
        raise ValueError(f"metric name must be non-empty and contain no comma, got {name!r}")
    _REGISTRY[name] = factory


def available_metrics() -> list[str]:
    """The registered metric names, sorted."""
    return sorted(_REGISTRY)


def build_metrics(config: MetricsConfig) -> list[Metric]:
    """Build the metrics of ``config.metrics`` in order; a factory registered under several
    requested names (e.g. CLIP score and R-Precision, which share one CLIP pass) is built once."""
    built: dict[MetricFactory, Metric] = {}
    for name in config.metrics:
        factory = _REGISTRY[name]
        if factory not in built:
            built[factory] = factory(config)
    return list(built.values())
