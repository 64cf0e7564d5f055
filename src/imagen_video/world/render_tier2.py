"""Antialiased numpy renderer of tier-2 scenes: two objects, and a scrolling word (docs/world.md, tier 2).

Two objects (:class:`~imagen_video.world.tier2.PairScene`): each is a tier-1 shape drawn by
:func:`imagen_video.world.render.coverage` along its own :class:`~imagen_video.world.render.Geometry`
(constant size, 25-34% of the frame height). They stand side by side: their bounding boxes are at
least ``max(2 px, 5% of the width)`` apart horizontally at every frame, so they never overlap.
``moving apart`` / ``moving together``: both centroids on one horizontal line, moving symmetrically
in opposite directions at constant speed; the centroid gap changes by 32-45% of the frame width.
``both moving ...``: both move by the same tier-1 displacement (42-60% of the width / height).

Text (:class:`~imagen_video.world.tier2.TextScene`): the word in the 5x7 font
(:mod:`~imagen_video.world.font`, exact box-filter coverage), letters 30-40% of the frame height
(less for a long word that would not fit the width), scrolling at constant speed by 42-60% of the
frame width / height. The word is fully inside the frame at the first or the last frame, and at
least half of it is visible in every frame (it may overflow the frame while it scrolls).

Every bounding box keeps tier 1's margin (max(0.5 px, 2%)) from the frame edge wherever it is
required to be inside. Deterministic given the seed or numpy Generator; any resolution and frame count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from imagen_video.world.font import GLYPH_ROWS, text_coverage, word_bitmap
from imagen_video.world.render import (
    TRAVEL_RANGE,
    Geometry,
    _margin,
    _position,
    _rng,
    _uniform,
    _y_extent,
    coverage,
    render_clip,
    render_each,
)
from imagen_video.world.spec import Combo
from imagen_video.world.tier2 import PairScene, Scene, TextScene

PAIR_SIZE_RANGE: tuple[float, float] = (0.25, 0.34)
"""Size (bounding-box side) of each of the two objects, fraction of the frame height."""
GAP_CHANGE_RANGE: tuple[float, float] = (0.32, 0.45)
"""Change of the centroid gap of ``moving apart`` / ``moving together``, fraction of the frame width."""
CLEARANCE = 0.05
"""Least horizontal gap between the two bounding boxes: max(2 px, this fraction of the width)."""
TEXT_HEIGHT_RANGE: tuple[float, float] = (0.30, 0.40)
"""Letter height (7 dots), fraction of the frame height."""
TEXT_MIN_HEIGHT = 0.15
"""Smallest letter height (fraction of the frame height) a long word may shrink to so it fits the width."""


@dataclasses.dataclass(frozen=True)
class PairGeometry:
    """Tier-1 geometries of the two objects of a pair, in caption order."""

    first: Geometry
    second: Geometry

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{"first": {...}, "second": {...}}`` (for manifest attributes), rounded to 6 decimals."""
        return {"first": self.first.to_dict(), "second": self.second.to_dict()}


