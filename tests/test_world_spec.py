"""World vocabulary, captions, paraphrases and holdout parsing."""

from __future__ import annotations

import numpy as np
import pytest

from imagen_video.world.spec import (
    ALL_COMBOS,
    ALL_STILLS,
    COLORS,
    DEFAULT_HOLDOUT,
    MOTIONS,
    SHAPES,
    Combo,
    all_paraphrases,
    load_holdout,
    paraphrase,
    parse_caption,
    parse_combo,
    parse_holdout,
    training_combos,
)


def test_vocabulary_and_pure_colors() -> None:
    assert SHAPES == ("circle", "square", "triangle")
    assert set(MOTIONS) == {"moving left", "moving right", "moving up", "moving down", "growing", "shrinking"}
    assert COLORS["red"] == (255, 0, 0) and COLORS["yellow"] == (255, 255, 0)
    assert COLORS["white"] == (255, 255, 255) and COLORS["magenta"] == (255, 0, 255)
    for rgb in COLORS.values():  # pure saturated: every channel is 0 or 255
        assert set(rgb) <= {0, 255} and max(rgb) == 255


def test_all_combos_and_canonical_captions() -> None:
    assert len(ALL_COMBOS) == 108 and len(set(ALL_COMBOS)) == 108
    assert len(ALL_STILLS) == 18 and all(c.is_image for c in ALL_STILLS)
    assert len({c.caption for c in ALL_COMBOS}) == 108
    assert Combo("red", "circle", "moving left").caption == "a red circle moving left"
    assert Combo("white", "triangle", "growing").caption == "a white triangle growing"
    assert Combo("blue", "square").caption == "a blue square"


def test_parse_round_trip_and_robustness() -> None:
    for combo in (*ALL_COMBOS, *ALL_STILLS):
        assert parse_caption(combo.caption) == combo
        assert parse_combo(combo.as_text()) == combo
    assert parse_combo("  Red   CIRCLE moving_left ") == Combo("red", "circle", "moving left")
    assert parse_combo("an yellow square moving-up") == Combo("yellow", "square", "moving up")


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("purple circle growing", ["purple", "red", "magenta"]),
        ("red hexagon growing", ["hexagon", "circle", "triangle"]),
        ("red circle moving sideways", ["moving sideways", "moving left", "shrinking"]),
        ("red", ["color shape motion"]),
    ],
)
def test_bad_combo_errors_name_allowed_values(line: str, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_combo(line)
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_parse_holdout_comments_duplicates_and_line_numbers(tmp_path) -> None:
    text = "# held out\n\nred circle moving left  # comment\nRED circle moving_left\ngreen square growing\n"
    assert parse_holdout(text) == (Combo("red", "circle", "moving left"), Combo("green", "square", "growing"))
    with pytest.raises(ValueError, match=r"f\.txt:3: .*unknown shape 'box'"):
        parse_holdout("red circle growing\n\nred box growing\n", source="f.txt")
    with pytest.raises(ValueError, match=r":1: .*has no motion"):
        parse_holdout("blue square\n")
    path = tmp_path / "holdout.txt"
    path.write_text("white triangle moving down\n")
    assert load_holdout(path) == (Combo("white", "triangle", "moving down"),)
    with pytest.raises(FileNotFoundError, match="holdout file not found"):
        load_holdout(tmp_path / "missing.txt")


def test_default_holdout_covers_every_attribute_and_leaves_pairs_in_training() -> None:
    assert 6 <= len(DEFAULT_HOLDOUT) <= 12 and len(set(DEFAULT_HOLDOUT)) == len(DEFAULT_HOLDOUT)
    assert {c.color for c in DEFAULT_HOLDOUT} == set(COLORS)
    assert {c.shape for c in DEFAULT_HOLDOUT} == set(SHAPES)
    assert {c.motion for c in DEFAULT_HOLDOUT} == set(MOTIONS)
    train = training_combos(DEFAULT_HOLDOUT)
    assert len(train) == 108 - len(DEFAULT_HOLDOUT) and not set(train) & set(DEFAULT_HOLDOUT)
    for held in DEFAULT_HOLDOUT:  # every pair of its attributes still occurs in training
        assert any(c.color == held.color and c.shape == held.shape for c in train)
        assert any(c.color == held.color and c.motion == held.motion for c in train)
        assert any(c.shape == held.shape and c.motion == held.motion for c in train)
    with pytest.raises(ValueError, match="excludes every combination"):
        training_combos(ALL_COMBOS)


def test_paraphrases_deterministic_and_keep_the_color() -> None:
    combo = Combo("red", "circle", "moving left")
    first = [paraphrase(combo, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(first)) == 1  # same seed, same wording
    rng = np.random.default_rng(0)
    drawn = {paraphrase(combo, rng) for _ in range(300)}
    assert len(drawn) > 20 and drawn <= set(all_paraphrases(combo))
    assert "a red ball sliding to the left" in all_paraphrases(combo)
    assert combo.caption in all_paraphrases(combo)
    assert all("red" in text for text in drawn)
    still = paraphrase(Combo("blue", "square"), np.random.default_rng(1))
    assert "blue" in still and "moving" not in still
