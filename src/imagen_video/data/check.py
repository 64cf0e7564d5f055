"""``data check``: read a dataset as training would and say what each cascade stage can use, and why not.

Every stage trains on clips "processed to the appropriate spatial and temporal resolutions by spatial
resizing and frame skipping" (paper secs. 2.2, 3). For a video at ``fps_src`` and a stage of ``T``
frames at ``fps``, the frame-skipping stride is ``k = max(1, round(fps_src / fps))`` and a clip spans
``(T - 1) * k + 1`` source frames; shorter videos are skipped (never looped or padded). Images are
used only by stages that train jointly on images (base and SSR, sec. 2.6). This module probes each
record (frame count, frame rate, size of the first frame) and counts, per stage, the usable records
and the skipped ones by reason, with the fix for each.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path

from imagen_video.cascade.config import StageConfig
from imagen_video.data.decode import MediaDecodeError, decode_media, probe_media
from imagen_video.data.manifest import MediaRecord, load_records
from imagen_video.data.transforms import frame_stride


@dataclasses.dataclass(frozen=True)
class RecordProbe:
    """What a record holds: ``frames`` (1 for images), ``fps`` (None for images or when unknown),
    ``height`` x ``width`` of its first frame; ``error`` when the media cannot be decoded."""

    record: MediaRecord
    frames: int = 0
    fps: float | None = None
    height: int = 0
    width: int = 0
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class StageUse:
    """How many records one stage can use, and the skipped ones by reason."""

    stage: StageConfig
    videos: int
    images: int
    too_short: int
    unreadable: int
    images_unused: int
    min_span: int | None
    """Source frames a clip needs at the most common source frame rate (None without videos)."""


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """Records found, their statistics, and each stage's use of them."""

    path: Path
    probes: list[RecordProbe]
    uncaptioned: list[Path]
    stages: list[StageUse]
    cascade: str

    @property
    def videos(self) -> list[RecordProbe]:
        """Probes of the video records."""
        return [p for p in self.probes if p.record.kind == "video"]

    @property
    def images(self) -> list[RecordProbe]:
        """Probes of the image records."""
        return [p for p in self.probes if p.record.kind == "image"]


def probe_record(record: MediaRecord) -> RecordProbe:
    """Frame count, frame rate and first-frame size of one record (decodes one frame)."""
    try:
        first = decode_media(record.media, [0])
        _, height, width, _ = first.frames.shape
        if record.kind == "image":
            return RecordProbe(record, 1, None, height, width)
        info = probe_media(record.media)
        return RecordProbe(record, info.num_frames, record.fps or info.fps, height, width)
    except (MediaDecodeError, OSError, ValueError) as err:
        return RecordProbe(record, error=str(err))


def stage_use(stage: StageConfig, probes: Sequence[RecordProbe]) -> StageUse:
    """Count what ``stage`` can use of the probed records (the dataset's rules, module docstring)."""
    videos = too_short = unreadable = images = images_unused = 0
    for probe in probes:
        if probe.error is not None or (probe.record.kind == "video" and probe.fps is None):
            unreadable += 1
        elif probe.record.kind == "image":
            images += int(stage.use_images)
            images_unused += int(not stage.use_images)
        elif probe.frames >= clip_span(stage, probe.fps):
            videos += 1
        else:
            too_short += 1
    rates = [p.fps for p in probes if p.record.kind == "video" and p.fps is not None and p.error is None]
    span = clip_span(stage, statistics.mode(rates)) if rates else None
    return StageUse(stage, videos, images, too_short, unreadable, images_unused, span)


def clip_span(stage: StageConfig, source_fps: float) -> int:
    """Source frames a clip of ``stage`` spans: ``(T - 1) * stride + 1`` (paper sec. 3)."""
    return (stage.frames - 1) * frame_stride(source_fps, stage.fps) + 1


