"""The cascade: stage / cascade configs and presets, stage folders, the runner and video export
(paper sec. 2.2, Figure 6; docs/CONTRIBUTING.md, "Cascade directory").

- :class:`StageConfig`, :class:`CascadeConfig`, :func:`get_cascade_preset` ("tiny", "demo", "paper");
- :func:`save_stage` / :func:`load_stage`: the single reader / writer of a stage folder;
- :class:`Cascade` (``from_pretrained``, ``save_pretrained``, ``generate``, ``upsample``) with
  :class:`StageOverride` and :class:`CascadeOutput`; :func:`assemble_cascade` writes ``cascade.json``;
- :func:`write_video`: ``.mp4`` / ``.gif`` / ``.webp`` / PNG frame folders, atomically.
"""

from imagen_video.cascade.config import CascadeConfig, StageConfig
from imagen_video.cascade.directory import (
    CascadeLoadError,
    assemble_cascade,
    read_cascade_config,
    read_cascade_json,
)
from imagen_video.cascade.export import VIDEO_FORMATS, resolve_format, write_video
from imagen_video.cascade.presets import CASCADE_PRESETS, get_cascade_preset
from imagen_video.cascade.runner import Cascade, CascadeOutput, CascadeStep
from imagen_video.cascade.sampling import StageOverride
from imagen_video.cascade.stage_io import StageLoadError, load_stage, save_stage

__all__ = [
    "CASCADE_PRESETS",
    "VIDEO_FORMATS",
    "Cascade",
    "CascadeConfig",
    "CascadeLoadError",
    "CascadeOutput",
    "CascadeStep",
    "StageConfig",
    "StageLoadError",
    "StageOverride",
    "assemble_cascade",
    "get_cascade_preset",
    "load_stage",
    "read_cascade_config",
    "read_cascade_json",
    "resolve_format",
    "save_stage",
    "write_video",
]
