"""Tier-2 analyzer: >= 99% on rendered two-object clips at 24x40 and text clips at 48x80 and above,
component labelling, wrong prompts, mixed tiers, layouts and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagen_video.world.analyze_tier2 import (
    analyze_pair,
    analyze_scene,
    analyze_text,
    label_components,
    scene_accuracy,
)
from imagen_video.world.render_tier2 import render_scene, render_scenes
from imagen_video.world.spec import ALL_COMBOS, Combo
from imagen_video.world.tier2 import ALL_TEXT_SCENES, PAIR_MOTIONS, PairScene, TextScene, random_scene


def _pairs(count: int, seed: int) -> list[PairScene]:
    rng = np.random.default_rng(seed)
    return [random_scene("two", rng) for _ in range(count)]  # random naming order too


@pytest.mark.parametrize(
    ("size", "frames", "scenes"),
    [
        ((24, 40), 16, _pairs(240, 0)),  # the analyzer's bar: >= 99% at 24x40
        ((48, 80), 8, _pairs(48, 1)),
        ((48, 80), 16, list(ALL_TEXT_SCENES[::2])),  # 192: every word and motion, 3 colors each
        ((96, 160), 8, list(ALL_TEXT_SCENES[1::8])),
    ],
)
def test_recognises_rendered_tier2_clips(size: tuple[int, int], frames: int, scenes: list) -> None:
    videos = render_scenes(scenes, frames=frames, height=size[0], width=size[1], seed=2024)
    result = scene_accuracy(videos, [s.caption for s in scenes])
    assert result["overall"] >= 0.99, result["attributes"]
    kind = "two" if isinstance(scenes[0], PairScene) else "text"
    assert set(result["per_scene"]) == {kind} and set(result["per_prompt"]) == {s.caption for s in scenes}
    assert set(result["attributes"][kind]) == (
        {"objects", "motion"} if kind == "two" else {"word", "color", "motion"}
    )


def test_short_clips_and_layouts() -> None:
    scenes = [*_pairs(12, 2), *ALL_TEXT_SCENES[5::32]]
    videos = render_scenes(scenes, frames=3, height=48, width=80, seed=7)  # (B, 3, H, W, 3): ambiguous layout
    assert scene_accuracy(videos, scenes, layout="THWC")["overall"] == 1.0
    as_tensor = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 255.0  # (B, C, T, H, W) in [0, 1]
    assert scene_accuracy(as_tensor, scenes, layout="CTHW")["overall"] == 1.0
    a, b = analyze_text(videos[-1], "THWC"), analyze_text(as_tensor[-1], "CTHW")
    assert a.word == b.word and a.travel_x == pytest.approx(b.travel_x, abs=1e-6)


def test_cues_of_the_motions() -> None:
    apart = PairScene(Combo("red", "circle"), Combo("blue", "square"), "moving apart")
    together = PairScene(apart.first, apart.second, "moving together")
    gaps = [
        analyze_pair(render_scene(p, frames=8, height=24, width=40, seed=1)[0]).gap_change
        for p in (apart, together)
    ]
    assert gaps[0] >= 0.3 and gaps[1] <= -0.3
    up = analyze_pair(
        render_scene(PairScene(apart.first, apart.second, "both moving up"), frames=8, seed=1)[0]
    )
    assert up.travel_y <= -0.4 and abs(up.gap_change) < 0.01 and up.motion == "both moving up"
    text = analyze_text(
        render_scene(TextScene("HELLO", "scrolling left"), frames=8, height=48, width=80, seed=3)[0]
    )
    assert text.travel_x <= -0.4 and abs(text.travel_y) < 0.01 and text.score > 0.9


def test_wrong_prompts_count_as_errors() -> None:
    pairs = [PairScene(Combo("green", "triangle"), Combo("white", "circle"), m) for m in PAIR_MOTIONS]
    texts = [TextScene(w, "scrolling down", "blue") for w in ("CAT", "DOG", "SUN", "MOON", "HELLO", "IMAGEN")]
    videos = render_scenes(pairs, frames=8, height=24, width=40, seed=0)
    swapped = [p.swapped() for p in pairs[:3]]  # naming order does not matter
    wrong = [PairScene(p.first, Combo("white", "square"), p.motion) for p in pairs[3:]]
    result = scene_accuracy(videos, [*swapped, *wrong])
    assert result["overall"] == 0.5 and result["attributes"]["two"] == {"objects": 0.5, "motion": 1.0}
    clips = render_scenes(texts, frames=8, height=48, width=80, seed=0)
    prompts = [t.caption for t in texts[:4]] + [
        "the word WORLD in blue scrolling down",
        "the word IMAGEN scrolling up",
    ]
    result = scene_accuracy(clips, prompts)
    assert result["overall"] == pytest.approx(4 / 6)
    assert result["attributes"]["text"] == pytest.approx({"word": 5 / 6, "color": 5 / 6, "motion": 5 / 6})
    with pytest.raises(ValueError, match="one prompt per clip"):
        scene_accuracy(clips, prompts[:2])


def test_mixed_tiers_in_one_call() -> None:
    scenes = [ALL_COMBOS[0], ALL_COMBOS[50], *_pairs(2, 3), ALL_TEXT_SCENES[10], ALL_TEXT_SCENES[200]]
    videos = render_scenes(scenes, frames=8, height=48, width=80, seed=4)
    result = scene_accuracy(videos, [s.caption for s in scenes])
    assert result["overall"] == 1.0 and result["per_scene"] == {"one": 1.0, "two": 1.0, "text": 1.0}
    assert set(result["attributes"]["one"]) == {"color", "shape", "motion"}
    with pytest.raises(ValueError, match="allowed: one, two, text"):
        analyze_scene(videos[0], "three")


def test_blank_and_single_object_clips() -> None:
    blank = np.zeros((6, 48, 80, 3), np.uint8)
    pair, text = analyze_pair(blank), analyze_text(blank)
    assert pair.objects == ((None, None), (None, None)) and pair.motion is None
    assert (text.word, text.color, text.motion) == (None, None, None)
    single, _ = render_scene(Combo("red", "circle", "moving left"), frames=6, seed=0)
    assert analyze_pair(single).objects == ((None, None), (None, None))  # only one object: nothing to pair
    ends, _ = render_scene(TextScene("STAR", "scrolling up"), frames=2, height=48, width=80, seed=0)
    full = int(np.argmax(ends.sum(axis=(1, 2, 3))))  # the end where the word is fully visible
    frozen = analyze_text(np.repeat(ends[full : full + 1], 6, axis=0))
    assert frozen.word == "STAR" and frozen.motion is None  # a word that does not scroll


def test_tolerates_mild_noise() -> None:
    scenes = [*_pairs(24, 5), *ALL_TEXT_SCENES[3::16]]
    videos = render_scenes(scenes, frames=8, height=48, width=80, seed=5).astype(np.float64) / 255.0
    noisy = np.clip(videos + np.random.default_rng(0).normal(0, 0.03, videos.shape), 0, 1)
    assert scene_accuracy(noisy, scenes, layout="THWC")["overall"] >= 0.95


def test_label_components_matches_a_reference_labelling() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    masks = rng.random((4, 30, 50)) < np.array([0.3, 0.45, 0.55, 0.7])[:, None, None]
    labels = label_components(masks)
    for mask, lab in zip(masks, labels, strict=True):
        reference, count = ndimage.label(mask, structure=np.ones((3, 3)))
        assert len(np.unique(lab[mask])) == count and (lab[~mask] == 0).all()
        pairs = np.unique(np.stack([lab[mask], reference[mask]]), axis=1)  # same partition: a bijection
        assert pairs.shape[1] == count
    spiral = np.zeros((1, 9, 9), bool)  # one long winding component
    spiral[0, 0, :] = spiral[0, :, 8] = spiral[0, 8, :] = spiral[0, 2:, 0] = spiral[0, 2, :7] = True
    assert len(np.unique(label_components(spiral)[spiral])) == 1
    assert (label_components(np.zeros((2, 5, 5), bool)) == 0).all()
