"""Renderer: determinism, pure colors, antialiasing and the geometry of docs/world.md, from the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from imagen_video.world.analyze import measure_frames, to_thwc
from imagen_video.world.render import render_batch, render_clip, render_geometry, sample_geometry
from imagen_video.world.spec import ALL_COMBOS, ALL_STILLS, Combo


def _clips(motion: str, size: tuple[int, int], count: int, seed: int) -> list[tuple[Combo, np.ndarray]]:
    combos = [c for c in ALL_COMBOS if c.motion == motion]
    rng = np.random.default_rng(seed)
    return [
        (c, render_clip(c, frames=12, height=size[0], width=size[1], seed=rng)[0])
        for c in (combos * count)[:count]
    ]


def test_deterministic_per_seed() -> None:
    combo = Combo("green", "triangle", "moving up")
    a, geo_a = render_clip(combo, frames=8, height=24, width=40, seed=5)
    b, geo_b = render_clip(combo, frames=8, height=24, width=40, seed=5)
    c, _ = render_clip(combo, frames=8, height=24, width=40, seed=6)
    assert a.dtype == np.uint8 and a.shape == (8, 24, 40, 3)
    assert np.array_equal(a, b) and geo_a == geo_b
    assert not np.array_equal(a, c)
    batch = render_batch(ALL_COMBOS[:5], frames=4, height=12, width=20, seed=3)
    assert batch.shape == (5, 4, 12, 20, 3)
    assert np.array_equal(batch, render_batch(ALL_COMBOS[:5], frames=4, height=12, width=20, seed=3))


def test_pure_colors_and_antialiasing() -> None:
    for combo in ALL_COMBOS[::6]:
        clip, _ = render_clip(combo, frames=4, height=48, width=80, seed=1)
        rgb = np.array(combo.rgb)
        assert (clip[..., rgb == 0] == 0).all()  # channels off in the color are never lit
        on = clip[..., rgb == 255]
        assert (on == 255).all(axis=-1).sum() > 50  # interior pixels carry the exact pure color
        assert ((on > 0) & (on < 255)).any()  # antialiased edge pixels
        background = clip.max(axis=-1) == 0
        assert background.mean() > 0.5  # black background


def test_still_images_and_frame_count_checks() -> None:
    image, geometry = render_clip(ALL_STILLS[0], frames=1, height=24, width=40, seed=0)
    assert image.shape == (1, 24, 40, 3) and geometry.size0 == geometry.size1
    with pytest.raises(ValueError, match="exactly 1 frame"):
        render_clip(ALL_STILLS[0], frames=4)
    with pytest.raises(ValueError, match="frames >= 2"):
        render_clip(ALL_COMBOS[0], frames=1)
    with pytest.raises(ValueError, match="no room"):
        render_clip(Combo("red", "circle", "moving left"), height=80, width=20)


@pytest.mark.parametrize("size", [(24, 40), (48, 80), (12, 20)])
def test_moving_centroid_travels_at_least_40_percent_at_constant_speed(size: tuple[int, int]) -> None:
    for motion, axis in (
        ("moving left", "cx"),
        ("moving right", "cx"),
        ("moving up", "cy"),
        ("moving down", "cy"),
    ):
        for combo, clip in _clips(motion, size, 15, seed=len(motion)):
            m = measure_frames(to_thwc(clip))
            track = getattr(m, axis)
            travel = track[-1] - track[0]
            assert abs(travel) >= 0.40, (combo, travel)
            assert np.sign(travel) == (1 if motion in ("moving right", "moving down") else -1)
            steps = np.diff(track)
            assert np.allclose(steps, steps.mean(), atol=0.02)  # constant speed (antialiased centroid)
            other = m.cy if axis == "cx" else m.cx
            assert np.ptp(other) < 0.02
            area = clip.max(axis=-1).sum(axis=(1, 2)) / 255.0  # (T,) coverage area
            assert np.ptp(area) / area.mean() < 0.03  # size constant while moving


@pytest.mark.parametrize("size", [(24, 40), (48, 80)])
def test_growing_and_shrinking_change_area_at_least_2_5x(size: tuple[int, int]) -> None:
    for motion in ("growing", "shrinking"):
        for combo, clip in _clips(motion, size, 18, seed=3):
            m = measure_frames(to_thwc(clip))
            ratio = m.area[-1] / m.area[0]
            assert (ratio if motion == "growing" else 1 / ratio) >= 2.5, (combo, ratio)
            assert np.all(np.diff(m.area) > 0) if motion == "growing" else np.all(np.diff(m.area) < 0)
            assert np.ptp(m.cx) < 0.02 and np.ptp(m.cy) < 0.02  # scales about a fixed centroid


def test_start_size_and_object_stays_inside_the_frame() -> None:
    rng = np.random.default_rng(11)
    for combo in ALL_COMBOS:
        clip, _ = render_clip(combo, frames=8, height=48, width=80, seed=rng)
        cov = clip.max(axis=-1).astype(np.float64) / 255.0  # (T, H, W) coverage
        height0 = cov[0].max(axis=1).sum() / 48  # soft bounding-box height in frame heights
        assert 0.25 - 0.02 <= height0 <= 0.40 + 0.02, (combo, height0)
        mask = cov > 0.5
        border = mask[:, 0, :].any() or mask[:, -1, :].any() or mask[:, :, 0].any() or mask[:, :, -1].any()
        assert not border, combo
        if combo.shape == "square":  # exact box-filter coverage: area = side^2 in every frame (no clipping)
            geometry = sample_geometry(combo, 48, 80, np.random.default_rng(0))
            full = render_geometry(combo, geometry, 8, 48, 80).max(axis=-1) / 255.0
            sides = np.array(geometry.track(8)[2]) * 48
            assert np.allclose(full.sum(axis=(1, 2)), sides**2, rtol=0.01)
