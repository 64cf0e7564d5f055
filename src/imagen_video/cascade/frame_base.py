"""The frame-conditioned base: an optional base network that takes known frames as input channels.

A cascade directory may hold, beside its stage folders, ``base_frames/``: a stage folder (the same
two files) of a base network with ``UNetConfig.frame_conditioning``, fine-tuned from the cascade's
base with known-frame masks (:mod:`imagen_video.train.known_frames`). Conditional generation's
``"finetuned"`` method samples the base stage with it: the known frames, downsampled to the base's
shape, go in as clean input channels, and the state's known frames are replaced by forward-process
draws as in the replacement method (Video Diffusion Models sec. 3.1), so the output keeps them. The
later stages condition on the known frames by reconstruction guidance.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from imagen_video.cascade.config import StageConfig
from imagen_video.cascade.stage_io import StageLoadError, load_stage

FRAME_BASE_DIR = "base_frames"
"""Folder of the frame-conditioned base inside a cascade directory."""


def load_frame_base(
    root: str | os.PathLike[str],
    base: StageConfig,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    verify: bool = True,
) -> tuple[StageConfig, nn.Module] | None:
    """``(StageConfig, network)`` of the cascade directory's ``base_frames/`` (None when it has none).

    StageLoadError when the folder is damaged, its network lacks ``frame_conditioning``, or its clip
    shape differs from the cascade's ``base``.
    """
    folder = Path(root) / FRAME_BASE_DIR
    if not folder.is_dir():
        return None
    config, model = load_stage(folder, stage_name=base.name, device=device, dtype=dtype, verify=verify)
    check_frame_base(config, base)
    return config, model


def check_frame_base(config: StageConfig, base: StageConfig) -> None:
    """StageLoadError unless ``config`` is a frame-conditioned base with ``base``'s clip shape."""
    if config.kind != "base" or not config.unet.frame_conditioning:
        raise StageLoadError(f"{FRAME_BASE_DIR}: not a base stage with frame_conditioning")
    shape, expected = (config.frames, config.height, config.width), (base.frames, base.height, base.width)
    if shape != expected:
        raise StageLoadError(
            f"{FRAME_BASE_DIR}: clips of {shape} (T, H, W), the cascade's base makes {expected}"
        )


class KnownFrameNetwork(nn.Module):
    """A frame-conditioned network with its known frames bound: called as any stage network, it adds
    ``known_video`` (N, C, T, H, W) and ``known_mask`` (T,) to every forward (repeated to the batch,
    which guidance doubles)."""

    def __init__(self, network: nn.Module, known_video: torch.Tensor, known_mask: torch.Tensor) -> None:
        super().__init__()
        self.network = network
        self.known_video = known_video
        self.known_mask = known_mask

    def forward(self, z_t: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        """The wrapped network's prediction for ``z_t`` (B, C, T, H, W) given the known frames."""
        repeat = z_t.shape[0] // self.known_video.shape[0]
        video = self.known_video.to(z_t.device).repeat(repeat, 1, 1, 1, 1)  # (B, C, T, H, W)
        mask = self.known_mask.to(z_t.device).view(1, -1).expand(z_t.shape[0], -1)  # (B, T)
        return self.network(z_t, *args, known_video=video, known_mask=mask, **kwargs)
