"""Tier-2 vocabulary: pair and text scenes, canonical captions, parsing, paraphrases, attributes."""

from __future__ import annotations

import numpy as np
import pytest

from imagen_video.world.font import GLYPHS, ink_columns, word_bitmap
from imagen_video.world.spec import ALL_COMBOS, ALL_STILLS, COLORS, Combo, paraphrase
from imagen_video.world.tier2 import (
    ALL_PAIR_SCENES,
    ALL_TEXT_SCENES,
    PAIR_MOTIONS,
    TEXT_MOTIONS,
    WORDS,
    PairScene,
    TextScene,
    all_scene_paraphrases,
    parse_pair,
    parse_scene,
    parse_text,
    random_scene,
    scene_attributes,
    scene_from_attributes,
    scene_kind,
    scene_paraphrase,
)


def test_canonical_captions_of_the_issue() -> None:
    pair = PairScene(Combo("red", "circle"), Combo("blue", "square"), "moving apart")
    assert pair.caption == "a red circle and a blue square moving apart"
    assert TextScene("HELLO", "scrolling left").caption == "the word HELLO scrolling left"
    assert TextScene("HELLO", "scrolling left", "red").caption == "the word HELLO in red scrolling left"
    assert pair.swapped().caption == "a blue square and a red circle moving apart"
    assert pair.same_scene(pair.swapped()) and pair.swapped() != pair
    assert not pair.same_scene(PairScene(pair.first, pair.second, "moving together"))


def test_vocabulary_and_enumerations() -> None:
    assert {"moving apart", "moving together", "both moving up"} <= set(PAIR_MOTIONS)
    assert set(TEXT_MOTIONS) == {"scrolling left", "scrolling right", "scrolling up", "scrolling down"}
    assert {"HELLO", "VIDEO", "IMAGEN", "WORLD", "CAT", "DOG", "SUN"} <= set(WORDS)
    assert all(3 <= len(w) <= 6 and w.isalpha() and w.isupper() for w in WORDS)
    # 18 objects, pairs of distinct colors: C(18, 2) - 6 * C(3, 2) = 135, times 6 motions
    assert len(ALL_PAIR_SCENES) == 810 == len({p.caption for p in ALL_PAIR_SCENES})
    assert all(p.first.color != p.second.color for p in ALL_PAIR_SCENES)
    assert len(ALL_TEXT_SCENES) == len(WORDS) * 4 * len(COLORS) == len({t.caption for t in ALL_TEXT_SCENES})


def test_every_caption_round_trips_through_parse_scene() -> None:
    for scene in (*ALL_PAIR_SCENES, *ALL_TEXT_SCENES, *ALL_COMBOS, *ALL_STILLS):
        assert parse_scene(scene.caption) == scene
    for pair in ALL_PAIR_SCENES[::7]:
        assert parse_pair(pair.swapped().caption) == pair.swapped()
    assert parse_text("  The Word hello  IN White scrolling_left") == TextScene("HELLO", "scrolling left")
    assert parse_scene("A Red Circle and a BLUE square both moving-up") == PairScene(
        Combo("red", "circle"), Combo("blue", "square"), "both moving up"
    )


@pytest.mark.parametrize(
    ("caption", "names"),
    [
        ("a red circle and a red square moving apart", ["distinct colors", "red"]),
        ("a red circle and a blue hexagon moving apart", ["hexagon", "circle, square, triangle"]),
        ("a red circle and a blue square spinning", ["spinning", "moving apart", "both moving up"]),
        ("the word HOUSE scrolling left", ["HOUSE", "HELLO", "IMAGEN"]),
        ("the word HELLO in pink scrolling left", ["pink", "magenta"]),
        ("the word HELLO growing", ["growing", "scrolling left"]),
        ("the word", ["the word WORD [in COLOR] MOTION"]),
    ],
)
def test_bad_captions_name_the_allowed_values(caption: str, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_scene(caption)
    message = str(info.value)
    assert "\n" not in message and caption in message
    for name in names:
        assert name in message


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="tier-1 stills"):
        PairScene(Combo("red", "circle", "growing"), Combo("blue", "square"), "moving apart")
    with pytest.raises(ValueError, match="unknown word"):
        TextScene("hello", "scrolling left")  # words are uppercase
    with pytest.raises(ValueError, match="only the uppercase letters A-Z"):
        word_bitmap("HI!")


