"""Deterministic attribute analyzer of a world clip: recognised color, shape and motion (docs/world.md).

Per frame, the object is the set of pixels whose brightness (max over RGB) exceeds 0.5; around it
(its bounding box grown by one pixel) the brightness is read as soft coverage, which makes the
measurements nearly exact on antialiased renders at any resolution:

- color: mean chromaticity (each mask pixel divided by its max channel), nearest color of the palette
  (the six tier-1 colors and orange, spec.PALETTE);
- shape: an upright triangle's mass grows linearly downwards, so the skewness of the coverage's
  vertical marginal is -2 sqrt(2) / 5 = -0.57 (circle, square: 0); below -0.3 it is a triangle (its
  fill ratio ~0.5 agrees, but is biased upwards by antialiasing at small sizes). Otherwise the fill
  ratio = coverage area / (soft width x soft height), where the soft width is the sum over columns of
  the column's max coverage, separates square (~1) from circle (pi/4 = 0.785). Medians over the
  frames whose area is at least the median (a shrinking object is most legible early);
- motion: least-squares slopes over time of the coverage centroid (in frame widths / heights per
  clip) and of log area; the largest of |dx| / 0.4, |dy| / 0.4 and |d log area| / log 2.5 decides
  (none above 0.5: no recognisable motion).

Attribute accuracy (all three correct, per prompt and overall) is the in-domain text-alignment
metric of the world (docs/world.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from imagen_video.world.spec import PALETTE, Combo, parse_caption

SKEW_TRIANGLE = -0.3
"""Vertical-marginal skewness below which the object is an upright triangle (~ -0.57; others ~0)."""
FILL_CIRCLE_SQUARE = 0.89
"""Fill-ratio boundary between circle (~0.785) and square (~1.0)."""
MASK_THRESHOLD = 0.5
"""Brightness (max channel, [0, 1]) above which a pixel belongs to the object mask."""
COVERAGE_FLOOR = 0.1
"""Brightness below which a pixel counts as background in the soft coverage."""
_PALETTE_NAMES = tuple(PALETTE)
_PALETTE = np.array([PALETTE[n] for n in _PALETTE_NAMES], dtype=np.float64) / 255.0  # (7, 3)


def to_thwc(video: Any, layout: str | None = None) -> np.ndarray:
    """Convert one clip to float64 (T, H, W, 3) in [0, 1].

    Accepts numpy arrays or torch tensors: uint8 (0-255) or float in [0, 1]; layout ``"THWC"``
    ((T, H, W, 3), or (H, W, 3) for an image) or ``"CTHW"`` ((3, T, H, W)). ``layout=None``
    detects it from where the size-3 axis is and raises if that is ambiguous.
    """
    if hasattr(video, "detach"):
        video = video.detach().float().cpu().numpy()
    array = np.asarray(video)
    if array.ndim == 3 and array.shape[-1] == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected a clip (T, H, W, 3) or (3, T, H, W), got shape {tuple(array.shape)}")
    if layout is None:
        last, first = array.shape[-1] == 3, array.shape[0] == 3
        if last == first:
            raise ValueError(
                f"cannot tell the layout of shape {tuple(array.shape)}; pass layout='THWC' or 'CTHW'"
            )
        layout = "THWC" if last else "CTHW"
    if layout == "CTHW":
        array = np.moveaxis(array, 0, -1)
    elif layout != "THWC":
        raise ValueError(f"unknown layout {layout!r}; allowed: 'THWC', 'CTHW'")
    if array.shape[-1] != 3:
        raise ValueError(f"expected 3 color channels, got shape {tuple(array.shape)} as {layout}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    return np.clip(array.astype(np.float64), 0.0, 1.0)


def as_clip_list(videos: Any, layout: str | None = None) -> list[np.ndarray]:
    """Split a batch into clips, each float64 (T, H, W, 3) in [0, 1] (see :func:`to_thwc`).

    ``videos``: a sequence of clips, or a 5-D array/tensor (B, C, T, H, W) or (B, T, H, W, 3).
    """
    if hasattr(videos, "ndim") and videos.ndim == 5:
        return [to_thwc(v, layout) for v in videos]
    if hasattr(videos, "ndim"):
        raise ValueError(f"expected a batch of clips (5-D), got shape {tuple(videos.shape)}")
    return [to_thwc(v, layout) for v in videos]


@dataclasses.dataclass(frozen=True)
class FrameMeasurements:
    """Per-frame measurements of the object in one clip (all arrays of length T)."""

    present: np.ndarray
    """bool: the frame has at least one mask pixel."""
    area: np.ndarray
    """coverage area in pixels."""
    cx: np.ndarray
    """coverage centroid x in frame widths."""
    cy: np.ndarray
    """coverage centroid y in frame heights."""
    bbox: np.ndarray
    """(T, 4) float: mask bounding box (x_min, y_min, x_max, y_max) in pixels, inclusive; -1 if absent."""
    fill: np.ndarray
    """coverage area / (soft width x soft height)."""
    skew: np.ndarray
    """skewness of the coverage's vertical marginal (upright triangle ~ -0.57, circle / square 0)."""
    chroma: np.ndarray
    """(T, 3) mean chromaticity of the mask pixels."""


