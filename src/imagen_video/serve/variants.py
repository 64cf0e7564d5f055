"""The files of a job's videos: what the worker writes, and what is written on first request.

The worker writes two files per video: the job's ``format`` (mp4 unless the request said otherwise)
and a zip of PNG frames, which keeps the frames losslessly (the zip's comment records the frame rate)
and is quick to write and small (docs/serve.md, "The store and restarts"). Every other variant (the
gif, and the mp4 when the job asked for a gif or the frames) is encoded from the zip when it is first
asked for and kept beside it, so every later request is served from the file. The base stage's
preview clip is kept the same way (its frames, as soon as the base stage is done) and encoded as an
mp4 when the page shows it.

A variant is written under its job's file lock (:meth:`JobStore.file_lock`), which DELETE also takes,
so two first requests encode a file once and a deleted job's directory is never written again; every
file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from imagen_video.cascade.export import to_uint8_frames, write_video
from imagen_video.serialization import atomic_path
from imagen_video.serve.store import JobStore

PREVIEW_MIN_SIDE = 64  # the base stage's clip is upscaled (nearest neighbour) to at least this size


def write_frames_zip(frames: np.ndarray, path: Path, fps: float) -> None:
    """Write uint8 frames (T, H, W, 3) as ``frame_00000.png, ...`` in a zip whose comment is
    ``{"fps": fps}``, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for number, frame in enumerate(frames):
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG")
            archive.writestr(f"frame_{number:05d}.png", buffer.getvalue())
        archive.comment = json.dumps({"fps": fps}).encode()


def read_frames_zip(path: Path) -> tuple[np.ndarray, float]:
    """The uint8 frames (T, H, W, 3) and frame rate of a zip written by :func:`write_frames_zip`."""
    from PIL import Image

    with zipfile.ZipFile(path) as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".png"))
        frames = [np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")) for name in names]
        fps = float(json.loads(archive.comment)["fps"])
    return np.stack(frames), fps


def write_job_video(store: JobStore, job_id: str, index: int, video: Any, fps: float, format: str) -> None:
    """Write video ``index`` of a job ((C, T, H, W) in [0, 1]): its frames zip and, unless the job's
    ``format`` is that zip (png), the file in ``format``."""
    frames = to_uint8_frames(video)  # (T, H, W, 3)
    write_frames_zip(frames, store.video_path(job_id, index, "png"), fps)
    if format != "png":
        write_video(frames, store.video_path(job_id, index, format), fps, format=format)


def video_file(store: JobStore, job_id: str, index: int, variant: str) -> Path:
    """The file of video ``index`` of a completed job in ``variant`` (mp4, gif or png), encoded from
    its frames zip on first request. FileNotFoundError when the job's files are gone."""
    source = store.video_path(job_id, index, "png")
    return _cached(store, job_id, store.video_path(job_id, index, variant), source)


def write_preview_frames(store: JobStore, job_id: str, clip: Any, fps: float) -> None:
    """Keep the base stage's clip of a job's first video ((C, T, H, W) in [0, 1]) for the preview."""
    write_frames_zip(to_uint8_frames(clip), store.preview_frames_path(job_id), fps)


def preview_file(store: JobStore, job_id: str) -> Path | None:
    """The preview mp4 of a job (encoded from its frames on first request), or None before the base
    stage is done (or once the job is deleted)."""
    if not store.preview_frames_path(job_id).is_file():
        return None
    try:
        source = store.preview_frames_path(job_id)
        return _cached(store, job_id, store.preview_path(job_id), source, min_side=PREVIEW_MIN_SIDE)
    except FileNotFoundError:
        return None


def _cached(store: JobStore, job_id: str, target: Path, source: Path, *, min_side: int = 1) -> Path:
    """``target``, encoded from the frames zip ``source`` under the job's file lock if missing
    (upscaled by an integer factor to at least ``min_side`` pixels a side)."""
    if target.is_file():
        return target
    with store.file_lock(job_id):
        if not target.is_file():
            frames, fps = read_frames_zip(source)  # FileNotFoundError once the job is deleted
            scale = max(1, math.ceil(min_side / min(frames.shape[1:3])))
            write_video(frames, target, fps, format=target.suffix.lstrip("."), scale=scale)
    return target
