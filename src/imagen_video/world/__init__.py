"""The synthetic captioned video world (issue 5): a procedural text-video domain small enough for a
cascade to learn on one CPU, with in-domain evaluators (the paper's Table 1 metrics, sec. 3.4).

- :mod:`~imagen_video.world.spec`: vocabulary, :class:`Combo`, captions, paraphrases, holdout sets;
- :mod:`~imagen_video.world.render`: antialiased numpy renderer, uint8 (T, H, W, 3);
- :mod:`~imagen_video.world.synth`: writes the on-disk dataset (``imagen-video data synth``);
- :mod:`~imagen_video.world.analyze`: deterministic attribute analyzer, attribute accuracy;
- :mod:`~imagen_video.world.clip`: the in-domain CLIP (CLIP score, R-Precision, video features);
- :mod:`~imagen_video.world.evaluate`: both evaluators together and the ground-truth row.

The torch-based names (``clip_score``, ``r_precision``, ``video_features``, ``load_world_clip``,
``evaluate_world``, ``ground_truth_row``) are imported on first access, so importing this package
needs only numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

from imagen_video.world.analyze import Analysis, analyze_clip, attribute_accuracy
from imagen_video.world.render import Geometry, render_batch, render_clip
from imagen_video.world.spec import (
    ALL_COMBOS,
    ALL_STILLS,
    COLORS,
    DEFAULT_HOLDOUT,
    MOTIONS,
    SHAPES,
    Combo,
    load_holdout,
    paraphrase,
    parse_caption,
    parse_combo,
    parse_holdout,
    training_combos,
)
from imagen_video.world.synth import SynthConfig, synthesize

_LAZY = {
    "WorldClip": "clip",
    "WorldClipConfig": "clip",
    "clip_score": "clip",
    "embed_videos": "clip",
    "load_world_clip": "clip",
    "r_precision": "clip",
    "video_features": "clip",
    "evaluate_world": "evaluate",
    "ground_truth_row": "evaluate",
}

__all__ = [
    "ALL_COMBOS",
    "ALL_STILLS",
    "COLORS",
    "DEFAULT_HOLDOUT",
    "MOTIONS",
    "SHAPES",
    "Analysis",
    "Combo",
    "Geometry",
    "SynthConfig",
    "analyze_clip",
    "attribute_accuracy",
    "load_holdout",
    "paraphrase",
    "parse_caption",
    "parse_combo",
    "parse_holdout",
    "render_batch",
    "render_clip",
    "synthesize",
    "training_combos",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the torch-based public names on first access."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
