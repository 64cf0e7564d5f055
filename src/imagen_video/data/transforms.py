"""Clip sampling and resizing: frame skipping and antialiased bilinear resizing (paper sec. 3).

"We spatially resize images and videos using antialiased bilinear resizing, and we temporally resize
videos by skipping frames" (paper sec. 3). Frames travel as float ``(T, C, H, W)`` in [0, 1] through
these functions (frames as the batch axis of ``F.interpolate``); :func:`to_model_video` turns them
into the model convention ``(C, T, H, W)`` in [-1, 1] (docs/CONTRIBUTING.md, "Conventions").

Randomness (clip start, crop offsets) comes in as a ``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ASPECT_CROPS",
    "aspect_crop_box",
    "clip_frame_indices",
    "conditioning_clip",
    "crop_frames",
    "frame_stride",
    "random_crop_offset",
    "resize_frames",
    "to_float_frames",
    "to_model_video",
]

AspectCrop = Literal["center", "random"]
ASPECT_CROPS: tuple[str, ...] = get_args(AspectCrop)


def frame_stride(source_fps: float, target_fps: float) -> int:
    """Frame-skipping stride ``max(1, round(source_fps / target_fps))`` (paper sec. 3).

    A source slower than the target (stride 1) is used frame by frame, i.e. it plays slower than
    ``target_fps``; frames are never invented.
    """
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be > 0, got source_fps={source_fps}, target_fps={target_fps}")
    return max(1, round(source_fps / target_fps))


def clip_frame_indices(
    num_frames: int, frames: int, stride: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Indices ``start + stride * arange(frames)`` of a clip at a uniformly random start.

    Returns None when the video is shorter than the clip's span ``(frames - 1) * stride + 1``; such
    videos are skipped (not looped or padded: both would teach motion that is not in the data).
    """
    if frames < 1 or stride < 1:
        raise ValueError(f"frames and stride must be >= 1, got frames={frames}, stride={stride}")
    span = (frames - 1) * stride + 1
    if num_frames < span:
        return None
    start = int(rng.integers(0, num_frames - span + 1))
    return start + stride * np.arange(frames)


def to_float_frames(frames: np.ndarray) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` -> float32 ``(T, 3, H, W)`` in [0, 1]."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def aspect_crop_box(
    height: int, width: int, aspect: float, mode: str, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """Largest ``(top, left, crop_height, crop_width)`` box of aspect ``width / height = aspect``.

    ``mode`` "center" centres the box, "random" places it uniformly (one draw per clip).
    """
    if mode not in ASPECT_CROPS:
        raise ValueError(f"aspect crop mode {mode!r} not in {ASPECT_CROPS}")
    crop_h, crop_w = height, width
    if width > height * aspect:
        crop_w = max(1, min(width, round(height * aspect)))
    else:
        crop_h = max(1, min(height, round(width / aspect)))
    if mode == "center":
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return top, left, crop_h, crop_w


def crop_frames(frames: torch.Tensor, top: int, left: int, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``(T, C, H, W)`` frames to ``size = (h, w)`` at ``(top, left)``; the box must fit."""
    height, width = frames.shape[-2:]
    if not (0 <= top <= height - size[0] and 0 <= left <= width - size[1]):
        raise ValueError(f"crop box top={top} left={left} size={size} does not fit frames {height}x{width}")
    return frames[..., top : top + size[0], left : left + size[1]]


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of ``(T, C, H, W)`` frames to ``size = (H', W')`` (paper sec. 3).

    Downscaling averages with a triangle filter widened by the scale factor (no aliasing); the
    weights are non-negative, so values stay within the input range.
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


def random_crop_offset(
    height: int, width: int, size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int]:
    """Uniform ``(top, left)`` of a ``size`` crop inside ``height x width`` (paper sec. 2.3, top stage)."""
    if size[0] > height or size[1] > width:
        raise ValueError(f"crop {size} is larger than the frames {height}x{width}")
    return int(rng.integers(0, height - size[0] + 1)), int(rng.integers(0, width - size[1] + 1))


def conditioning_clip(frames: torch.Tensor, cond_frames: int, cond_size: tuple[int, int]) -> torch.Tensor:
    """Previous stage's view of a clip: every k-th frame, then antialiased downsampling (paper sec. 2.2).

    ``frames`` (T, C, H, W) -> (cond_frames, C, h, w) with ``k = T // cond_frames``: frame j of the
    result is frame ``j * k`` of the clip, so frame-repetition upsampling (``repeat_interleave(k)``)
    puts it back at positions ``j * k .. j * k + k - 1``, exactly aligned (docs/math.md sec. 8).
    """
    total = frames.shape[0]
    if cond_frames < 1 or total % cond_frames:
        raise ValueError(f"cond_frames={cond_frames} must divide the clip length {total}")
    return resize_frames(frames[:: total // cond_frames], cond_size)


def to_model_video(frames: torch.Tensor) -> torch.Tensor:
    """float ``(T, C, H, W)`` in [0, 1] -> contiguous ``(C, T, H, W)`` in [-1, 1]."""
    return frames.permute(1, 0, 2, 3).mul(2.0).sub(1.0).clamp_(-1.0, 1.0).contiguous()
