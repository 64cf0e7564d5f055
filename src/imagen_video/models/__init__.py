"""Denoising networks of the cascade: the space-time separable video U-Net (paper sec. 2.3, Figure 7).

Public API: :class:`VideoUNet`, :class:`UNetConfig` (with :class:`LevelConfig`, :class:`TextConfig`,
:func:`unet_config`), :func:`upsample_video`, :func:`interpolate_frames`, and the presets in
:mod:`imagen_video.models.presets`.
"""

from imagen_video.models.config import LevelConfig, TextConfig, UNetConfig, unet_config
from imagen_video.models.unet import VideoUNet
from imagen_video.models.upsample import interpolate_frames, upsample_video

__all__ = [
    "LevelConfig",
    "TextConfig",
    "UNetConfig",
    "VideoUNet",
    "interpolate_frames",
    "unet_config",
    "upsample_video",
]
