"""The synthetic captioned video world (docs/world.md): a procedural text-video domain small enough for a
cascade to learn on one CPU, with in-domain evaluators (the paper's Table 1 metrics, sec. 3.4).

- :mod:`~imagen_video.world.spec`: vocabulary, :class:`Combo`, captions, paraphrases, holdout sets;
- :mod:`~imagen_video.world.render`: antialiased numpy renderer, uint8 (T, H, W, 3);
- :mod:`~imagen_video.world.synth`: writes the on-disk dataset (``imagen-video data synth``);
- :mod:`~imagen_video.world.analyze`: deterministic attribute analyzer, attribute accuracy;
- :mod:`~imagen_video.world.clip`: the in-domain CLIP (CLIP score, R-Precision, video features);
- :mod:`~imagen_video.world.evaluate`: both evaluators together and the ground-truth row.

Tier 2 (two objects and rendered text, the paper's text animations; ``docs/world.md``):

- :mod:`~imagen_video.world.tier2`: :class:`PairScene` (``a red circle and a blue square moving
  apart``), :class:`TextScene` (``the word HELLO scrolling left``), captions, parsing, paraphrases;
- :mod:`~imagen_video.world.font`: the built-in 5x7 bitmap font (A-Z), exact antialiased coverage;
- :mod:`~imagen_video.world.render_tier2`: renderer of both scene types (and of tier 1, dispatching);
- :mod:`~imagen_video.world.analyze_tier2`: deterministic analyzer, :func:`scene_accuracy` over prompts
  of any tier.

The torch-based names (``clip_score``, ``r_precision``, ``video_features``, ``load_world_clip``,
``evaluate_world``, ``ground_truth_row``) are imported on first access, so importing this package
needs only numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

from imagen_video.world.analyze import Analysis, analyze_clip, attribute_accuracy
from imagen_video.world.analyze_tier2 import (
    PairAnalysis,
    TextAnalysis,
    analyze_pair,
    analyze_scene,
    analyze_text,
    scene_accuracy,
)
from imagen_video.world.render import Geometry, render_batch, render_clip
from imagen_video.world.render_tier2 import PairGeometry, TextGeometry, render_scene, render_scenes
from imagen_video.world.spec import (
    ALL_COMBOS,
    ALL_STILLS,
    COLORS,
    DEFAULT_HOLDOUT,
    MOTIONS,
    NEW_COLORS,
    PALETTE,
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
from imagen_video.world.tier2 import (
    ALL_PAIR_SCENES,
    ALL_TEXT_SCENES,
    PAIR_MOTIONS,
    TEXT_MOTIONS,
    WORDS,
    PairScene,
    TextScene,
    parse_scene,
    scene_from_attributes,
    scene_paraphrase,
)

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
    "ALL_PAIR_SCENES",
    "ALL_STILLS",
    "ALL_TEXT_SCENES",
    "COLORS",
    "DEFAULT_HOLDOUT",
    "MOTIONS",
    "NEW_COLORS",
    "PAIR_MOTIONS",
    "PALETTE",
    "SHAPES",
    "TEXT_MOTIONS",
    "WORDS",
    "Analysis",
    "Combo",
    "Geometry",
    "PairAnalysis",
    "PairGeometry",
    "PairScene",
    "SynthConfig",
    "TextAnalysis",
    "TextGeometry",
    "TextScene",
    "analyze_clip",
    "analyze_pair",
    "analyze_scene",
    "analyze_text",
    "attribute_accuracy",
    "load_holdout",
    "paraphrase",
    "parse_caption",
    "parse_combo",
    "parse_holdout",
    "parse_scene",
    "render_batch",
    "render_clip",
    "render_scene",
    "render_scenes",
    "scene_accuracy",
    "scene_from_attributes",
    "scene_paraphrase",
    "synthesize",
    "training_combos",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the torch-based public names on first access."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