@dataclasses.dataclass(frozen=True)
class TextGeometry:
    """Start and end centre of the word's dot box (x in frame widths, y in frame heights), its letter
    height ``height`` (frame heights) and the ``aspect`` (width / height) it was sampled for."""

    x0: float
    y0: float
    x1: float
    y1: float
    height: float
    aspect: float

    def track(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame centre x, y (normalised units), linear in time (constant speed)."""
        t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
        return self.x0 + (self.x1 - self.x0) * t, self.y0 + (self.y1 - self.y0) * t

    def to_dict(self) -> dict[str, float]:
        """Plain dict of the fields (for manifest attributes), rounded to 6 decimals."""
        return {k: round(v, 6) for k, v in dataclasses.asdict(self).items()}


def _no_room(scene: Scene, height: int, width: int) -> ValueError:
    return ValueError(
        f"a {height}x{width} frame has no room for {scene.caption!r}; use an aspect ratio near 5:3"
    )


def _pair_sizes(scene: PairScene, height: int, width: int, rng: np.random.Generator) -> tuple[float, float]:
    """Object sizes (pixels) that leave room for the motion, the clearance and the margins."""
    mx, my = _margin(width), _margin(height)
    gap = max(2.0, CLEARANCE * width)
    room = width - 2 * mx - gap  # both boxes side by side
    if scene.motion in ("moving apart", "moving together"):
        room -= GAP_CHANGE_RANGE[0] * width
    elif scene.motion in ("both moving left", "both moving right"):
        room -= TRAVEL_RANGE[0] * width
    tall = height - 2 * my
    if scene.motion in ("both moving up", "both moving down"):
        tall -= TRAVEL_RANGE[0] * height
    high = min(PAIR_SIZE_RANGE[1] * height, room / 2, tall)
    if high < PAIR_SIZE_RANGE[0] * height:
        raise _no_room(scene, height, width)
    return _uniform(rng, PAIR_SIZE_RANGE[0] * height, high), _uniform(rng, PAIR_SIZE_RANGE[0] * height, high)


def sample_pair_geometry(scene: PairScene, height: int, width: int, rng: np.random.Generator) -> PairGeometry:
    """Sample both objects' tracks for ``scene`` in a ``height`` x ``width`` frame (see module docstring).

    Which object is on the left is random. Raises ``ValueError`` if the frame leaves no room.
    """
    if height < 4 or width < 4:
        raise ValueError(f"frame must be at least 4x4 pixels, got {height}x{width}")
    mx, my = _margin(width), _margin(height)
    gap = max(2.0, CLEARANCE * width)
    sizes = _pair_sizes(scene, height, width, rng)
    objects = (scene.first, scene.second)
    left = int(rng.integers(2))  # index (in caption order) of the object on the left
    order = (left, 1 - left)
    s_l, s_r = sizes[order[0]], sizes[order[1]]
    extents = [_y_extent(objects[i].shape, sizes[i]) for i in order]  # (up, down) of left, right
    if scene.motion in ("moving apart", "moving together"):
        g_min = (s_l + s_r) / 2 + gap  # centroid gap when the boxes are `gap` apart
        g_max = width - 2 * mx - (s_l + s_r) / 2  # both boxes touch the margins
        change = _uniform(rng, GAP_CHANGE_RANGE[0] * width, min(GAP_CHANGE_RANGE[1] * width, g_max - g_min))
        small = _uniform(rng, g_min, g_max - change)
        big = small + change
        xc = _position(rng, mx + big / 2 + s_l / 2, width - mx - big / 2 - s_r / 2, scene.caption)
        yc = _position(
            rng, my + max(e[0] for e in extents), height - my - max(e[1] for e in extents), scene.caption
        )
        g0, g1 = (small, big) if scene.motion == "moving apart" else (big, small)
        starts = [(xc - g0 / 2, yc), (xc + g0 / 2, yc)]
        ends = [(xc - g1 / 2, yc), (xc + g1 / 2, yc)]
    else:
        direction = scene.motion.removeprefix("both ")
        dx = dy = 0.0
        if direction in ("moving left", "moving right"):
            travel = _uniform(
                rng, TRAVEL_RANGE[0] * width, min(TRAVEL_RANGE[1] * width, width - 2 * mx - s_l - s_r - gap)
            )
            dx = travel if direction == "moving right" else -travel
        else:
            travel = _uniform(
                rng, TRAVEL_RANGE[0] * height, min(TRAVEL_RANGE[1] * height, height - 2 * my - max(s_l, s_r))
            )
            dy = travel if direction == "moving down" else -travel
        box_gap = _uniform(rng, gap, width - 2 * mx - s_l - s_r - abs(dx))
        span = s_l + box_gap + s_r
        x_left = _position(rng, mx + max(0.0, -dx), width - mx - span - max(0.0, dx), scene.caption)
        xs = (x_left + s_l / 2, x_left + s_l + box_gap + s_r / 2)
        ys = [
            _position(rng, my + up + max(0.0, -dy), height - my - down - max(0.0, dy), scene.caption)
            for up, down in extents
        ]
        starts = [(xs[k], ys[k]) for k in range(2)]
        ends = [(xs[k] + dx, ys[k] + dy) for k in range(2)]
    made = {
        index: Geometry(
            starts[k][0] / width,
            starts[k][1] / height,
            ends[k][0] / width,
            ends[k][1] / height,
            sizes[index] / height,
            sizes[index] / height,
            aspect=width / height,
        )
        for k, index in enumerate(order)
    }
    return PairGeometry(first=made[0], second=made[1])


def render_pair_geometry(
    scene: PairScene, geometry: PairGeometry, frames: int, height: int, width: int
) -> np.ndarray:
    """Render both objects of ``scene`` along ``geometry``: uint8 (T, H, W, 3), black background."""
    image = np.zeros((frames, height, width, 3), dtype=np.float32)
    for obj, geo in ((scene.first, geometry.first), (scene.second, geometry.second)):
        cov = coverage(obj.shape, geo, frames, height, width)  # (T, H, W)
        image += cov[..., None] * np.asarray(obj.rgb, dtype=np.float32)
    return np.rint(np.clip(image, 0.0, 255.0)).astype(np.uint8)


def sample_text_geometry(scene: TextScene, height: int, width: int, rng: np.random.Generator) -> TextGeometry:
    """Sample the scrolling word's letter height and centre track (see module docstring).

    Raises ``ValueError`` if the frame is too narrow for the word at the smallest letter height.
    """
    if height < 4 or width < 4:
        raise ValueError(f"frame must be at least 4x4 pixels, got {height}x{width}")
    mx, my = _margin(width), _margin(height)
    cols = word_bitmap(scene.word).shape[1]
    fits = (width - 2 * mx) * GLYPH_ROWS / cols  # largest letter height whose word fits the width
    high = min(TEXT_HEIGHT_RANGE[1] * height, fits, height - 2 * my)
    if high < TEXT_MIN_HEIGHT * height:
        raise _no_room(scene, height, width)
    letters = _uniform(rng, min(TEXT_HEIGHT_RANGE[0] * height, high), high)
    box_w, box_h = letters * cols / GLYPH_ROWS, letters
    horizontal = scene.motion in ("scrolling left", "scrolling right")
    length, margin, extent = (width, mx, box_w) if horizontal else (height, my, box_h)
    sign = 1.0 if scene.motion in ("scrolling right", "scrolling down") else -1.0
    travel = _uniform(
        rng, TRAVEL_RANGE[0] * length, min(TRAVEL_RANGE[1] * length, length - 2 * margin - extent / 2)
    )
    anchor_first = bool(rng.random() < 0.5)  # fully visible at the first (else the last) frame
    step = sign * travel if anchor_first else -sign * travel  # other end = anchor + step
    anchor = _position(
        rng,
        max(margin + extent / 2, margin - step),
        min(length - margin - extent / 2, length - margin - step),
        scene.caption,
    )
    start, end = (anchor, anchor + step) if anchor_first else (anchor + step, anchor)
    length_p, margin_p, extent_p = (height, my, box_h) if horizontal else (width, mx, box_w)
    across = _position(rng, margin_p + extent_p / 2, length_p - margin_p - extent_p / 2, scene.caption)
    (x0, x1), (y0, y1) = ((start, end), (across, across)) if horizontal else ((across, across), (start, end))
    return TextGeometry(x0 / width, y0 / height, x1 / width, y1 / height, letters / height, width / height)


def render_text_geometry(
    scene: TextScene, geometry: TextGeometry, frames: int, height: int, width: int
) -> np.ndarray:
    """Render the word of ``scene`` along ``geometry``: uint8 (T, H, W, 3), black background."""
    if abs(width / height - geometry.aspect) > 0.05 * geometry.aspect:
        raise ValueError(
            f"geometry was sampled for aspect {geometry.aspect:.3f}, cannot render {height}x{width}"
        )
    bitmap = word_bitmap(scene.word)
    dot = geometry.height * height / GLYPH_ROWS
    xs, ys = geometry.track(frames)
    left = xs * width - bitmap.shape[1] * dot / 2
    top = ys * height - GLYPH_ROWS * dot / 2
    cov = text_coverage(bitmap, left, top, dot, height, width)  # (T, H, W)
    return np.rint(cov[..., None] * np.asarray(scene.rgb, dtype=np.float32)).astype(np.uint8)


def render_scene(
    scene: Scene,
    *,
    frames: int = 16,
    height: int = 24,
    width: int = 40,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, Geometry | PairGeometry | TextGeometry]:
    """Render one clip of any scene (tier 1 via :func:`~imagen_video.world.render.render_clip`):
    (uint8 (T, H, W, 3), its geometry). Deterministic per seed; tier-2 scenes need ``frames >= 2``."""
    if isinstance(scene, Combo):
        return render_clip(scene, frames=frames, height=height, width=width, seed=seed)
    if frames < 2:
        raise ValueError(f"a video needs frames >= 2 to show {scene.motion!r}, got frames={frames}")
    rng = _rng(seed)
    if isinstance(scene, PairScene):
        pair = sample_pair_geometry(scene, height, width, rng)
        return render_pair_geometry(scene, pair, frames, height, width), pair
    if isinstance(scene, TextScene):
        text = sample_text_geometry(scene, height, width, rng)
        return render_text_geometry(scene, text, frames, height, width), text
    raise TypeError(f"not a world scene: {scene!r}")


def render_scenes(
    scenes: Sequence[Scene],
    *,
    frames: int = 16,
    height: int = 24,
    width: int = 40,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Render one clip per scene (any tier) from a single seed: uint8 (B, T, H, W, 3)."""
    return render_each(render_scene, scenes, frames, height, width, seed)