def test_paraphrases_deterministic_and_keep_the_content() -> None:
    pair = PairScene(Combo("red", "circle"), Combo("blue", "square"), "moving together")
    text = TextScene("HELLO", "scrolling up", "yellow")
    for scene in (pair, text):
        assert len({scene_paraphrase(scene, np.random.default_rng(3)) for _ in range(3)}) == 1
        rng = np.random.default_rng(0)
        drawn = {scene_paraphrase(scene, rng) for _ in range(400)}
        wordings = set(all_scene_paraphrases(scene))
        assert drawn <= wordings and scene.caption in wordings
        assert len(drawn) > 150 if scene is pair else drawn == wordings  # 512 pair / 16 text wordings
    pair_texts = all_scene_paraphrases(pair)
    assert "a blue box and a red ball moving towards each other" in pair_texts
    assert all("red" in t and "blue" in t for t in pair_texts)
    assert all("HELLO" in t and "yellow" in t for t in all_scene_paraphrases(text))
    white = all_scene_paraphrases(TextScene("CAT", "scrolling right"))
    assert "the word CAT scrolling right" in white and "the text CAT in white sliding to the right" in white
    for seed in range(5):  # tier 1 is delegated to spec.paraphrase
        expected = paraphrase(ALL_COMBOS[seed], np.random.default_rng(seed))
        assert scene_paraphrase(ALL_COMBOS[seed], np.random.default_rng(seed)) == expected


def test_attributes_round_trip_and_tier1_records_are_unchanged() -> None:
    for scene in (*ALL_PAIR_SCENES[::37], *ALL_TEXT_SCENES[::29], *ALL_COMBOS[::17], *ALL_STILLS[::5]):
        attributes = scene_attributes(scene)
        assert scene_from_attributes(attributes) == scene
        assert ("scene" in attributes) == (scene_kind(scene) != "one")
    assert scene_attributes(Combo("red", "circle", "growing")) == {
        "color": "red",
        "shape": "circle",
        "motion": "growing",
    }
    assert scene_from_attributes({"color": "blue", "shape": "square"}) == Combo("blue", "square")
    with pytest.raises(ValueError, match="unknown scene 'three'"):
        scene_from_attributes({"scene": "three"})


def test_random_scenes_cover_the_vocabulary() -> None:
    rng = np.random.default_rng(0)
    pairs = [random_scene("two", rng) for _ in range(300)]
    texts = [random_scene("text", rng) for _ in range(300)]
    assert {p.motion for p in pairs} == set(PAIR_MOTIONS) and {t.motion for t in texts} == set(TEXT_MOTIONS)
    assert {t.word for t in texts} == set(WORDS) and {t.color for t in texts} == set(COLORS)
    assert {p.first.color for p in pairs} == set(COLORS) and all(
        p.first.color != p.second.color for p in pairs
    )
    with pytest.raises(ValueError, match="allowed: two, text"):
        random_scene("one", rng)


def test_font_glyphs() -> None:
    assert sorted(GLYPHS) == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    bitmaps = {k: v.tobytes() for k, v in GLYPHS.items()}
    assert len(set(bitmaps.values())) == 26  # all distinct
    for glyph in GLYPHS.values():
        assert glyph.shape == (7, 5) and glyph[0].any() and glyph[-1].any()  # spans all 7 rows
    hello = word_bitmap("HELLO")
    assert hello.shape == (7, 29) and not hello[:, 5::6].any()  # blank spacing columns
    assert np.array_equal(hello[:, :5], GLYPHS["H"]) and np.array_equal(hello[:, 24:], GLYPHS["O"])
    assert ink_columns(word_bitmap("IMAGEN")) == (1, 34) and ink_columns(hello) == (0, 28)
