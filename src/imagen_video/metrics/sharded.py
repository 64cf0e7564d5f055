"""``imagen-video evaluate`` under torchrun: every rank extracts the features of its share of the
videos, rank 0 gathers them and computes each metric once (paper sec. 3; docs/scale.md).

The videos of every run and of the reference set are cut into chunks of ``batch_size`` videos, in
the order one process reads them (runs first, then the reference; sorted names within a directory).
These are the batches in which one process runs the feature networks, so every feature is
bit-identical to one process's. Rank ``r`` of ``W`` takes the contiguous chunks
``[r * K // W, (r + 1) * K // W)`` of the ``K`` chunks, reads only those files and returns the
features of each metric (:class:`~imagen_video.metrics.base.FeatureMetric`). Rank 0 gathers them
(``torch.distributed.gather_object``), concatenates each set's features in video order and computes
the metrics from them, so the report equals one process's (metric values to round-off, 1e-6).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from imagen_video.metrics.base import (
    FeatureMetric,
    Features,
    Metric,
    MetricResult,
    MetricsConfig,
    concat_features,
)
from imagen_video.metrics.evaluate import RunSource, build_report
from imagen_video.metrics.videos import list_video_entries, read_video, to_video_tensor

if TYPE_CHECKING:
    from imagen_video.cascade.sharded import Shard

Chunk = tuple[int, int, int]
"""(video set, first video, end): one feature batch."""


def can_shard(metrics: Sequence[Metric]) -> bool:
    """True when every metric has a feature step (the registered metrics all do)."""
    return all(isinstance(metric, FeatureMetric) for metric in metrics)


def video_sets(
    runs: Sequence[RunSource], prompts: Sequence[str], reference: str | Path | None
) -> list[list[Path]]:
    """The video entries of every run (one per prompt, checked) and then of the reference, if any."""
    sets = []
    for run in runs:
        entries = list_video_entries(run.directory)
        if len(entries) != len(prompts):
            raise ValueError(
                f"{run.directory} holds {len(entries)} videos but there are {len(prompts)} prompts; "
                "one video per prompt is expected, sorted names in prompt order"
            )
        sets.append(entries)
    if reference is not None:
        sets.append(list_video_entries(reference))
    return sets


def rank_chunks(sizes: Sequence[int], batch_size: int, rank: int, world_size: int) -> list[Chunk]:
    """This rank's contiguous share of the feature batches of video sets of ``sizes`` videos."""
    chunks = [
        (k, start, min(start + batch_size, size))
        for k, size in enumerate(sizes)
        for start in range(0, size, batch_size)
    ]
    return chunks[rank * len(chunks) // world_size : (rank + 1) * len(chunks) // world_size]


def extract_features(
    metrics: Sequence[FeatureMetric],
    sets: Sequence[Sequence[Path]],
    prompts: Sequence[str],
    batch_size: int,
    shard: Shard,
    *,
    with_reference: bool = False,
    progress: bool = True,
) -> list[list[Features]] | None:
    """Features ``[set][metric]`` of every video set (the last one is the reference set when
    ``with_reference``), on rank 0 (None on the other ranks); each rank reads and extracts only its
    chunks (:func:`rank_chunks`)."""
    from imagen_video.cascade.sharded import gather_to_main

    mine = rank_chunks([len(s) for s in sets], batch_size, shard.rank, shard.world_size)
    names = ["videos"] * (len(sets) - with_reference) + ["reference"] * with_reference
    out: dict[Chunk, tuple[tuple[int, ...], list[Features]]] = {}
    for chunk in tqdm(mine, desc="features", file=sys.stderr, disable=not (progress and shard.is_main)):
        k, start, stop = chunk
        entries = sets[k][start:stop]
        videos = to_video_tensor([read_video(e) for e in entries], [e.name for e in entries])
        texts = prompts[start:stop] if len(sets[k]) == len(prompts) else None
        out[chunk] = (
            tuple(videos.shape[1:]),
            [metric.features(videos, texts, names[k]) for metric in metrics],
        )
    gathered = gather_to_main(out, shard)
    if gathered is None:
        return None
    merged = {chunk: value for part in gathered for chunk, value in part.items()}
    result = []
    for k, entries in enumerate(sets):
        parts = [merged[c] for c in sorted(c for c in merged if c[0] == k)]
        shapes = sorted({shape for shape, _ in parts})
        if len(shapes) > 1:  # one process reads a directory only when all its videos share a shape
            raise ValueError(
                f"the videos of {entries[0].parent} differ in shape (C, T, H, W): {shapes}; "
                "all must share one"
            )
        result.append([concat_features([feats[i] for _, feats in parts]) for i in range(len(metrics))])
    return result


def evaluate_sharded(
    runs: Sequence[RunSource],
    prompts: Sequence[str],
    config: MetricsConfig,
    metrics: Sequence[FeatureMetric],
    shard: Shard,
    *,
    reference: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any] | None:
    """The report of :func:`imagen_video.metrics.evaluate.evaluate_runs` on rank 0 (None elsewhere),
    with the feature extraction shared by the ranks (see the module docstring)."""
    if not runs:
        raise ValueError("evaluate needs at least one run of videos")
    sets = video_sets(runs, prompts, reference)
    features = extract_features(
        metrics,
        sets,
        prompts,
        config.batch_size,
        shard,
        with_reference=reference is not None,
        progress=progress,
    )
    if features is None:
        return None
    ref = features[len(runs)] if reference is not None else None
    index = {id(metric): i for i, metric in enumerate(metrics)}

    def row(metric: Metric, k: int | None) -> MetricResult:
        i = index[id(metric)]
        if k is None:
            return metric.compute_from_features(ref[i], prompts, None)
        return metric.compute_from_features(features[k][i], prompts, None if ref is None else ref[i])

    count = None if reference is None else len(sets[-1])
    return build_report(runs, prompts, config, metrics, count, row, progress=progress)
