"""Vocabulary of the synthetic captioned video world (tier 1): shapes, colors, motions and captions.

One saturated shape on a black background, with one of six motions. A :class:`Combo` names the
three attributes of a clip; its canonical caption ("a red circle moving left") is what evaluation
prompts use, and :func:`paraphrase` gives deterministic alternative wordings for training text
diversity. A held-out set of combinations (:data:`DEFAULT_HOLDOUT`, or one parsed from a
``color shape motion`` file) is excluded from training data to measure compositional
generalisation (docs/world.md; paper sec. 3 evaluates on prompts from a held-out test set).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
"""Tier-1 shapes: squares are axis-aligned, triangles upright (no rotation)."""

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
"""Tier-1 colors as pure saturated RGB (every color has a channel at 255): the colors of the shipped
training data (``data synth`` draws from these unless told otherwise)."""

NEW_COLORS: dict[str, tuple[int, int, int]] = {"orange": (255, 128, 0)}
"""Colors outside the shipped training data, to teach a trained cascade a new concept by fine-tuning
(docs/finetuning.md): orange is red with the green channel at half, rendered with the same coverage."""

PALETTE: dict[str, tuple[int, int, int]] = {**COLORS, **NEW_COLORS}
"""Every color the world can render and the analyzer recognises (tier-1 colors first)."""

MOTIONS: tuple[str, ...] = ("moving left", "moving right", "moving up", "moving down", "growing", "shrinking")
"""Tier-1 motions; ``moving left`` etc. are two words."""

_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc", "round dot"),
    "square": ("square", "box", "block", "square tile"),
    "triangle": ("triangle", "wedge", "triangular shape", "pyramid shape"),
}
_MOTION_WORDS: dict[str, tuple[str, ...]] = {
    "moving left": ("moving left", "sliding to the left", "going left", "drifting leftwards"),
    "moving right": ("moving right", "sliding to the right", "going right", "drifting rightwards"),
    "moving up": ("moving up", "rising", "floating upwards", "going up"),
    "moving down": ("moving down", "falling", "sinking downwards", "going down"),
    "growing": ("growing", "getting bigger", "expanding", "growing larger"),
    "shrinking": ("shrinking", "getting smaller", "contracting", "shrinking away"),
}
_VIDEO_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape} {motion}",
    "the {color} {shape} is {motion}",
    "a {color} {shape} {motion} on a black background",
    "a video of a {color} {shape} {motion}",
)
_IMAGE_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape}",
    "a {color} {shape} on a black background",
    "a picture of a {color} {shape}",
    "the {color} {shape}",
)


@dataclasses.dataclass(frozen=True)
class Combo:
    """The true attributes of one clip: ``color``, ``shape`` and ``motion`` (``None`` = still image)."""

    color: str
    shape: str
    motion: str | None = None

    def __post_init__(self) -> None:
        if self.color not in PALETTE:
            raise ValueError(f"unknown color {self.color!r}; allowed: {', '.join(PALETTE)}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; allowed: {', '.join(SHAPES)}")
        if self.motion is not None and self.motion not in MOTIONS:
            raise ValueError(f"unknown motion {self.motion!r}; allowed: {', '.join(MOTIONS)} (or None)")

    @property
    def is_image(self) -> bool:
        """True for a still image (no motion)."""
        return self.motion is None

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The pure saturated RGB color, uint8 values."""
        return PALETTE[self.color]

    @property
    def caption(self) -> str:
        """Canonical caption: ``a red circle moving left``, ``an orange square``; still images: ``a blue
        square``."""
        return with_articles(f"a {self.as_text()}")

    def as_text(self) -> str:
        """The ``color shape motion`` triple as written in holdout files (images: ``color shape``)."""
        text = f"{self.color} {self.shape}"
        return text if self.motion is None else f"{text} {self.motion}"

    def still(self) -> Combo:
        """The same color and shape as a still image (motion removed)."""
        return Combo(self.color, self.shape, None)


ALL_COMBOS: tuple[Combo, ...] = tuple(
    Combo(c, s, m) for c, s, m in itertools.product(COLORS, SHAPES, MOTIONS)
)
"""All 108 tier-1 video combinations (6 colors x 3 shapes x 6 motions), in a fixed order."""

ALL_STILLS: tuple[Combo, ...] = tuple(Combo(c, s) for c, s in itertools.product(COLORS, SHAPES))
"""All 18 still-image combinations (6 colors x 3 shapes)."""

DEFAULT_HOLDOUT: tuple[Combo, ...] = (
    Combo("red", "circle", "moving up"),
    Combo("red", "triangle", "shrinking"),
    Combo("green", "square", "moving left"),
    Combo("green", "circle", "growing"),
    Combo("blue", "triangle", "moving right"),
    Combo("blue", "square", "moving down"),
    Combo("yellow", "circle", "moving left"),
    Combo("yellow", "triangle", "growing"),
    Combo("magenta", "square", "shrinking"),
    Combo("magenta", "circle", "moving right"),
    Combo("white", "triangle", "moving down"),
    Combo("white", "square", "moving up"),
)
"""12 held-out combinations for compositional generalisation: every color, shape and motion appears
in it (each color and motion twice, each shape four times) and every attribute pair it uses still
occurs in the remaining 96 training combinations."""


