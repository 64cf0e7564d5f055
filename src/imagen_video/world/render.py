"""Antialiased numpy renderer of the synthetic world: one saturated shape on black, with a motion.

Geometry (docs/world.md, tier 1): squares axis-aligned, triangles upright (base width = height, so every
shape's bounding box is a square of side ``size``); the object starts at 25-40% of the frame height
in size, at a random position that leaves room for its motion; a moving object's centroid travels
42-60% of the frame's width (horizontal) or height (vertical) at constant speed; growing or
shrinking scales the size linearly by a factor of 1.65-1.85 (area x2.7-3.4) about a fixed centroid;
the object's bounding box stays at least a margin (max(0.5 px, 2%)) inside the frame. Coverage:
exact box filter for squares, 4x4 supersampled clipped signed distances for circles and triangles.
Everything is deterministic given the seed or numpy Generator.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from imagen_video.world.spec import Combo

SIZE_RANGE: tuple[float, float] = (0.25, 0.40)
"""Start size of the object as a fraction of the frame height (bounding-box side)."""
TRAVEL_RANGE: tuple[float, float] = (0.42, 0.60)
"""Centroid travel of a moving object as a fraction of the frame width / height."""
SCALE_RANGE: tuple[float, float] = (1.65, 1.85)
"""Linear size factor of growing / shrinking (area factor 2.72-3.42)."""
SUPERSAMPLE = 4
"""Sub-pixels per axis for circle and triangle coverage (each with a signed-distance ramp)."""
_SQRT5 = math.sqrt(5.0)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Start and end of one clip's object, resolution-free: x in units of frame width, y and size in
    units of frame height; ``(x, y)`` is the object's centroid, ``size`` its bounding-box side.
    ``aspect`` (width / height) is the frame shape it was sampled for."""

    x0: float
    y0: float
    x1: float
    y1: float
    size0: float
    size1: float
    aspect: float

    def track(self, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-frame centroid x, y and size (normalised units), linear in time (constant speed)."""
        t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
        return (
            self.x0 + (self.x1 - self.x0) * t,
            self.y0 + (self.y1 - self.y0) * t,
            self.size0 + (self.size1 - self.size0) * t,
        )

    def to_dict(self) -> dict[str, float]:
        """Plain dict of the fields (for manifest attributes), rounded to 6 decimals."""
        return {k: round(v, 6) for k, v in dataclasses.asdict(self).items()}


def _margin(length: int) -> float:
    """Distance (pixels) the bounding box keeps from the frame edge."""
    return max(0.5, 0.02 * length)


def _y_extent(shape: str, size: float) -> tuple[float, float]:
    """Bounding box above / below the centroid (upright triangle: centroid at 2/3 of the height)."""
    return (2.0 * size / 3.0, size / 3.0) if shape == "triangle" else (size / 2.0, size / 2.0)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high)) if high > low else float(low)


def _position(rng: np.random.Generator, low: float, high: float, what: str) -> float:
    if high < low - 1e-9:
        raise ValueError(f"frame too small or too narrow for {what}; use an aspect ratio near 5:3")
    return _uniform(rng, low, max(low, high))


def sample_geometry(combo: Combo, height: int, width: int, rng: np.random.Generator) -> Geometry:
    """Sample start/end centroid and size for ``combo`` in a ``height`` x ``width`` frame.

    The world's geometry: start size 25-40% of the height, travel >= 42% of the axis length for moving
    objects, area x2.72-3.42 for growing/shrinking, bounding box inside the frame throughout.
    Raises ``ValueError`` if the frame's aspect ratio leaves no room for the motion.
    """
    if height < 4 or width < 4:
        raise ValueError(f"frame must be at least 4x4 pixels, got {height}x{width}")
    mx, my = _margin(width), _margin(height)
    motion = combo.motion
    horizontal = motion in ("moving left", "moving right")
    vertical = motion in ("moving up", "moving down")
    scale = _uniform(rng, *SCALE_RANGE) if motion in ("growing", "shrinking") else 1.0
    # Largest start size that fits the motion (pixels).
    fits = [SIZE_RANGE[1] * height, (width - 2 * mx) / scale, (height - 2 * my) / scale]
    if horizontal:
        fits.append((1.0 - TRAVEL_RANGE[0]) * width - 2 * mx)
    if vertical:
        fits.append((1.0 - TRAVEL_RANGE[0]) * height - 2 * my)
    size_max = min(fits)
    if size_max < SIZE_RANGE[0] * height:
        raise ValueError(
            f"a {height}x{width} frame has no room for {combo.caption!r}; use an aspect ratio near 5:3"
        )
    size0 = _uniform(rng, SIZE_RANGE[0] * height, size_max)
    size1 = size0 * scale if motion == "growing" else size0 / scale
    big = max(size0, size1)
    up, down = _y_extent(combo.shape, big)
    dx = dy = 0.0
    if horizontal:
        travel = _uniform(rng, TRAVEL_RANGE[0] * width, min(TRAVEL_RANGE[1] * width, width - big - 2 * mx))
        dx = travel if motion == "moving right" else -travel
    if vertical:
        travel = _uniform(rng, TRAVEL_RANGE[0] * height, min(TRAVEL_RANGE[1] * height, height - big - 2 * my))
        dy = travel if motion == "moving down" else -travel
    # Start centroid such that start and end bounding boxes are both inside the margins.
    x0 = _position(rng, mx + big / 2 + max(0.0, -dx), width - mx - big / 2 - max(0.0, dx), combo.caption)
    y0 = _position(rng, my + up + max(0.0, -dy), height - my - down - max(0.0, dy), combo.caption)
    return Geometry(
        x0=x0 / width,
        y0=y0 / height,
        x1=(x0 + dx) / width,
        y1=(y0 + dy) / height,
        size0=size0 / height,
        size1=size1 / height,
        aspect=width / height,
    )


def coverage(shape: str, geometry: Geometry, frames: int, height: int, width: int) -> np.ndarray:
    """Antialiased coverage in [0, 1], float32 (T, H, W), of the object's pixels.

    Squares use the exact box-filter coverage (separable overlap of pixel and square); circles and
    triangles average ``SUPERSAMPLE`` x ``SUPERSAMPLE`` sub-pixels, each covered by
    ``clip(0.5 - d, 0, 1)`` of its signed distance ``d`` in sub-pixel units (the triangle's distance is
    the max over its three half-planes, which is accurate except within a sub-pixel of a vertex).
    """
    if abs(width / height - geometry.aspect) > 0.05 * geometry.aspect:
        raise ValueError(
            f"geometry was sampled for aspect {geometry.aspect:.3f}, cannot render {height}x{width}"
        )
    xs, ys, sizes = geometry.track(frames)
    cx = (xs * width)[:, None, None]  # (T, 1, 1) pixels
    cy = (ys * height)[:, None, None]
    size = (sizes * height)[:, None, None]
    if shape == "square":
        px = (np.arange(width, dtype=np.float64) + 0.5)[None, None, :]  # (1, 1, W) pixel centres
        py = (np.arange(height, dtype=np.float64) + 0.5)[None, :, None]  # (1, H, 1)
        half = size / 2.0
        ox = np.clip(np.minimum(px + 0.5, cx + half) - np.maximum(px - 0.5, cx - half), 0.0, 1.0)
        oy = np.clip(np.minimum(py + 0.5, cy + half) - np.maximum(py - 0.5, cy - half), 0.0, 1.0)
        return (ox * oy).astype(np.float32)  # (T, H, W)
    if shape not in ("circle", "triangle"):
        raise ValueError(f"unknown shape {shape!r}; allowed: circle, square, triangle")
    return _supersampled(shape, cx[:, 0, 0], cy[:, 0, 0], size[:, 0, 0], height, width)


def _signed_distance(
    shape: str, px: np.ndarray, py: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """Signed distance (pixels, < 0 inside) of points to a circle or upright triangle (broadcasting)."""
    if shape == "circle":
        return np.sqrt((px - cx) ** 2 + (py - cy) ** 2) - size / 2.0
    apex_y = cy - 2.0 * size / 3.0
    d_base = py - (cy + size / 3.0)
    d_left = (-2.0 * (px - cx) - (py - apex_y)) / _SQRT5
    d_right = (2.0 * (px - cx) - (py - apex_y)) / _SQRT5
    return np.maximum(np.maximum(d_left, d_right), d_base)


def _supersampled(
    shape: str, cx: np.ndarray, cy: np.ndarray, size: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Coverage (T, H, W) from SUPERSAMPLE^2 sub-pixels, evaluated only in an n x n pixel window per
    frame around the object's bounding box (n = max size + 3 covers the box and its ramp)."""
    frames, ss = len(cx), SUPERSAMPLE
    n = int(np.ceil(size.max())) + 3
    box_cy = cy - size / 6.0 if shape == "triangle" else cy  # bounding-box centre
    wx = np.floor(cx - n / 2.0).astype(np.int64)  # (T,) window origins in pixels
    wy = np.floor(box_cy - n / 2.0).astype(np.int64)
    sub = (np.arange(n * ss, dtype=np.float64) + 0.5) / ss  # (n * ss,) sub-pixel offsets
    px = (wx[:, None] + sub)[:, None, :]  # (T, 1, n * ss)
    py = (wy[:, None] + sub)[:, :, None]  # (T, n * ss, 1)
    dist = _signed_distance(shape, px, py, cx[:, None, None], cy[:, None, None], size[:, None, None])
    window = np.clip(0.5 - dist * ss, 0.0, 1.0).reshape(frames, n, ss, n, ss).mean(axis=(2, 4))  # (T, n, n)
    canvas = np.zeros((frames, height + 2 * n, width + 2 * n), dtype=np.float32)  # padded frame
    t = np.arange(frames)[:, None, None]
    rows = (wy[:, None] + n + np.arange(n))[:, :, None]  # (T, n, 1)
    cols = (wx[:, None] + n + np.arange(n))[:, None, :]  # (T, 1, n)
    canvas[t, rows, cols] = window
    return canvas[:, n : n + height, n : n + width]


def render_geometry(combo: Combo, geometry: Geometry, frames: int, height: int, width: int) -> np.ndarray:
    """Render ``combo``'s shape and color along ``geometry``: uint8 (T, H, W, 3), black background."""
    cov = coverage(combo.shape, geometry, frames, height, width)  # (T, H, W)
    rgb = np.asarray(combo.rgb, dtype=np.float32)
    return np.rint(cov[..., None] * rgb).astype(np.uint8)  # (T, H, W, 3)


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def render_clip(
    combo: Combo,
    *,
    frames: int = 16,
    height: int = 24,
    width: int = 40,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, Geometry]:
    """Render one clip of ``combo``: (uint8 (T, H, W, 3), its Geometry). Deterministic per seed.

    A still image (``combo.motion is None``) must have ``frames == 1``; a video needs ``frames >= 2``.
    """
    if combo.motion is None and frames != 1:
        raise ValueError(f"a still image has exactly 1 frame, got frames={frames}")
    if combo.motion is not None and frames < 2:
        raise ValueError(f"a video needs frames >= 2 to show {combo.motion!r}, got frames={frames}")
    geometry = sample_geometry(combo, height, width, _rng(seed))
    return render_geometry(combo, geometry, frames, height, width), geometry


def render_batch(
    combos: Sequence[Combo],
    *,
    frames: int = 16,
    height: int = 24,
    width: int = 40,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Render one clip per combo from a single seed: uint8 (B, T, H, W, 3)."""
    return render_each(render_clip, combos, frames, height, width, seed)


def render_each(
    render_one: Callable[..., tuple[np.ndarray, object]],
    items: Sequence[object],
    frames: int,
    height: int,
    width: int,
    seed: int | np.random.Generator,
) -> np.ndarray:
    """Stack ``render_one(item, ...)[0]`` of every item, all drawn from one generator seeded by
    ``seed`` (the batch renderers of every tier): uint8 (B, T, H, W, 3)."""
    rng = _rng(seed)
    clips = [render_one(item, frames=frames, height=height, width=width, seed=rng)[0] for item in items]
    return np.stack(clips) if clips else np.zeros((0, frames, height, width, 3), np.uint8)
