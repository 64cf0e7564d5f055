"""Evaluation metrics of the paper (sec. 3, Table 1): frame FID, FVD, CLIP score, CLIP R-Precision.

All feature networks come from local files (nothing is downloaded); the Fréchet distance is computed
in float64. Metrics share one interface (:class:`Metric`) and a registry, so the synthetic world's
in-domain metrics plug in under the name ``world`` once :mod:`imagen_video.world.metric` is imported.
Heavy optional dependencies (torchmetrics, transformers) are imported only when a metric is built.
"""

from __future__ import annotations

from imagen_video.metrics.base import (
    FeatureMetric,
    Features,
    Metric,
    MetricResult,
    MetricsConfig,
    available_metrics,
    build_metrics,
    register_metric,
)
from imagen_video.metrics.frechet import feature_stats, frechet_distance, frechet_distance_from_stats
from imagen_video.metrics.networks import FeatureNetwork, file_sha256, load_feature_network


def _build_fid(config: MetricsConfig) -> Metric:
    from imagen_video.metrics.fid import build_fid

    return build_fid(config)


def _build_fvd(config: MetricsConfig) -> Metric:
    from imagen_video.metrics.fvd import build_fvd

    return build_fvd(config)


def _build_clip(config: MetricsConfig) -> Metric:
    from imagen_video.metrics.clip import build_clip_metrics

    return build_clip_metrics(config)


register_metric("fid", _build_fid)
register_metric("fvd", _build_fvd)
register_metric("clip", _build_clip)
register_metric("rprec", _build_clip)

__all__ = [
    "FeatureMetric",
    "FeatureNetwork",
    "Features",
    "Metric",
    "MetricResult",
    "MetricsConfig",
    "available_metrics",
    "build_metrics",
    "feature_stats",
    "file_sha256",
    "frechet_distance",
    "frechet_distance_from_stats",
    "load_feature_network",
    "register_metric",
]
