"""Deterministic analyzer of tier-2 clips: two objects and scrolling text (docs/world.md, tier 2).

Two objects (:func:`analyze_pair`): per frame, the 8-connected components of the brightness mask
(max over RGB > 0.5; :func:`label_components`, plain numpy) are found and the two largest kept,
ordered left to right. Each object becomes a clip of its own (its bounding box grown by one pixel,
other components blanked) that the tier-1 measurements read (:func:`~imagen_video.world.analyze.
measure_frames`, :func:`~imagen_video.world.analyze.classify_object`: color, shape). The relative
motion comes from least-squares changes over the clip of the centroid gap (right minus left, frame
widths) and of the midpoint of the two centroids: ``moving apart`` / ``together`` score
``|gap change| / 0.3``, ``both moving ...`` score ``|midpoint travel| / 0.4``; the best score wins if
it is at least 0.5.

Text (:func:`analyze_text`): color from the mean chromaticity (tier 1). The word's soft ink edges
(mask bounding box refined by the coverage of the edge pixels, exact for box-filtered ink) give, in
frames where an edge does not touch the frame border, a shared constant velocity per axis (least
squares); the faster axis (at least 0.15 of the frame over the clip) is the scroll direction. Frames
are shifted back along it onto a reference frame where the word is fully visible and averaged (the
motion-compensated mean). Every vocabulary word is rendered with the same font at the letter height
and centre measured in the reference frame, and the one with the highest normalised correlation with
the mean (at least 0.5) is the recognised word.

Measured on rendered clips (seed 1, one thread; the command is in ``docs/world.md``), every attribute
right on 100% of: 1000 random two-object clips at 24x40 and 300 at 48x80; all 384 text scenes (every
word, motion and color) twice at 48x80, and once at 96x160 and at 24x40; each with 16 and with 4
frames. About 5.5 ms per 16-frame clip at 24x40 (pairs), 9 ms at 48x80 (text), on a busy 2-core CPU.
``tests/test_world_tier2_analyze.py`` checks >= 99% on 288 pair clips and 240 text clips, and >= 95%
under Gaussian noise (sigma 0.03).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from imagen_video.world.analyze import (
    COVERAGE_FLOOR,
    MASK_THRESHOLD,
    analyze_clip,
    as_clip_list,
    classify_object,
    measure_frames,
    nearest_color,
    to_thwc,
)
from imagen_video.world.font import GLYPH_ROWS, ink_columns, text_coverage, word_bitmap
from imagen_video.world.spec import Combo
from imagen_video.world.tier2 import WORDS, PairScene, Scene, TextScene, parse_scene, scene_kind

GAP_SCALE = 0.3
"""Gap change (frame widths) that scores 1 for ``moving apart`` / ``moving together``."""
TRAVEL_SCALE = 0.4
"""Travel (frame widths / heights) that scores 1 for a shared motion."""
SCROLL_MIN = 0.15
"""Least travel (frame widths / heights over the clip) of a recognised scroll (rendered: >= 0.42)."""
WORD_MIN_CORRELATION = 0.5
"""Least normalised correlation of a recognised word."""
_TEMPLATES: dict[str, tuple[np.ndarray, tuple[int, int]]] = {
    word: (word_bitmap(word), ink_columns(word_bitmap(word))) for word in WORDS
}


def label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected components of each (H, W) image of a bool (..., H, W) mask: int64 labels of the
    same shape, 0 = background; a component's label is 1 + the flat index of its first pixel.

    Minimum-label propagation over the 3x3 neighbourhood with pointer jumping (each pixel takes the
    label of the pixel its label names), so it converges in a few dozen vectorised steps.
    """
    mask = np.asarray(mask, dtype=bool)
    size = mask.size
    background = size + 1
    labels = np.where(mask, np.arange(1, size + 1, dtype=np.int64).reshape(mask.shape), background)
    height, width = mask.shape[-2:]
    pad = [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)]
    while True:
        padded = np.pad(labels, pad, constant_values=background)
        least = labels
        for dy in range(3):
            for dx in range(3):
                least = np.minimum(least, padded[..., dy : dy + height, dx : dx + width])
        flat = np.where(mask, least, background).ravel()
        jumped = np.where(mask.ravel(), flat[np.minimum(flat, size) - 1], background).reshape(mask.shape)
        if np.array_equal(jumped, labels):
            return np.where(mask, labels, 0)
        labels = jumped


