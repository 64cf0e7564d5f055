"""Preparing an existing video for the SR stages (paper sec. 2.2: the SR models apply to real videos).

:func:`read_video` decodes a video file or a directory of frames (through
:mod:`imagen_video.data.decode`, the decoder of the training data) to (C, T, H, W) float in [0, 1]
and its frame rate; :func:`frame_stride` picks the frame skipping that brings the video's frame rate to
what a stage expects (the paper builds its training data by skipping frames, sec. 3);
:func:`fit_to_stage` center-crops to the stage's input aspect ratio and resizes (antialiased
bilinear, as the paper's data processing) to its input H x W, keeping every frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imagen_video.cascade.config import StageConfig

DEFAULT_DIRECTORY_FPS = 8.0  # frame rate assumed for a directory of frames


def read_video(
    path: str | os.PathLike[str], *, max_frames: int | None = None, stride: int = 1
) -> tuple[torch.Tensor, float]:
    """Decode ``path`` to ``(video (C, T, H, W) float32 in [0, 1], fps of the returned frames)``.

    Any media :func:`imagen_video.data.decode.decode_media` reads: a video file, an image, a ``.npz``
    or a directory of frames (sorted by name; ``DEFAULT_DIRECTORY_FPS`` where the media stores no
    frame rate). Every ``stride``-th frame is kept, at most ``max_frames`` of them. Raises ValueError
    naming the path when it cannot be read or holds no frames.
    """
    from imagen_video.data.decode import MediaDecodeError, decode_media, probe_media

    if stride < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"stride ({stride}) and max_frames ({max_frames}) must be >= 1")
    source = Path(path)
    if not source.exists():
        raise ValueError(f"input video {str(source)!r} does not exist")
    try:
        indices = list(range(0, probe_media(source).num_frames, stride))[:max_frames]
        if not indices:
            raise ValueError(f"input video {str(source)!r} holds no frames")
        media = decode_media(source, indices)
    except MediaDecodeError as err:
        raise ValueError(f"cannot decode video {str(source)!r}: {err}") from err
    array = media.frames.astype(np.float32) / 255.0  # (T, H, W, 3)
    fps = media.fps if media.fps else DEFAULT_DIRECTORY_FPS
    return torch.from_numpy(array).permute(3, 0, 1, 2).contiguous(), fps / stride


def frame_stride(source_fps: float, target_fps: float) -> int:
    """Frame skipping factor that brings ``source_fps`` closest to ``target_fps`` (at least 1)."""
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {source_fps} and {target_fps}")
    return max(1, round(source_fps / target_fps))


def center_crop_to_aspect(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Center-crop (..., H, W) to the aspect ratio ``height : width`` (largest such crop)."""
    in_h, in_w = video.shape[-2:]
    if in_h * width > in_w * height:  # too tall
        crop_h, crop_w = max(1, round(in_w * height / width)), in_w
    else:
        crop_h, crop_w = in_h, max(1, round(in_h * width / height))
    top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
    return video[..., top : top + crop_h, left : left + crop_w]


def fit_to_stage(video: torch.Tensor, stage: StageConfig) -> torch.Tensor:
    """Center-crop a (B, C, T, H, W) video in [0, 1] to ``stage``'s input aspect ratio and resize it to
    its input H x W (antialiased bilinear); frames are kept. Returns float32 in [0, 1]."""
    if stage.kind == "base":
        raise ValueError(f"stage {stage.name!r} is a base stage; it takes no input video")
    if video.dim() != 5 or video.shape[1] != stage.unet.in_channels:
        raise ValueError(
            f"video must have shape (B, {stage.unet.in_channels}, T, H, W), got {tuple(video.shape)}"
        )
    if video.is_floating_point() and (float(video.min()) < 0.0 or float(video.max()) > 1.0):
        raise ValueError("video values must lie in [0, 1]")
    height, width = stage.cond_height, stage.cond_width
    cropped = center_crop_to_aspect(video.float(), height, width)  # type: ignore[arg-type]
    b, c, t, crop_h, crop_w = cropped.shape
    if (crop_h, crop_w) == (height, width):
        return cropped.contiguous()
    frames = cropped.transpose(1, 2).reshape(b * t, c, crop_h, crop_w)  # (B*T, C, h, w)
    shrink = crop_h > height or crop_w > width  # type: ignore[operator]
    resized = F.interpolate(
        frames, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink
    )
    return resized.reshape(b, t, c, height, width).transpose(1, 2).clamp(0.0, 1.0).contiguous()
