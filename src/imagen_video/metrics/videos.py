"""Reading evaluation inputs: prompt files and directories of videos (one video per prompt).

A video directory holds one entry per video, taken in sorted name order: a video file (.mp4, .webm,
.avi, .mov, .mkv, .gif), a ``.npz`` with array ``frames`` uint8 (T, H, W, 3) (the project's lossless
format), or a sub-folder of image frames sorted by name; all are decoded by
:func:`imagen_video.data.decode.decode_media`, the data loaders' decoder. Caption sidecars (.txt,
.json, .jsonl, .md) and hidden files are skipped.
Videos come back as float (N, C, T, H, W) in [0, 1], the metrics' input convention.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from imagen_video.data.decode import MediaDecodeError, decode_media
from imagen_video.data.manifest import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from imagen_video.serialization import atomic_path

SIDECAR_SUFFIXES = (".txt", ".json", ".jsonl", ".md")


def list_video_entries(directory: str | os.PathLike[str]) -> list[Path]:
    """The video entries of ``directory`` in sorted name order (files and frame folders)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"video directory not found: {directory}")
    entries = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        suffix = entry.suffix.lower()
        if entry.name.startswith(".") or (entry.is_file() and suffix in SIDECAR_SUFFIXES):
            continue
        if entry.is_dir() or suffix in VIDEO_EXTENSIONS or suffix == ".npz":
            entries.append(entry)
        elif suffix in IMAGE_EXTENSIONS:
            raise ValueError(
                f"{entry} is a single image at the top of {directory}; "
                "put each video's frames in its own sub-folder"
            )
        else:
            allowed = [*VIDEO_EXTENSIONS, ".npz", "frame folders"]
            raise ValueError(f"{entry}: unsupported video entry (allowed: {allowed})")
    if not entries:
        raise ValueError(f"video directory {directory} holds no videos")
    return entries


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode one video entry to uint8 (T, H, W, 3) with the data loaders' decoder."""
    try:
        return decode_media(path).frames
    except MediaDecodeError as err:
        raise ValueError(str(err)) from err


def to_video_tensor(frames: list[np.ndarray], names: list[str]) -> torch.Tensor:
    """Stack uint8 (T, H, W, 3) videos into float (N, C, T, H, W) in [0, 1]; all must share a shape."""
    first = frames[0].shape
    for array, name in zip(frames, names, strict=True):
        if array.shape != first:
            raise ValueError(
                f"video {name} has shape (T, H, W, C) = {array.shape}, but {names[0]} has {first}"
            )
    stacked = torch.from_numpy(np.stack(frames))  # (N, T, H, W, 3) uint8
    return stacked.permute(0, 4, 1, 2, 3).float().div(255.0)  # (N, C, T, H, W)


def load_video_dir(directory: str | os.PathLike[str], *, expected: int | None = None) -> torch.Tensor:
    """Read every video of ``directory`` (sorted names) into float (N, C, T, H, W) in [0, 1].

    ``expected``: the number of prompts the videos must match one to one (None: any number).
    """
    entries = list_video_entries(directory)
    if expected is not None and len(entries) != expected:
        raise ValueError(
            f"{directory} holds {len(entries)} videos but there are {expected} prompts; "
            "one video per prompt is expected, sorted names in prompt order"
        )
    return to_video_tensor([read_video(e) for e in entries], [e.name for e in entries])


def save_video_npz(path: str | os.PathLike[str], video: torch.Tensor, fps: float) -> None:
    """Atomically save one float (C, T, H, W) video in [0, 1] as ``.npz`` (``frames`` uint8, ``fps``)."""
    frames = (video.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)  # (C, T, H, W)
    array = frames.permute(1, 2, 3, 0).cpu().numpy()  # (T, H, W, 3)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, frames=array, fps=np.float64(fps))
