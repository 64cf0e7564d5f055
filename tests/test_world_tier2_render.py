"""Tier-2 renderer: determinism, no overlap, gap change, scroll distance and exact text coverage."""

from __future__ import annotations

import numpy as np
import pytest

from imagen_video.world.analyze_tier2 import label_components
from imagen_video.world.font import GLYPH_ROWS, text_coverage, word_bitmap
from imagen_video.world.render import render_clip
from imagen_video.world.render_tier2 import (
    render_pair_geometry,
    render_scene,
    render_scenes,
    render_text_geometry,
    sample_pair_geometry,
    sample_text_geometry,
)
from imagen_video.world.spec import ALL_COMBOS, Combo
from imagen_video.world.tier2 import (
    ALL_PAIR_SCENES,
    ALL_TEXT_SCENES,
    PAIR_MOTIONS,
    TEXT_MOTIONS,
    WORDS,
    PairScene,
    TextScene,
)

PAIR = PairScene(Combo("red", "circle"), Combo("blue", "square"), "moving apart")
TEXT = TextScene("HELLO", "scrolling left")


def _pairs(motion: str, count: int) -> list[PairScene]:
    return [p for p in ALL_PAIR_SCENES if p.motion == motion][::7][:count]


def test_deterministic_per_seed_any_size_and_frame_count() -> None:
    for scene in (PAIR, TEXT):
        a, geo_a = render_scene(scene, frames=8, height=48, width=80, seed=5)
        b, geo_b = render_scene(scene, frames=8, height=48, width=80, seed=5)
        c, _ = render_scene(scene, frames=8, height=48, width=80, seed=6)
        assert a.dtype == np.uint8 and a.shape == (8, 48, 80, 3)
        assert np.array_equal(a, b) and geo_a == geo_b and not np.array_equal(a, c)
        assert render_scene(scene, frames=2, height=30, width=50, seed=1)[0].shape == (2, 30, 50, 3)
    batch = render_scenes([PAIR, TEXT, ALL_COMBOS[0]], frames=4, height=24, width=40, seed=3)
    assert batch.shape == (3, 4, 24, 40, 3)
    assert np.array_equal(
        batch, render_scenes([PAIR, TEXT, ALL_COMBOS[0]], frames=4, seed=3, height=24, width=40)
    )
    tier1, _ = render_scene(ALL_COMBOS[5], frames=6, seed=2)  # tier 1 goes through render_clip unchanged
    assert np.array_equal(tier1, render_clip(ALL_COMBOS[5], frames=6, seed=2)[0])
    with pytest.raises(ValueError, match="frames >= 2"):
        render_scene(TEXT, frames=1)
    with pytest.raises(ValueError, match="no room"):
        render_scene(PairScene(PAIR.first, PAIR.second, "both moving left"), height=64, width=40)
    with pytest.raises(ValueError, match="no room"):
        render_scene(TextScene("IMAGEN", "scrolling up"), height=80, width=40)


def test_pure_colors_and_antialiasing() -> None:
    for scene in (PAIR, TextScene("WORLD", "scrolling down", "magenta")):
        clip, _ = render_scene(scene, frames=4, height=48, width=80, seed=1)
        used = [PAIR.first.rgb, PAIR.second.rgb] if scene is PAIR else [scene.rgb]
        off = np.ones(3, bool)
        for rgb in used:
            off &= np.array(rgb) == 0
        assert (clip[..., off] == 0).all()  # channels no object uses are never lit
        assert (clip.max(axis=-1) == 255).sum() > 100 and ((clip > 0) & (clip < 255)).any()
        assert (clip.max(axis=-1) == 0).mean() > 0.5  # black background


@pytest.mark.parametrize("size", [(24, 40), (48, 80)])
def test_two_objects_never_overlap_and_move_as_captioned(size: tuple[int, int]) -> None:
    height, width = size
    rng = np.random.default_rng(sum(size))
    for motion in PAIR_MOTIONS:
        for scene in _pairs(motion, 12):
            clip, geometry = render_scene(scene, frames=12, height=height, width=width, seed=rng)
            cov = clip.max(axis=-1) / 255.0  # (T, H, W)
            labels = label_components(cov > 0)  # even the faintest antialiased pixels stay apart
            assert all(len(np.unique(frame[frame > 0])) == 2 for frame in labels), scene
            xs = np.arange(width) + 0.5
            ys = np.arange(height) + 0.5
            cx, cy = [], []
            for frame, lab in zip(cov, labels, strict=True):
                ids = np.unique(lab[lab > 0])
                mass = [np.where(lab == i, frame, 0.0) for i in ids]
                cx.append(sorted(m.sum(axis=0) @ xs / m.sum() / width for m in mass))
                cy.append([m.sum(axis=1) @ ys / m.sum() / height for m in mass])
            cx, cy = np.array(cx), np.array(cy)  # (T, 2): left, right
            gap, mid = cx[:, 1] - cx[:, 0], cx.mean(axis=1)
            if motion in ("moving apart", "moving together"):
                change = gap[-1] - gap[0]
                assert (change >= 0.30) if motion == "moving apart" else (change <= -0.30), (scene, change)
                assert np.allclose(np.diff(gap), np.diff(gap).mean(), atol=0.01)  # constant speed
                assert np.ptp(mid) < 0.01 and np.ptp(cy) < 0.02  # symmetric, along a horizontal line
                assert abs(geometry.first.y0 - geometry.second.y0) < 1e-12
            else:
                track = mid if motion in ("both moving left", "both moving right") else cy.mean(axis=1)
                travel = track[-1] - track[0]
                assert abs(travel) >= 0.40 and np.sign(travel) == (
                    1 if motion.endswith(("right", "down")) else -1
                )
                assert np.ptp(gap) < 0.01 and np.allclose(np.diff(track), np.diff(track).mean(), atol=0.01)


