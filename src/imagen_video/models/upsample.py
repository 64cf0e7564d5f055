"""Upsampling of a conditioning video to an SR stage's shape (paper sec. 2.3).

"Spatial upsampling before concatenation is performed using bilinear resizing, and temporal upsampling
before concatenation is performed by repeating frames or by filling in blank frames."
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TEMPORAL_UPSAMPLING = ("repeat", "blank")
"""Allowed temporal upsampling modes: repeat each frame, or keep it and fill the new frames with zeros."""


def upsample_video(video: Tensor, size: tuple[int, int, int], temporal: str = "repeat") -> Tensor:
    """Resize a video (B, C, T, H, W) to (B, C, T', H', W') = size (paper sec. 2.3).

    Spatially: bilinear (antialiased when shrinking), per frame. Temporally: T' must be a positive
    multiple k of T; ``"repeat"`` repeats every frame k times, ``"blank"`` puts input frame i at output
    frame k*i and fills the k - 1 frames after it with zeros (mid-grey in [-1, 1] video space).
    """
    if temporal not in TEMPORAL_UPSAMPLING:
        raise ValueError(f"temporal must be one of {TEMPORAL_UPSAMPLING}, got {temporal!r}")
    if video.dim() != 5:
        raise ValueError(f"video must have shape (B, C, T, H, W), got {tuple(video.shape)}")
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"size must be three positive ints (T, H, W), got {size}")
    b, c, frames, height, width = video.shape
    out_t, out_h, out_w = (int(s) for s in size)
    if out_t % frames:
        raise ValueError(f"target frames {out_t} must be a positive multiple of the input frames {frames}")
    if (out_h, out_w) != (height, width):
        shrink = out_h < height or out_w < width
        frames_2d = video.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
        frames_2d = F.interpolate(
            frames_2d, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=shrink
        )
        video = frames_2d.unflatten(0, (b, frames)).transpose(1, 2)  # (B, C, T, H', W')
    factor = out_t // frames
    if factor == 1:
        return video.contiguous()
    if temporal == "repeat":
        return video.repeat_interleave(factor, dim=2)
    out = torch.zeros(b, c, frames, factor, out_h, out_w, dtype=video.dtype, device=video.device)
    out[:, :, :, 0] = video
    return out.flatten(2, 3)  # (B, C, T*k, H', W')


def interpolate_frames(video: Tensor, factor: int) -> Tensor:
    """Linear interpolation in time of a video (B, C, T, H, W) to (B, C, T * factor, H, W).

    Input frame i lands on output frame ``factor * i`` (the alignment of :func:`upsample_video`), the
    frames between two inputs blend them linearly, and the ``factor - 1`` frames after the last input
    hold it. A temporal super-resolution stage's truncated start noises these frames rather than
    repeated ones, so motion is not frozen in pairs when it starts close to t = 0 (SDEdit).
    """
    if video.dim() != 5:
        raise ValueError(f"video must have shape (B, C, T, H, W), got {tuple(video.shape)}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    frames = video.shape[2]
    if factor == 1 or frames == 1:
        return video.repeat_interleave(factor, dim=2)
    step = torch.arange((frames - 1) * factor + 1, device=video.device, dtype=torch.float64) / factor
    left = step.floor().long().clamp(max=frames - 2)  # (T', ) index of the earlier input frame
    weight = (step - left).to(video.dtype).view(1, 1, -1, 1, 1)
    blended = video[:, :, left] * (1 - weight) + video[:, :, left + 1] * weight
    return torch.cat([blended, video[:, :, -1:].expand(-1, -1, factor - 1, -1, -1)], dim=2)
