"""Attribute analyzer: >= 99% on rendered clips at 24x40 and above, layouts, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagen_video.world.analyze import analyze_clip, attribute_accuracy, motion_step_cv, to_thwc
from imagen_video.world.render import render_batch, render_clip
from imagen_video.world.spec import ALL_COMBOS, ALL_STILLS, DEFAULT_HOLDOUT, Combo


@pytest.mark.parametrize(
    ("size", "combos"), [((24, 40), list(ALL_COMBOS) * 3), ((48, 80), list(ALL_COMBOS[::2]))]
)
def test_recognises_all_three_attributes_on_rendered_clips(
    size: tuple[int, int], combos: list[Combo]
) -> None:
    # 324 clips at 24x40 (the analyzer's bar: >= 99%), 54 at 48x80
    videos = render_batch(combos, frames=16, height=size[0], width=size[1], seed=2024)
    result = attribute_accuracy(videos, combos)
    assert result["overall"] >= 0.99, result
    assert set(result["per_prompt"]) == {c.caption for c in combos}


def test_float_cthw_tensor_gives_the_same_answer_as_uint8() -> None:
    clip, _ = render_clip(Combo("magenta", "triangle", "shrinking"), frames=8, height=24, width=40, seed=4)
    as_tensor = torch.from_numpy(clip).permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W) in [0, 1]
    a, b = analyze_clip(clip), analyze_clip(as_tensor)
    assert (
        (a.color, a.shape, a.motion) == (b.color, b.shape, b.motion) == ("magenta", "triangle", "shrinking")
    )
    assert a.fill == pytest.approx(b.fill, rel=1e-6) and a.travel_x == pytest.approx(b.travel_x, abs=1e-6)
    batch = as_tensor.unsqueeze(0).repeat(2, 1, 1, 1, 1)  # (B, C, T, H, W)
    assert (
        attribute_accuracy(batch, [Combo("magenta", "triangle", "shrinking")] * 2, layout="CTHW")["overall"]
        == 1
    )


def test_layout_errors_and_empty_clip() -> None:
    with pytest.raises(ValueError, match="cannot tell the layout"):
        to_thwc(np.zeros((3, 4, 5, 3), np.uint8))
    assert to_thwc(np.zeros((3, 4, 5, 3), np.uint8), layout="CTHW").shape == (4, 5, 3, 3)
    with pytest.raises(ValueError, match="allowed: 'THWC', 'CTHW'"):
        to_thwc(np.zeros((2, 4, 5, 3)), layout="NHWC")
    blank = analyze_clip(np.zeros((8, 24, 40, 3), np.uint8))
    assert (blank.color, blank.shape, blank.motion) == (None, None, None)


def test_still_images_have_no_motion() -> None:
    for still in ALL_STILLS:
        image, _ = render_clip(still, frames=1, height=24, width=40, seed=9)
        result = analyze_clip(image[0])  # (H, W, 3)
        assert result.matches(still), (still, result)


def test_static_object_has_no_recognised_motion() -> None:
    image, _ = render_clip(Combo("green", "square"), frames=1, height=24, width=40, seed=0)
    frozen = np.repeat(image, 8, axis=0)  # a video that does not move
    result = analyze_clip(frozen)
    assert (result.color, result.shape, result.motion) == ("green", "square", None)


def test_accuracy_counts_wrong_prompts_and_reports_per_attribute() -> None:
    combos = list(DEFAULT_HOLDOUT)
    videos = render_batch(combos, frames=12, height=24, width=40, seed=1)
    wrong = [Combo(c.color, c.shape, "growing" if c.motion != "growing" else "shrinking") for c in combos]
    prompts = [c.caption for c in combos[:6]] + [w.caption for w in wrong[6:]]
    result = attribute_accuracy(videos, prompts)
    assert result["overall"] == pytest.approx(0.5)
    assert result["color"] == 1.0 and result["shape"] == 1.0 and result["motion"] == pytest.approx(0.5)
    assert result["per_prompt"][wrong[-1].caption] == 0.0
    with pytest.raises(ValueError, match="one prompt per clip"):
        attribute_accuracy(videos, prompts[:3])


def test_tolerates_mild_noise() -> None:
    combos = list(ALL_COMBOS)
    videos = render_batch(combos, frames=16, height=24, width=40, seed=5).astype(np.float64) / 255.0
    noisy = np.clip(videos + np.random.default_rng(0).normal(0, 0.03, videos.shape), 0, 1)
    assert attribute_accuracy(noisy, combos, layout="THWC")["overall"] >= 0.95


def test_motion_step_cv_is_zero_for_constant_speed_and_high_for_repeated_frames() -> None:
    combos = [c for c in ALL_COMBOS if c.motion.startswith("moving")][:8]
    videos = render_batch(combos, frames=32, height=48, width=80, seed=7)  # (B, T, H, W, 3) uint8
    assert motion_step_cv(videos, combos) < 0.1
    pairs = np.repeat(videos[:, ::2], 2, axis=1)  # every other frame, shown twice (frozen TSR)
    assert motion_step_cv(pairs, combos) > 0.8
    still = [Combo("red", "circle", "growing")]
    assert motion_step_cv(render_batch(still, frames=8, height=24, width=40, seed=0), still) is None
    with pytest.raises(ValueError, match="one prompt per clip"):
        motion_step_cv(videos, combos[:2])