def measure_frames(clip: np.ndarray) -> FrameMeasurements:
    """Measure the object in each frame of a float (T, H, W, 3) clip in [0, 1] (see module docstring)."""
    frames, height, width, _ = clip.shape
    bright = clip.max(axis=-1)  # (T, H, W)
    mask = bright > MASK_THRESHOLD
    out = {k: np.zeros(frames) for k in ("area", "cx", "cy", "fill", "skew")}
    present = mask.any(axis=(1, 2))
    bbox = -np.ones((frames, 4))
    chroma = np.zeros((frames, 3))
    for t in np.flatnonzero(present):
        rows = np.flatnonzero(mask[t].any(axis=1))
        cols = np.flatnonzero(mask[t].any(axis=0))
        bbox[t] = (cols[0], rows[0], cols[-1], rows[-1])
        y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, height)
        x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, width)
        cov = bright[t, y0:y1, x0:x1]
        cov = np.where(cov >= COVERAGE_FLOOR, cov, 0.0)  # (h, w) soft coverage
        area = cov.sum()
        ys = np.arange(y0, y1) + 0.5
        xs = np.arange(x0, x1) + 0.5
        out["area"][t] = area
        out["cx"][t] = (cov.sum(axis=0) @ xs) / area / width
        out["cy"][t] = (cov.sum(axis=1) @ ys) / area / height
        out["fill"][t] = area / (cov.max(axis=0).sum() * cov.max(axis=1).sum())
        rows_mass = cov.sum(axis=1) / area  # (h,) vertical marginal of the coverage
        dev = ys - out["cy"][t] * height
        out["skew"][t] = (rows_mass @ dev**3) / max(rows_mass @ dev**2, 1e-12) ** 1.5
        pixels = clip[t][mask[t]]  # (n, 3)
        chroma[t] = (pixels / pixels.max(axis=-1, keepdims=True)).mean(axis=0)
    return FrameMeasurements(present=present, bbox=bbox, chroma=chroma, **out)


@dataclasses.dataclass(frozen=True)
class Analysis:
    """Recognised attributes of one clip (``None`` = not recognisable) and the cues behind them."""

    color: str | None
    shape: str | None
    motion: str | None
    fill: float
    travel_x: float
    travel_y: float
    log_area_ratio: float

    def matches(self, combo: Combo) -> bool:
        """True when color, shape and motion all equal ``combo``'s (images: motion ``None``)."""
        return (self.color, self.shape, self.motion) == (combo.color, combo.shape, combo.motion)