def test_pair_geometry_clearance_and_sizes() -> None:
    rng = np.random.default_rng(0)
    for scene in ALL_PAIR_SCENES[::9]:
        geometry = sample_pair_geometry(scene, 24, 40, rng)
        for t in np.linspace(0.0, 1.0, 9):
            boxes = []
            for geo in (geometry.first, geometry.second):
                x = (geo.x0 + (geo.x1 - geo.x0) * t) * 40
                boxes.append((x - geo.size0 * 12, x + geo.size0 * 12))  # half size in pixels (size * 24 / 2)
                assert 0.25 <= geo.size0 == geo.size1 <= 0.34
            (l0, r0), (l1, r1) = sorted(boxes)
            assert l1 - r0 >= 2.0 - 1e-9 and l0 >= 0.8 - 1e-9 and r1 <= 40 - 0.8 + 1e-9  # clearance, margins
    sides = {sample_pair_geometry(PAIR, 24, 40, np.random.default_rng(s)).first.x0 < 0.5 for s in range(20)}
    assert sides == {True, False}  # either object may be on the left
    clip = render_pair_geometry(PAIR, geometry, 3, 48, 80)  # resolution-free geometry
    assert clip.shape == (3, 48, 80, 3)


@pytest.mark.parametrize("size", [(48, 80), (96, 160)])
def test_text_scrolls_rigidly_by_at_least_40_percent(size: tuple[int, int]) -> None:
    height, width = size
    rng = np.random.default_rng(height)
    for scene in ALL_TEXT_SCENES[::5]:
        clip, geometry = render_scene(scene, frames=10, height=height, width=width, seed=rng)
        horizontal = scene.motion in ("scrolling left", "scrolling right")
        xs, ys = geometry.track(10)
        along, length = (xs * width, width) if horizontal else (ys * height, height)
        travel = along[-1] - along[0]
        assert abs(travel) >= 0.40 * length and np.sign(travel) == (
            1 if scene.motion.endswith(("right", "down")) else -1
        )
        bitmap = word_bitmap(scene.word)
        dot = geometry.height * height / GLYPH_ROWS
        extent = dot * (bitmap.shape[1] if horizontal else GLYPH_ROWS)
        inside = (along - extent / 2 >= 0.5) & (along + extent / 2 <= length - 0.5)  # whole box in the frame
        assert inside[0] or inside[-1], scene  # fully visible at the first or the last frame
        assert ((along >= 0) & (along <= length)).all()  # at least half of the word in every frame
        cov = clip.max(axis=-1).astype(np.float64) / 255.0  # (T, H, W)
        area = cov.sum(axis=(1, 2))
        assert np.allclose(area[inside], bitmap.sum() * dot**2, rtol=0.01)  # every dot drawn, exact area
        axis = 2 if horizontal else 1
        centroid = (cov[inside].sum(axis=3 - axis) @ (np.arange(length) + 0.5)) / area[inside]
        assert np.allclose(centroid - centroid[0], along[inside] - along[inside][0], atol=0.05)  # rigid
        across = (cov[inside].sum(axis=axis) @ (np.arange(cov.shape[3 - axis]) + 0.5)) / area[inside]
        assert np.ptp(across) < 0.05


def test_text_coverage_is_exact_area_and_letters_are_large() -> None:
    for word in ("CAT", "HELLO", "IMAGEN"):
        bitmap = word_bitmap(word)
        for dot, left, top in ((2.3, 5.37, 4.81), (1.0, 3.0, 2.0), (3.71, 0.5, 10.25)):
            cov = text_coverage(bitmap, np.array([left]), np.array([top]), dot, 48, 160)
            assert cov.max() <= 1.0 + 1e-6
            assert cov.sum() == pytest.approx(bitmap.sum() * dot**2, rel=1e-5)  # box filter: exact ink area
        crisp = text_coverage(bitmap, np.array([4.0]), np.array([3.0]), 2.0, 24, 100)[0]
        expected = np.zeros((24, 100))
        expected[3:17, 4 : 4 + 2 * bitmap.shape[1]] = np.kron(bitmap, np.ones((2, 2)))
        assert np.array_equal(crisp, expected)  # integer-aligned 2 px dots are crisp 2x2 blocks
    rng = np.random.default_rng(1)
    for word in WORDS:
        for motion in TEXT_MOTIONS:
            geometry = sample_text_geometry(TextScene(word, motion), 48, 80, rng)
            letters = geometry.height * 48
            assert letters >= 0.30 * 48 - 1e-9, (word, letters)  # >= 2 px per dot: legible
            assert letters / GLYPH_ROWS * word_bitmap(word).shape[1] <= 80 - 2 * 1.6 + 1e-9  # fits the width
    clip = render_text_geometry(TEXT, geometry, 2, 96, 160)
    assert clip.shape == (2, 96, 160, 3)