def split_objects(clip: np.ndarray) -> np.ndarray:
    """The two largest mask components of each frame as two clips, left then right: float (2, T, H, W, 3).

    Object ``k``'s clip holds the input inside its component's bounding box grown by one pixel (the
    window tier 1 measures), with every other component's mask pixels blanked; frames with fewer than
    two components are black in both.
    """
    mask = clip.max(axis=-1) > MASK_THRESHOLD  # (T, H, W)
    labels = label_components(mask)
    out = np.zeros((2, *clip.shape))
    height, width = mask.shape[1:]
    for t in range(clip.shape[0]):
        ids, counts = np.unique(labels[t][mask[t]], return_counts=True)
        if len(ids) < 2:
            continue
        largest = ids[np.argsort(-counts, kind="stable")[:2]]
        centres = [np.nonzero(labels[t] == i)[1].mean() for i in largest]
        for k, label in enumerate(largest[np.argsort(centres)]):
            component = labels[t] == label
            rows = np.flatnonzero(component.any(axis=1))
            cols = np.flatnonzero(component.any(axis=0))
            y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, height)
            x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, width)
            window = clip[t, y0:y1, x0:x1].copy()
            window[mask[t, y0:y1, x0:x1] & ~component[y0:y1, x0:x1]] = 0.0
            out[k, t, y0:y1, x0:x1] = window
    return out


def _change(t: np.ndarray, values: np.ndarray) -> float:
    """Least-squares change of ``values`` over the span of ``t`` (slope x duration)."""
    tc = t - t.mean()
    return float((tc @ (values - values.mean())) / (tc @ tc) * (t[-1] - t[0]))


@dataclasses.dataclass(frozen=True)
class PairAnalysis:
    """Recognised two-object clip: ``objects`` ((color, shape) left, then right; ``None`` = not
    recognisable), ``motion`` and its cues (frame widths / heights over the clip)."""

    objects: tuple[tuple[str | None, str | None], tuple[str | None, str | None]]
    motion: str | None
    gap_change: float
    travel_x: float
    travel_y: float

    def matches(self, scene: PairScene) -> bool:
        """True when the motion and both objects (in either order) equal ``scene``'s."""
        return self.motion == scene.motion and self.objects_match(scene)

    def objects_match(self, scene: PairScene) -> bool:
        """True when the two recognised objects are ``scene``'s, in either order."""
        return Counter(self.objects) == Counter(scene.objects)


def analyze_pair(video: Any, layout: str | None = None) -> PairAnalysis:
    """Recognise both objects (color, shape) and the pair motion of one clip (see module docstring).

    ``video``: uint8 or float in [0, 1], (T, H, W, 3) / (3, T, H, W) (see
    :func:`~imagen_video.world.analyze.to_thwc`). Objects are ``(None, None)`` when no frame shows
    two separate objects; the motion is ``None`` below the score threshold or with < 2 such frames.
    """
    left, right = (measure_frames(obj) for obj in split_objects(to_thwc(video, layout)))
    both = left.present & right.present
    if not both.any():
        return PairAnalysis(((None, None), (None, None)), None, 0.0, 0.0, 0.0)
    (color_l, shape_l, _), (color_r, shape_r, _) = classify_object(left), classify_object(right)
    objects = ((color_l, shape_l), (color_r, shape_r))
    t = np.linspace(0.0, 1.0, len(both))[both]
    if len(t) < 2:
        return PairAnalysis(objects, None, 0.0, 0.0, 0.0)
    gap = _change(t, right.cx[both] - left.cx[both])
    dx = _change(t, (left.cx[both] + right.cx[both]) / 2)
    dy = _change(t, (left.cy[both] + right.cy[both]) / 2)
    scores = {
        ("moving apart" if gap > 0 else "moving together"): abs(gap) / GAP_SCALE,
        ("both moving right" if dx > 0 else "both moving left"): abs(dx) / TRAVEL_SCALE,
        ("both moving down" if dy > 0 else "both moving up"): abs(dy) / TRAVEL_SCALE,
    }
    best = max(scores, key=scores.__getitem__)
    motion = best if scores[best] >= 0.5 else None
    return PairAnalysis(objects, motion, gap, dx, dy)