def with_articles(text: str) -> str:
    """``a`` before a vowel-initial word becomes ``an`` (``an orange circle``; tier-1 colors and every
    shape and motion word start with a consonant, so their captions are unchanged)."""
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)


def paraphrase(combo: Combo, rng: np.random.Generator) -> str:
    """A caption for ``combo`` in a randomly chosen wording (deterministic given ``rng``'s state).

    The wordings keep the color word and use synonyms for shape and motion ("a red ball sliding to
    the left"); the canonical caption is one of the possible outcomes.
    """
    shape = _SHAPE_WORDS[combo.shape][int(rng.integers(len(_SHAPE_WORDS[combo.shape])))]
    if combo.motion is None:
        template = _IMAGE_TEMPLATES[int(rng.integers(len(_IMAGE_TEMPLATES)))]
        return with_articles(template.format(color=combo.color, shape=shape))
    motion = _MOTION_WORDS[combo.motion][int(rng.integers(len(_MOTION_WORDS[combo.motion])))]
    template = _VIDEO_TEMPLATES[int(rng.integers(len(_VIDEO_TEMPLATES)))]
    return with_articles(template.format(color=combo.color, shape=shape, motion=motion))


def all_paraphrases(combo: Combo) -> tuple[str, ...]:
    """Every wording :func:`paraphrase` can produce for ``combo`` (sorted, canonical included)."""
    shapes = _SHAPE_WORDS[combo.shape]
    if combo.motion is None:
        texts = {t.format(color=combo.color, shape=s) for t in _IMAGE_TEMPLATES for s in shapes}
        return tuple(sorted(with_articles(t) for t in texts))
    motions = _MOTION_WORDS[combo.motion]
    return tuple(
        sorted(
            {
                with_articles(t.format(color=combo.color, shape=s, motion=m))
                for t in _VIDEO_TEMPLATES
                for s in shapes
                for m in motions
            }
        )
    )


def parse_combo(text: str) -> Combo:
    """Parse ``color shape motion`` (or ``color shape`` for a still image) into a :class:`Combo`.

    Case, surrounding/repeated whitespace, a leading article ("a"/"an") and ``_``/``-`` inside the
    motion (``moving_left``) are accepted; anything else is a ``ValueError`` naming the allowed values.
    """
    words = re.sub(r"[_\-\s]+", " ", text.strip().lower()).split()
    if words and words[0] in ("a", "an"):
        words = words[1:]
    if len(words) < 2:
        raise ValueError(
            f"cannot parse {text!r}: expected 'color shape motion' with color in {{{', '.join(PALETTE)}}}, "
            f"shape in {{{', '.join(SHAPES)}}}, motion in {{{', '.join(MOTIONS)}}}"
        )
    motion = " ".join(words[2:]) or None
    try:
        return Combo(words[0], words[1], motion)
    except ValueError as err:
        raise ValueError(f"cannot parse {text!r}: {err}") from None


def parse_caption(caption: str) -> Combo:
    """Parse a canonical caption (``a red circle moving left``, ``a blue square``) into a :class:`Combo`."""
    return parse_combo(caption)


def parse_holdout(text: str, *, source: str = "<holdout>") -> tuple[Combo, ...]:
    """Parse a holdout list: one ``color shape motion`` triple per line.

    Blank lines and ``#`` comments are ignored; duplicates are kept once (first occurrence order).
    A still-image line (no motion) is an error, since held-out sets exclude video combinations.
    Errors name the source and line number.
    """
    combos: list[Combo] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            combo = parse_combo(line)
        except ValueError as err:
            raise ValueError(f"{source}:{number}: {err}") from None
        if combo.motion is None:
            raise ValueError(
                f"{source}:{number}: {line!r} has no motion; holdout lines are 'color shape motion' "
                f"with motion in {{{', '.join(MOTIONS)}}}"
            )
        if combo not in combos:
            combos.append(combo)
    return tuple(combos)


def load_holdout(path: str | Path) -> tuple[Combo, ...]:
    """Read and parse a holdout file (see :func:`parse_holdout`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"holdout file not found: {path}")
    return parse_holdout(path.read_text(encoding="utf-8"), source=str(path))


def training_combos(holdout: Iterable[Combo] = ()) -> tuple[Combo, ...]:
    """All 108 video combinations minus ``holdout`` (order of :data:`ALL_COMBOS`)."""
    excluded = set(holdout)
    remaining = tuple(c for c in ALL_COMBOS if c not in excluded)
    if not remaining:
        raise ValueError("the holdout set excludes every combination; nothing left to generate")
    return remaining
