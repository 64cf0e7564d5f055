"""The evaluation driver behind ``imagen-video evaluate``: runs of videos in, a results table out.

A *run* is one set of videos, one per prompt (a sampling seed of the cascade, or a directory of videos
made elsewhere). Every requested metric is computed per run; across runs the table reports the mean
and standard error, as the paper's Table 1 does over four runs (sec. 3.4). When a reference set with
one video per prompt is given, the prompt-based metrics are also computed on it: the ground-truth row.
Results are written atomically as ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from imagen_video.metrics.base import Metric, MetricResult, MetricsConfig, build_metrics
from imagen_video.metrics.videos import load_video_dir, save_video_npz
from imagen_video.serialization import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from imagen_video.cascade.sharded import Shard

LABELS = {
    "clip_score": "CLIP score",
    "clip_r_precision": "CLIP R-Precision",
    "fid": "FID (frames)",
    "fvd": "FVD",
    "sampling_seconds": "sampling time (s)",
}


@dataclass
class VideoRun:
    """One run: ``videos`` (N, C, T, H, W) float in [0, 1], one per prompt, and how it was made."""

    name: str
    videos: torch.Tensor
    details: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)  # e.g. sampling time, shown in the table


@dataclass
class RunSource:
    """One run as a directory of videos (one per prompt, in sorted name order) and how it was made."""

    name: str
    directory: Path
    details: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def load(self, expected: int) -> VideoRun:
        """Read the run's ``expected`` videos into a :class:`VideoRun`."""
        return VideoRun(
            self.name, load_video_dir(self.directory, expected=expected), self.details, self.values
        )


RowFn = Callable[[Metric, "int | None"], MetricResult]
"""``row(metric, k)``: the metric's result on run ``k``, or on the reference set when ``k`` is None."""


def _compute_row(
    metrics: Sequence[Metric], run: int | None, row: RowFn, bar: Any, label: str
) -> tuple[dict[str, float], dict[str, Any]]:
    values: dict[str, float] = {}
    details: dict[str, Any] = {}
    for metric in metrics:
        bar.set_postfix_str(f"{label}: {metric.name}")
        result = row(metric, run)
        values.update(result.values)
        details[metric.name] = result.details
        bar.update()
    return values, details


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Mean and standard error (std with ddof=1 over sqrt(n); None for one run) of every value."""
    keys = list(dict.fromkeys(k for row in rows for k in row["values"]))
    summary: dict[str, dict[str, float | int | None]] = {}
    for key in keys:
        xs = [float(row["values"][key]) for row in rows if key in row["values"]]
        mean = sum(xs) / len(xs)
        stderr = (
            math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) if len(xs) > 1 else None
        )
        summary[key] = {"mean": mean, "stderr": stderr, "n": len(xs)}
    return summary


def evaluate_runs(
    runs: Sequence[VideoRun],
    prompts: Sequence[str],
    config: MetricsConfig,
    *,
    reference: torch.Tensor | None = None,
    metrics: Sequence[Metric] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute ``config.metrics`` on every run (and the ground-truth row) and return the report dict.

    ``metrics`` overrides the metrics built from ``config`` (e.g. custom :class:`Metric` objects).
    """
    if not runs:
        raise ValueError("evaluate needs at least one run of videos")
    for run in runs:
        if run.videos.shape[0] != len(prompts):
            raise ValueError(f"run {run.name!r} has {run.videos.shape[0]} videos for {len(prompts)} prompts")
    metrics = list(build_metrics(config) if metrics is None else metrics)

    def row(metric: Metric, k: int | None) -> MetricResult:
        if k is None:
            return metric.compute(reference, prompts, None)
        return metric.compute(runs[k].videos, prompts, reference)

    count = None if reference is None else reference.shape[0]
    return build_report(runs, prompts, config, metrics, count, row, progress=progress)