def check_dataset(
    path: str | Path,
    stages: Sequence[StageConfig],
    *,
    cascade: str = "",
    skip_uncaptioned: bool = False,
    default_fps: float | None = None,
) -> DatasetSummary:
    """Read the dataset at ``path`` as ``train`` does and count what each of ``stages`` can use.

    Raises ``DatasetError`` for the problems that stop training (missing path, bad manifest,
    media without a caption unless ``skip_uncaptioned``).
    """
    uncaptioned: list[Path] = []
    records = load_records(
        path, default_fps=default_fps, skip_uncaptioned=skip_uncaptioned, uncaptioned=uncaptioned
    )
    probes = [probe_record(record) for record in records]
    return DatasetSummary(Path(path), probes, uncaptioned, [stage_use(s, probes) for s in stages], cascade)


def _spread(values: Sequence[float], fmt: str = "{:g}") -> str:
    """"min / median / max" of ``values``."""
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return " / ".join(fmt.format(v) for v in (low, mid, high))


def describe_records(summary: DatasetSummary) -> list[str]:
    """Lines on the records: counts, captions, durations, frame rates and sizes (min / median / max)."""
    videos = [p for p in summary.videos if p.error is None]
    lines = [
        "(statistics are min / median / max)",
        f"dataset {summary.path}: {len(summary.probes)} records: {len(summary.videos)} videos, "
        f"{len(summary.images)} images"
        + (f"; {len(summary.uncaptioned)} media without a caption skipped" if summary.uncaptioned else "")
    ]
    captions = [p.record.caption for p in summary.probes]
    words = [len(c.split()) for c in captions]
    lines.append(f"  captions: {len(set(captions))} distinct; words per caption {_spread(words)}")
    if videos:
        timed = [p for p in videos if p.fps]
        lines.append(f"  video frames: {_spread([p.frames for p in videos])}")
        if timed:
            lines.append(f"  video frame rate: {_spread([p.fps for p in timed])} fps")
            lines.append(f"  video duration: {_spread([p.frames / p.fps for p in timed], '{:.2f}')} s")
    sized = [p for p in summary.probes if p.error is None]
    if sized:
        heights, widths = _spread([p.height for p in sized]), _spread([p.width for p in sized])
        lines.append(f"  height: {heights}; width: {widths}")
    unreadable = [p for p in summary.probes if p.error is not None]
    if unreadable:
        first = unreadable[0]
        lines.append(f"  unreadable: {len(unreadable)}, e.g. {first.record.media}: {first.error}")
    return lines


def describe_stage(use: StageUse, summary: DatasetSummary) -> list[str]:
    """Lines on one stage: what it uses, what it skips and why, and the fix."""
    stage, of = use.stage, f" of {summary.cascade}" if summary.cascade else ""
    shape = f"{stage.frames}x{stage.height}x{stage.width} at {stage.fps:g} fps"
    lines = [f"stage {stage.name}{of} ({stage.kind}, {shape}): uses {use.videos} videos, {use.images} images"]
    total_videos = len(summary.videos)
    if use.too_short:
        fix = "use longer clips, or a cascade whose stages take fewer frames (e.g. --cascade tiny)"
        lines.append(
            f"  too_short: {use.too_short} of {total_videos} videos are shorter than the clip: clips need "
            f">= {use.min_span} source frames at {_common_fps(summary)} fps ({stage.frames} frames at "
            f"{stage.fps:g} fps by frame skipping); {fix}"
        )
    if use.unreadable:
        lines.append(f"  unreadable: {use.unreadable} records cannot be decoded or have no frame rate")
    if use.images_unused:
        lines.append(
            f"  images: {use.images_unused} left out: the stage does not train on images (its "
            "use_images is false; joint image-video training, paper sec. 2.6, is for base and SSR stages)"
        )
    if use.videos + use.images == 0:
        lines.append(f"  stage {stage.name} has nothing to train on")
    return lines


def _common_fps(summary: DatasetSummary) -> str:
    rates = [p.fps for p in summary.videos if p.fps is not None and p.error is None]
    return f"{statistics.mode(rates):g}" if rates else "?"


def format_summary(summary: DatasetSummary) -> str:
    """The full text printed by ``data check`` (and, for the trained stage, by ``train`` at start)."""
    lines = describe_records(summary)
    for use in summary.stages:
        lines.extend(describe_stage(use, summary))
    return "\n".join(lines)