@dataclasses.dataclass(frozen=True)
class TextAnalysis:
    """Recognised text clip: ``word``, ``color``, ``motion`` (``None`` = not recognisable), the word's
    normalised correlation ``score`` and the scroll travel (frame widths / heights over the clip)."""

    word: str | None
    color: str | None
    motion: str | None
    score: float
    travel_x: float
    travel_y: float

    def matches(self, scene: TextScene) -> bool:
        """True when word, color and motion all equal ``scene``'s."""
        return (self.word, self.color, self.motion) == (scene.word, scene.color, scene.motion)


def _soft_edges(bright: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """Ink edges (left, top, right, bottom), float (T, 4) pixels, from the mask bounding boxes refined by
    the coverage of the pixels at and beyond each box edge (exact for a box-filtered edge)."""
    cov = np.where(bright >= COVERAGE_FLOOR, bright, 0.0)
    cols = np.pad(cov.max(axis=1), ((0, 0), (1, 1)))  # (T, W + 2): column k at k + 1
    rows = np.pad(cov.max(axis=2), ((0, 0), (1, 1)))  # (T, H + 2)
    t = np.arange(len(bbox))
    x0, y0, x1, y1 = (np.maximum(bbox[:, i], 0).astype(np.int64) for i in range(4))
    return np.stack(
        [
            x0 + 1 - cols[t, x0 + 1] - cols[t, x0],
            y0 + 1 - rows[t, y0 + 1] - rows[t, y0],
            x1 + cols[t, x1 + 1] + cols[t, x1 + 2],
            y1 + rows[t, y1 + 1] + rows[t, y1 + 2],
        ],
        axis=1,
    )


def _true_edges(
    low: np.ndarray, low_ok: np.ndarray, high: np.ndarray, high_ok: np.ndarray, ref: int, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop edge measurements that are not the word's own edge: when the word is partly outside the
    frame, the visible end can be a letter's edge (a blank column between letters at the border) that
    does not touch the border. With both edges inside but the ink narrower than in the reference
    frame ``ref`` (by > 1 px), the edge on the side where the missing ink would leave the frame is
    dropped (both when that is not clear)."""
    extent = high[ref] - low[ref]
    low_ok, high_ok = low_ok.copy(), high_ok.copy()
    short = low_ok & high_ok & (high - low < extent - 1.0)
    cut_low = high - extent < 0.5  # the full word would start before the frame
    cut_high = low + extent > length - 0.5  # ... or end after it
    low_ok &= ~(short & (cut_low | ~cut_high))
    high_ok &= ~(short & (cut_high | ~cut_low))
    return low, low_ok, high, high_ok


def _edge_velocity(low: np.ndarray, low_ok: np.ndarray, high: np.ndarray, high_ok: np.ndarray) -> float:
    """Shared slope (pixels per frame) of two edge tracks with their own offsets, fitted over the frames
    where each edge is valid (least squares); 0 when the frames do not determine it."""
    frames = np.arange(len(low), dtype=np.float64)
    design, values = [], []
    for column, (track, ok) in enumerate(((low, low_ok), (high, high_ok))):
        for t in np.flatnonzero(ok):
            design.append([frames[t], column == 0, column == 1])
            values.append(track[t])
    if not design:
        return 0.0
    a = np.array(design, dtype=np.float64)
    a = a[:, [0, *[c for c in (1, 2) if a[:, c].any()]]]
    if np.linalg.matrix_rank(a) < a.shape[1]:
        return 0.0
    return float(np.linalg.lstsq(a, np.array(values), rcond=None)[0][0])


def _aligned_mean(bright: np.ndarray, shift: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over frames of ``bright`` (T, H, W) with frame ``t`` sampled at ``position + shift[t]``
    along ``axis`` (1 = rows, 2 = columns; linear interpolation): (mean (H, W), valid (H, W) bool)."""
    length = bright.shape[axis]
    pos = np.arange(length)[None, :] + shift[:, None]  # (T, L)
    valid = (pos >= 0) & (pos <= length - 1)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, max(length - 2, 0))
    w = np.clip(pos - i0, 0.0, 1.0)
    shape = (len(shift), 1, length) if axis == 2 else (len(shift), length, 1)
    i0, w, valid = i0.reshape(shape), w.reshape(shape), valid.reshape(shape)
    i1 = np.minimum(i0 + 1, length - 1)
    values = np.take_along_axis(bright, i0, axis) * (1 - w) + np.take_along_axis(bright, i1, axis) * w
    count = np.broadcast_to(valid, bright.shape).sum(axis=0)  # (H, W)
    total = (values * valid).sum(axis=0)
    return total / np.maximum(count, 1), count > 0


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised (zero-mean) correlation of two equally shaped arrays; 0 if either is constant."""
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / norm if norm > 0 else 0.0


def _match_word(mean: np.ndarray, valid: np.ndarray, edges: np.ndarray) -> tuple[str | None, float]:
    """Best vocabulary word for the aligned mean image, each rendered at the measured letter height with
    its ink centred on the measured ink box ``edges`` (left, top, right, bottom); the correlation is
    taken over the valid pixels of a window that holds every candidate plus two dots around it."""
    left, top, right, bottom = edges
    dot = (bottom - top) / GLYPH_ROWS
    if dot <= 0:
        return None, 0.0
    height, width = mean.shape
    centre = (left + right) / 2
    half = (max(b.shape[1] for b, _ in _TEMPLATES.values()) / 2 + 2) * dot
    rows = slice(max(int(top - 2 * dot), 0), min(int(np.ceil(bottom + 2 * dot)), height))
    cols = slice(max(int(centre - half), 0), min(int(np.ceil(centre + half)), width))
    inside = valid[rows, cols]
    observed = mean[rows, cols][inside]
    scores = {}
    for word, (bitmap, (first, last)) in _TEMPLATES.items():
        origin = centre - (first + last + 1) * dot / 2
        template = text_coverage(bitmap, origin, top, dot, height, width)[0, rows, cols]
        scores[word] = _ncc(observed, template[inside].astype(np.float64))
    best = max(scores, key=scores.__getitem__)
    return (best if scores[best] >= WORD_MIN_CORRELATION else None), scores[best]


def analyze_text(video: Any, layout: str | None = None) -> TextAnalysis:
    """Recognise the word, its color and the scroll direction of one clip (see module docstring).

    ``video``: uint8 or float in [0, 1], (T, H, W, 3) / (3, T, H, W). Everything is ``None`` for a
    black clip; the motion is ``None`` when the word moves less than :data:`SCROLL_MIN`.
    """
    clip = to_thwc(video, layout)
    m = measure_frames(clip)
    if not m.present.any():
        return TextAnalysis(None, None, None, 0.0, 0.0, 0.0)
    frames, height, width, _ = clip.shape
    bright = clip.max(axis=-1)  # (T, H, W)
    edges = _soft_edges(bright, m.bbox)  # (T, 4)
    inside = [m.present & (m.bbox[:, i] >= 1) for i in (0, 1)]
    inside += [m.present & (m.bbox[:, 2] <= width - 2), m.present & (m.bbox[:, 3] <= height - 2)]
    full = np.logical_and.reduce(inside)
    candidates = np.flatnonzero(full if full.any() else m.present)
    ref = int(candidates[np.argmax(m.area[candidates])])  # the frame where the word is best visible
    vx = _edge_velocity(*_true_edges(edges[:, 0], inside[0], edges[:, 2], inside[2], ref, width))
    vy = _edge_velocity(*_true_edges(edges[:, 1], inside[1], edges[:, 3], inside[3], ref, height))
    travel_x, travel_y = vx * (frames - 1) / width, vy * (frames - 1) / height
    motion = None
    if max(abs(travel_x), abs(travel_y)) >= SCROLL_MIN:
        if abs(travel_x) >= abs(travel_y):
            motion = "scrolling right" if travel_x > 0 else "scrolling left"
        else:
            motion = "scrolling down" if travel_y > 0 else "scrolling up"
    horizontal = motion is None or motion in ("scrolling left", "scrolling right")
    velocity = (vx if horizontal else vy) if motion is not None else 0.0
    shift = velocity * (np.arange(frames) - ref)
    mean, valid = _aligned_mean(bright, shift, axis=2 if horizontal else 1)
    word, score = _match_word(mean, valid, edges[ref])
    color = nearest_color(m.chroma[m.present].mean(axis=0))
    return TextAnalysis(word, color, motion, score, travel_x, travel_y)


def analyze_scene(video: Any, kind: str, layout: str | None = None) -> Any:
    """Analyze one clip as a scene of ``kind``: ``"one"`` (tier-1
    :func:`~imagen_video.world.analyze.analyze_clip`), ``"two"`` (:func:`analyze_pair`) or ``"text"``
    (:func:`analyze_text`). The result has ``matches(scene)``."""
    analyzers = {"one": analyze_clip, "two": analyze_pair, "text": analyze_text}
    if kind not in analyzers:
        raise ValueError(f"unknown scene kind {kind!r}; allowed: {', '.join(analyzers)}")
    return analyzers[kind](video, layout)


def _attribute_hits(result: Any, scene: Scene) -> dict[str, bool]:
    if isinstance(scene, PairScene):
        return {"objects": result.objects_match(scene), "motion": result.motion == scene.motion}
    if isinstance(scene, TextScene):
        return {"word": result.word == scene.word, "color": result.color == scene.color,
                "motion": result.motion == scene.motion}  # fmt: skip
    return {"color": result.color == scene.color, "shape": result.shape == scene.shape,
            "motion": result.motion == scene.motion}  # fmt: skip


def scene_accuracy(videos: Any, prompts: Sequence[Scene | str], layout: str | None = None) -> dict[str, Any]:
    """Attribute accuracy of clips against prompts of any tier (tier-2 version of
    :func:`~imagen_video.world.analyze.attribute_accuracy`).

    ``videos``: a batch (B, C, T, H, W) / (B, T, H, W, 3) or a sequence of clips; ``prompts``: one scene
    or canonical caption per clip (:func:`~imagen_video.world.tier2.parse_scene`; tier-1, pair and text
    captions may be mixed). Returns ``overall`` (fraction of clips with every attribute right),
    ``per_scene`` (``one`` / ``two`` / ``text`` -> overall accuracy, for the kinds present),
    ``attributes`` (kind -> attribute -> accuracy: tier 1 ``color`` / ``shape`` / ``motion``, pairs
    ``objects`` (both, either order) / ``motion``, text ``word`` / ``color`` / ``motion``) and
    ``per_prompt`` (caption -> overall accuracy over that prompt's clips).
    """
    clips = as_clip_list(videos, layout)
    scenes = [p if isinstance(p, (Combo, PairScene, TextScene)) else parse_scene(p) for p in prompts]
    if len(clips) != len(scenes) or not clips:
        raise ValueError(
            f"need one prompt per clip and at least one clip; got {len(clips)} clips, {len(scenes)} prompts"
        )
    hits: dict[str, list[dict[str, bool]]] = {}
    per_prompt: dict[str, list[bool]] = {}
    right = []
    for clip, scene in zip(clips, scenes, strict=True):
        kind = scene_kind(scene)
        attribute_hits = _attribute_hits(analyze_scene(clip, kind, "THWC"), scene)
        hits.setdefault(kind, []).append(attribute_hits)
        right.append(all(attribute_hits.values()))
        per_prompt.setdefault(scene.caption, []).append(right[-1])
    return {
        "overall": float(np.mean(right)),
        "per_scene": {k: float(np.mean([all(h.values()) for h in v])) for k, v in hits.items()},
        "attributes": {k: {a: float(np.mean([h[a] for h in v])) for a in v[0]} for k, v in hits.items()},
        "per_prompt": {k: float(np.mean(v)) for k, v in per_prompt.items()},
    }