def check_reference_given(metrics: Sequence[Metric], given: bool) -> None:
    """Raise ValueError naming the metrics that need a reference set (FID, FVD) when none is given."""
    needing = [m.name for m in metrics if m.requires_reference]
    if needing and not given:
        raise ValueError(f"metric(s) {needing} need a reference video set (--reference DIR)")


def build_report(
    runs: Sequence[VideoRun | RunSource],
    prompts: Sequence[str],
    config: MetricsConfig,
    metrics: Sequence[Metric],
    reference_count: int | None,
    row: RowFn,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """The report dict of :func:`evaluate_runs` from ``row(metric, k)`` for every run ``k`` and, when
    the reference (``reference_count`` videos; None: no reference) has one video per prompt, the
    ground-truth row ``row(metric, None)`` of the metrics that need no reference."""
    check_reference_given(metrics, reference_count is not None)
    notes: list[str] = []
    gt_metrics = [m for m in metrics if not m.requires_reference]
    if reference_count is not None and gt_metrics and reference_count != len(prompts):
        notes.append(
            f"no ground-truth row: the reference has {reference_count} videos for {len(prompts)} prompts"
        )
        gt_metrics = []
    if reference_count is None:
        gt_metrics = []
    total = len(runs) * len(metrics) + len(gt_metrics)
    rows = []
    with tqdm(total=total, desc="evaluate", file=sys.stderr, disable=not progress) as bar:
        for k, run in enumerate(runs):
            values, details = _compute_row(metrics, k, row, bar, run.name)
            rows.append(
                {"name": run.name, "values": {**run.values, **values}, "details": {**run.details, **details}}
            )
        ground_truth = None
        if gt_metrics:
            values, details = _compute_row(gt_metrics, None, row, bar, "ground truth")
            ground_truth = {"name": "ground truth", "values": values, "details": details}
    return {
        "num_prompts": len(prompts),
        "config": config.to_dict(),
        "runs": rows,
        "summary": summarize(rows),
        "ground_truth": ground_truth,
        "notes": notes,
    }


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (rows = runs, mean ± s.e., ground truth) plus how it was measured."""
    keys = list(report["summary"])
    header = "| run | " + " | ".join(LABELS.get(k, k) for k in keys) + " |"
    lines = ["# Evaluation results", "", header, "|" + "---|" * (len(keys) + 1)]
    for row in report["runs"]:
        lines.append(f"| {row['name']} | " + " | ".join(_fmt(row["values"].get(k)) for k in keys) + " |")
    if len(report["runs"]) > 1:
        cells = []
        for k in keys:
            s = report["summary"][k]
            cells.append(_fmt(s["mean"]) + ("" if s["stderr"] is None else f" ± {_fmt(s['stderr'])}"))
        lines.append("| mean ± s.e. | " + " | ".join(cells) + " |")
    if report.get("ground_truth"):
        gt = report["ground_truth"]["values"]
        lines.append("| ground truth | " + " | ".join(_fmt(gt.get(k)) for k in keys) + " |")
    lines += ["", f"{report['num_prompts']} prompts; metrics: {', '.join(report['config']['metrics'])}.", ""]
    lines += ["## How each number was measured", ""]
    for name, details in report["runs"][0]["details"].items():
        lines.append(f"- **{name}**: `{json.dumps(details, sort_keys=True)}`")
    lines += [f"- note: {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Atomically write ``results.json`` and ``results.md`` to ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    return (
        atomic_write_json(out_dir / "results.json", report),
        atomic_write_text(out_dir / "results.md", render_markdown(report)),
    )


def generate_runs(
    model_dir: str | os.PathLike[str],
    prompts: Sequence[str],
    seeds: Sequence[int],
    cache_dir: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = True,
    shard: Shard | None = None,
) -> list[VideoRun]:
    """:func:`sample_runs`, then rank 0 reads every run's videos (the other ranks get an empty list)."""
    sources = sample_runs(
        model_dir,
        prompts,
        seeds,
        cache_dir,
        batch_size=batch_size,
        device=device,
        progress=progress,
        shard=shard,
    )
    if shard is not None and not shard.is_main:
        return []
    return [source.load(len(prompts)) for source in sources]


def sample_runs(
    model_dir: str | os.PathLike[str],
    prompts: Sequence[str],
    seeds: Sequence[int],
    cache_dir: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = True,
    shard: Shard | None = None,
) -> list[RunSource]:
    """Sample one video per prompt and seed with the cascade in ``model_dir``, cached for resumption.

    Videos are stored as ``cache_dir/seed-<s>/<index>.npz`` (uint8, see :func:`save_video_npz`); a
    batch whose files all exist is not sampled again. Batch ``[i, i + batch_size)`` of seed ``s`` uses
    ``torch.Generator(device).manual_seed(s * 1_000_003 + i)``, so a resumed run samples what the
    uninterrupted run would have. ``sampling_seconds`` is reported when no batch came from the cache.
    Under torchrun (``shard``, see :mod:`imagen_video.cascade.sharded`) the ranks claim the batches
    from the job's store and ``sampling_seconds`` sums the ranks' seconds; every rank gets the runs'
    directories once every batch is written.
    """
    from imagen_video.cascade import Cascade
    from imagen_video.cascade.sharded import JobProgress, Shard, from_main, sum_over_ranks

    shard = shard or Shard(0, 1, 0, torch.device(device))
    key = {"model": str(Path(model_dir).resolve()), "prompts": list(prompts), "batch_size": batch_size}
    todo: list[tuple[int, int, list[Path]]] = []
    for seed in seeds:
        seed_dir = Path(cache_dir) / f"seed-{seed}"
        _check_cache_key(seed_dir, {**key, "seed": seed})
        for start in range(0, len(prompts), batch_size):
            paths = [seed_dir / f"{i:05d}.npz" for i in range(start, min(start + batch_size, len(prompts)))]
            if not all(p.is_file() for p in paths):
                todo.append((seed, start, paths))
    todo = from_main(todo, shard)  # what rank 0 found, before any rank writes
    batches = math.ceil(len(prompts) / batch_size)
    cached = {seed for seed in seeds if sum(t[0] == seed for t in todo) < batches}
    total = len(prompts) * len(seeds)
    bar = JobProgress(shard, total, total - sum(len(t[2]) for t in todo), enabled=progress, desc="generate")
    cascade, elapsed = None, dict.fromkeys(seeds, 0.0)
    for k in shard.claim(len(todo)):
        seed, start, paths = todo[k]
        cascade = cascade or Cascade.from_pretrained(model_dir, device=shard.device)
        generator = torch.Generator(shard.device).manual_seed(seed * 1_000_003 + start)
        begin = time.perf_counter()
        chunk = list(prompts[start : start + len(paths)])
        result = cascade.generate(chunk, generator=generator, progress=False)
        elapsed[seed] += time.perf_counter() - begin
        for path, video in zip(paths, result.video, strict=True):  # video (C, T, H, W)
            save_video_npz(path, video, result.fps)
        bar.finished_batch(len(paths))
    bar.wait_for_all()
    seconds = sum_over_ranks([elapsed[seed] for seed in seeds], shard)
    return [
        RunSource(
            f"seed {seed}",
            Path(cache_dir) / f"seed-{seed}",
            {"seed": seed, "batch_size": batch_size},
            {} if seed in cached else {"sampling_seconds": spent},
        )
        for seed, spent in zip(seeds, seconds, strict=True)
    ]


def _check_cache_key(seed_dir: Path, key: dict[str, Any]) -> None:
    """Refuse to mix cached videos of another model, prompt list, seed or batching into this run."""
    path = seed_dir / "cache.json"
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != key:
            raise ValueError(
                f"{seed_dir} holds videos of another model, prompt list, seed or batch size; "
                "use another --out"
            )
    else:
        atomic_write_json(path, key)