def _slope(t: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values`` over ``t`` (change per unit time)."""
    tc = t - t.mean()
    return float((tc @ (values - values.mean())) / (tc @ tc))


def _recognise_motion(m: FrameMeasurements) -> tuple[str | None, float, float, float]:
    t = np.linspace(0.0, 1.0, len(m.present))[m.present]
    if len(t) < 2:
        return None, 0.0, 0.0, 0.0
    dx = _slope(t, m.cx[m.present]) * (t[-1] - t[0])
    dy = _slope(t, m.cy[m.present]) * (t[-1] - t[0])
    dlog = _slope(t, np.log(m.area[m.present])) * (t[-1] - t[0])
    scores = {
        ("moving right" if dx > 0 else "moving left"): abs(dx) / 0.4,
        ("moving down" if dy > 0 else "moving up"): abs(dy) / 0.4,
        ("growing" if dlog > 0 else "shrinking"): abs(dlog) / math.log(2.5),
    }
    best = max(scores, key=scores.__getitem__)
    return (best if scores[best] >= 0.5 else None), dx, dy, dlog


def analyze_clip(video: Any, layout: str | None = None) -> Analysis:
    """Recognise (color, shape, motion) of one clip; all ``None`` when no object is visible.

    ``video``: uint8 (T, H, W, 3) or float in [0, 1] as (T, H, W, 3) / (3, T, H, W) (see
    :func:`to_thwc`). A one-frame clip (still image) gets motion ``None``.
    """
    m = measure_frames(to_thwc(video, layout))
    if not m.present.any():
        return Analysis(None, None, None, 0.0, 0.0, 0.0, 0.0)
    color, shape, fill = classify_object(m)
    motion, dx, dy, dlog = _recognise_motion(m)
    return Analysis(color, shape, motion, fill, dx, dy, dlog)


def nearest_color(chroma: np.ndarray) -> str:
    """The palette color nearest (squared RGB distance) to a mean chromaticity (3,) in [0, 1]."""
    return _PALETTE_NAMES[int(np.argmin(((_PALETTE - chroma) ** 2).sum(axis=1)))]


def classify_object(m: FrameMeasurements) -> tuple[str, str, float]:
    """Color, shape and fill ratio of the object measured in ``m`` (see the module docstring); ``m``
    must have at least one present frame. Shared by the tier-1 and tier-2 analyzers."""
    color = nearest_color(m.chroma[m.present].mean(axis=0))
    large = m.present & (m.area >= np.median(m.area[m.present]))  # shape cues from the larger frames
    fill = float(np.median(m.fill[large]))
    skew = float(np.median(m.skew[large]))
    shape = "triangle" if skew < SKEW_TRIANGLE else "circle" if fill < FILL_CIRCLE_SQUARE else "square"
    return color, shape, fill


def _as_combos(combos: Sequence[Combo | str]) -> list[Combo]:
    return [c if isinstance(c, Combo) else parse_caption(c) for c in combos]


def attribute_accuracy(
    videos: Any, combos: Sequence[Combo | str], layout: str | None = None
) -> dict[str, Any]:
    """Attribute accuracy of clips against their prompts (docs/world.md).

    ``videos``: a batch (B, C, T, H, W) / (B, T, H, W, 3) or a sequence of clips (see :func:`to_thwc`);
    ``combos``: one :class:`Combo` or canonical caption per clip. Returns ``overall`` (fraction of
    clips with all three attributes right), ``color`` / ``shape`` / ``motion`` (per attribute), and
    ``per_prompt`` (caption -> overall accuracy over that prompt's clips).
    """
    clips = as_clip_list(videos, layout)
    targets = _as_combos(combos)
    if len(clips) != len(targets) or not clips:
        raise ValueError(
            f"need one prompt per clip and at least one clip; got {len(clips)} clips, {len(targets)} prompts"
        )
    results = [analyze_clip(c, "THWC") for c in clips]
    right = np.array([r.matches(c) for r, c in zip(results, targets, strict=True)])
    per_prompt: dict[str, list[bool]] = {}
    for combo, ok in zip(targets, right, strict=True):
        per_prompt.setdefault(combo.caption, []).append(bool(ok))
    return {
        "overall": float(right.mean()),
        "color": float(np.mean([r.color == c.color for r, c in zip(results, targets, strict=True)])),
        "shape": float(np.mean([r.shape == c.shape for r, c in zip(results, targets, strict=True)])),
        "motion": float(np.mean([r.motion == c.motion for r, c in zip(results, targets, strict=True)])),
        "per_prompt": {k: float(np.mean(v)) for k, v in per_prompt.items()},
    }


def motion_step_cv(videos: Any, combos: Sequence[Combo | str], layout: str | None = None) -> float | None:
    """Unevenness of the motion: the coefficient of variation (std / mean) of the per-frame step of
    the coverage centroid, averaged over the clips whose prompt moves the object (not in the paper;
    a check of temporal super-resolution, paper sec. 2.2).

    Constant speed, as rendered, gives about 0; frames repeated in pairs (a TSR stage that keeps its
    repeated input) give about 1. Clips where the object is missing in some frame are skipped;
    ``None`` when no clip qualifies.
    """
    clips = as_clip_list(videos, layout)
    targets = _as_combos(combos)
    if len(clips) != len(targets):
        raise ValueError(f"need one prompt per clip; got {len(clips)} clips, {len(targets)} prompts")
    values = []
    for clip, combo in zip(clips, targets, strict=True):
        if not combo.motion.startswith("moving") or clip.shape[0] < 3:
            continue
        m = measure_frames(clip)
        if not m.present.all():
            continue
        steps = np.hypot(np.diff(m.cx), np.diff(m.cy))  # (T - 1,) in frame units
        if steps.mean() > 0:
            values.append(steps.std() / steps.mean())
    return float(np.mean(values)) if values else None
