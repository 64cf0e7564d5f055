"""Video-text and image-text data for training the cascade's stages (paper secs. 2.2, 2.6, 3).

* :mod:`~imagen_video.data.manifest`: dataset folders / ``manifest.jsonl`` -> :class:`MediaRecord` s;
* :mod:`~imagen_video.data.decode`: PyAV / Pillow / numpy decoding to ``uint8 (T, H, W, 3)``;
* :mod:`~imagen_video.data.transforms`: frame skipping, antialiased bilinear resizing, crops;
* :mod:`~imagen_video.data.dataset`: :class:`StageDataSpec`, :class:`VideoTextDataset`,
  :func:`collate_video_text`;
* :mod:`~imagen_video.data.sampler`: :class:`JointImageVideoSampler` (image fraction, rank sharding).
"""

from imagen_video.data.dataset import (
    SKIP_REASONS,
    SampleKey,
    StageDataSpec,
    VideoTextDataset,
    collate_video_text,
)
from imagen_video.data.decode import DecodedMedia, MediaDecodeError, MediaInfo, decode_media, probe_media
from imagen_video.data.manifest import DatasetError, MediaRecord, load_records
from imagen_video.data.sampler import JointImageVideoSampler

__all__ = [
    "SKIP_REASONS",
    "DatasetError",
    "DecodedMedia",
    "JointImageVideoSampler",
    "MediaDecodeError",
    "MediaInfo",
    "MediaRecord",
    "SampleKey",
    "StageDataSpec",
    "VideoTextDataset",
    "collate_video_text",
    "decode_media",
    "load_records",
    "probe_media",
]
