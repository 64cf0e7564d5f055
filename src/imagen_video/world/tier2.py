"""Tier-2 vocabulary of the synthetic world: two-object scenes and rendered text (docs/world.md, tier 2).

Two new scene types extend tier 1 (:mod:`~imagen_video.world.spec`), echoing the paper's text
animations (sec. 1, 4):

- :class:`PairScene`: two tier-1 shapes of distinct colors with a relative or shared motion,
  ``a red circle and a blue square moving apart`` (``moving together``, ``both moving up``, ...);
- :class:`TextScene`: a word of the built-in 5x7 font (:mod:`~imagen_video.world.font`) scrolling
  across the frame, ``the word HELLO scrolling left`` or, in a color other than the default white,
  ``the word HELLO in red scrolling left``.

Each scene has a canonical caption that :func:`parse_scene` reads back (tier-1 captions included),
deterministic paraphrases for training text diversity (:func:`scene_paraphrase`), and a manifest
form (:func:`scene_attributes` / :func:`scene_from_attributes`): tier-2 records carry ``"scene":
"two" | "text"``, tier-1 records have no ``scene`` key, so tier-1 datasets are unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from imagen_video.world.spec import (
    _MOTION_WORDS,
    _SHAPE_WORDS,
    COLORS,
    SHAPES,
    Combo,
    paraphrase,
    parse_caption,
)

PAIR_MOTIONS: tuple[str, ...] = (
    "moving apart",
    "moving together",
    "both moving left",
    "both moving right",
    "both moving up",
    "both moving down",
)
"""Two-object motions: horizontal separation / approach along a line, or one shared tier-1 motion."""

TEXT_MOTIONS: tuple[str, ...] = ("scrolling left", "scrolling right", "scrolling up", "scrolling down")
"""Text motions: the word scrolls at constant speed along one axis."""

WORDS: tuple[str, ...] = (
    "CAT",
    "DOG",
    "SUN",
    "SKY",
    "MOON",
    "STAR",
    "FISH",
    "TREE",
    "HELLO",
    "WORLD",
    "VIDEO",
    "MUSIC",
    "PIXEL",
    "IMAGEN",
    "GARDEN",
    "PLANET",
)
"""Words of text scenes: 3-6 uppercase letters."""

TEXT_DEFAULT_COLOR = "white"
"""Color of a word whose caption names none."""

SCENE_KINDS: tuple[str, ...] = ("one", "two", "text")
"""Scene types: tier-1 single shape, tier-2 two objects, tier-2 rendered text."""

_SHARED_MOTIONS: tuple[str, ...] = ("moving left", "moving right", "moving up", "moving down")
_PAIR_MOTION_WORDS: dict[str, tuple[str, ...]] = {
    "moving apart": ("moving apart", "moving away from each other", "separating", "drifting apart"),
    "moving together": (
        "moving together",
        "moving towards each other",
        "approaching each other",
        "closing in",
    ),
    **{f"both {m}": tuple(f"both {w}" for w in _MOTION_WORDS[m]) for m in _SHARED_MOTIONS},
}
_PAIR_TEMPLATES: tuple[str, ...] = (
    "{a} and {b} {motion}",
    "{a} and {b} are {motion}",
    "a video of {a} and {b} {motion}",
    "{a} and {b} {motion} on a black background",
)
_TEXT_MOTION_WORDS: dict[str, tuple[str, ...]] = {
    f"scrolling {d}": (f"scrolling {d}", f"scrolling to the {d}", f"sliding to the {d}", f"moving {d}")
    if d in ("left", "right")
    else (f"scrolling {d}", f"scrolling {d}wards", f"sliding {d}", f"moving {d}")
    for d in ("left", "right", "up", "down")
}
_TEXT_TEMPLATES: tuple[str, ...] = (
    "the word {word}{in_color} {motion}",
    "the text {word}{in_color} {motion}",
    "a video of the word {word}{in_color} {motion}",
    "{color} letters spelling {word} {motion}",
)


@dataclasses.dataclass(frozen=True)
class PairScene:
    """Two tier-1 objects (stills, distinct colors) in caption order and their ``motion``."""

    first: Combo
    second: Combo
    motion: str

    def __post_init__(self) -> None:
        for obj in (self.first, self.second):
            if not isinstance(obj, Combo) or obj.motion is not None:
                raise ValueError(f"pair objects are tier-1 stills (Combo(color, shape)), got {obj!r}")
        if self.first.color == self.second.color:
            raise ValueError(f"the two objects need distinct colors, both are {self.first.color!r}")
        if self.motion not in PAIR_MOTIONS:
            raise ValueError(f"unknown pair motion {self.motion!r}; allowed: {', '.join(PAIR_MOTIONS)}")

    @property
    def objects(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """``((color, shape), (color, shape))`` in caption order."""
        return (self.first.color, self.first.shape), (self.second.color, self.second.shape)

    @property
    def caption(self) -> str:
        """Canonical caption: ``a red circle and a blue square moving apart``."""
        return f"{self.first.caption} and {self.second.caption} {self.motion}"

    def swapped(self) -> PairScene:
        """The same scene with the objects named in the other order."""
        return PairScene(self.second, self.first, self.motion)

    def same_scene(self, other: PairScene) -> bool:
        """True for the same motion and the same two objects in either order."""
        return self.motion == other.motion and Counter(self.objects) == Counter(other.objects)


@dataclasses.dataclass(frozen=True)
class TextScene:
    """A ``word`` of :data:`WORDS` in ``color`` (default white), scrolling with ``motion``."""

    word: str
    motion: str
    color: str = TEXT_DEFAULT_COLOR

    def __post_init__(self) -> None:
        if self.word not in WORDS:
            raise ValueError(f"unknown word {self.word!r}; allowed: {', '.join(WORDS)}")
        if self.motion not in TEXT_MOTIONS:
            raise ValueError(f"unknown text motion {self.motion!r}; allowed: {', '.join(TEXT_MOTIONS)}")
        if self.color not in COLORS:
            raise ValueError(f"unknown color {self.color!r}; allowed: {', '.join(COLORS)}")

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The pure saturated RGB color of the letters."""
        return COLORS[self.color]

    @property
    def caption(self) -> str:
        """Canonical caption: ``the word HELLO scrolling left`` (white) / ``the word HELLO in red ...``."""
        color = "" if self.color == TEXT_DEFAULT_COLOR else f" in {self.color}"
        return f"the word {self.word}{color} {self.motion}"


Scene = Combo | PairScene | TextScene
"""Any world scene: tier-1 :class:`~imagen_video.world.spec.Combo`, :class:`PairScene`, :class:`TextScene`."""


def _pairs() -> tuple[PairScene, ...]:
    objects = [Combo(c, s) for c, s in itertools.product(COLORS, SHAPES)]
    return tuple(
        PairScene(a, b, m)
        for a, b in itertools.combinations(objects, 2)
        if a.color != b.color
        for m in PAIR_MOTIONS
    )


ALL_PAIR_SCENES: tuple[PairScene, ...] = _pairs()
"""All 810 two-object scenes (135 unordered object pairs of distinct colors x 6 motions), each named in
palette order (first color before second), in a fixed order."""

ALL_TEXT_SCENES: tuple[TextScene, ...] = tuple(
    TextScene(w, m, c) for w, m, c in itertools.product(WORDS, TEXT_MOTIONS, COLORS)
)
"""All 384 text scenes (16 words x 4 motions x 6 colors)."""


def scene_kind(scene: Scene) -> str:
    """``"one"`` (tier-1 :class:`Combo`), ``"two"`` (:class:`PairScene`), ``"text"`` (:class:`TextScene`)."""
    if isinstance(scene, PairScene):
        return "two"
    if isinstance(scene, TextScene):
        return "text"
    if isinstance(scene, Combo):
        return "one"
    raise TypeError(f"not a world scene: {scene!r}")


def _normalise(text: str) -> str:
    return re.sub(r"[_\-\s]+", " ", text.strip().lower())


def parse_pair(caption: str) -> PairScene:
    """Parse ``a red circle and a blue square moving apart`` into a :class:`PairScene`.

    Case, repeated whitespace and ``_`` / ``-`` are accepted like tier 1's :func:`parse_combo`; errors
    name the allowed values.
    """
    match = re.fullmatch(r"(?:an? )?(\w+) (\w+) and (?:an? )?(\w+) (\w+) (.+)", _normalise(caption))
    if match is None:
        raise ValueError(
            f"cannot parse {caption!r}: expected 'a COLOR SHAPE and a COLOR SHAPE MOTION' with motion in "
            f"{{{', '.join(PAIR_MOTIONS)}}}"
        )
    c1, s1, c2, s2, motion = match.groups()
    try:
        return PairScene(Combo(c1, s1), Combo(c2, s2), motion)
    except ValueError as err:
        raise ValueError(f"cannot parse {caption!r}: {err}") from None


def parse_text(caption: str) -> TextScene:
    """Parse ``the word HELLO scrolling left`` / ``the word HELLO in red scrolling left``."""
    match = re.fullmatch(r"the word (\w+)(?: in (\w+))? (.+)", _normalise(caption))
    if match is None:
        raise ValueError(
            f"cannot parse {caption!r}: expected 'the word WORD [in COLOR] MOTION' with word in "
            f"{{{', '.join(WORDS)}}} and motion in {{{', '.join(TEXT_MOTIONS)}}}"
        )
    word, color, motion = match.groups()
    try:
        return TextScene(word.upper(), motion, color or TEXT_DEFAULT_COLOR)
    except ValueError as err:
        raise ValueError(f"cannot parse {caption!r}: {err}") from None


def parse_scene(caption: str) -> Scene:
    """Parse a canonical caption of any tier: text (``the word ...``), pair (``... and ...``) or tier 1."""
    text = _normalise(caption)
    if re.match(r"the word\b", text):
        return parse_text(caption)
    if " and " in text:
        return parse_pair(caption)
    return parse_caption(caption)


def _pair_wordings(scene: PairScene) -> tuple[list[str], list[str], tuple[str, ...]]:
    """Object phrases of both objects and the motion wordings."""
    phrases = [[f"a {obj.color} {w}" for w in _SHAPE_WORDS[obj.shape]] for obj in (scene.first, scene.second)]
    return phrases[0], phrases[1], _PAIR_MOTION_WORDS[scene.motion]


def _text_fields(scene: TextScene, motion: str, named: bool) -> dict[str, str]:
    in_color = f" in {scene.color}" if named or scene.color != TEXT_DEFAULT_COLOR else ""
    return {"word": scene.word, "in_color": in_color, "color": scene.color, "motion": motion}


def scene_paraphrase(scene: Scene, rng: np.random.Generator) -> str:
    """A caption for ``scene`` in a randomly chosen wording (deterministic given ``rng``'s state).

    Tier 1: :func:`~imagen_video.world.spec.paraphrase`. Pairs: shape and motion synonyms, objects in
    either order (``a blue box and a red ball moving towards each other``). Text: the word and its
    color are kept (white may or may not be named), motion synonyms (``the text HELLO sliding to the
    left``). The canonical caption is one of the outcomes.
    """
    if isinstance(scene, Combo):
        return paraphrase(scene, rng)
    if isinstance(scene, PairScene):
        first, second, motions = _pair_wordings(scene)
        a, b = first[int(rng.integers(len(first)))], second[int(rng.integers(len(second)))]
        if rng.random() < 0.5:
            a, b = b, a
        motion = motions[int(rng.integers(len(motions)))]
        return _PAIR_TEMPLATES[int(rng.integers(len(_PAIR_TEMPLATES)))].format(a=a, b=b, motion=motion)
    if isinstance(scene, TextScene):
        motions = _TEXT_MOTION_WORDS[scene.motion]
        motion = motions[int(rng.integers(len(motions)))]
        template = _TEXT_TEMPLATES[int(rng.integers(len(_TEXT_TEMPLATES)))]
        return template.format(**_text_fields(scene, motion, named=rng.random() < 0.5))
    raise TypeError(f"not a world scene: {scene!r}")


def all_scene_paraphrases(scene: PairScene | TextScene) -> tuple[str, ...]:
    """Every wording :func:`scene_paraphrase` can produce for a tier-2 scene (sorted, canonical included)."""
    if isinstance(scene, PairScene):
        first, second, motions = _pair_wordings(scene)
        return tuple(
            sorted(
                {
                    t.format(a=x, b=y, motion=m)
                    for a, b in itertools.product(first, second)
                    for x, y in ((a, b), (b, a))
                    for m in motions
                    for t in _PAIR_TEMPLATES
                }
            )
        )
    return tuple(
        sorted(
            {
                t.format(**_text_fields(scene, m, named))
                for t in _TEXT_TEMPLATES
                for m in _TEXT_MOTION_WORDS[scene.motion]
                for named in (False, True)
            }
        )
    )


def random_scene(kind: str, rng: np.random.Generator) -> PairScene | TextScene:
    """A uniformly drawn tier-2 scene of ``kind`` (``"two"`` / ``"text"``): pairs draw two distinct
    colors, two shapes, a random naming order and a motion; text draws a word, motion and color."""
    if kind == "two":
        colors = rng.choice(len(COLORS), size=2, replace=False)
        names = tuple(COLORS)
        first, second = (Combo(names[int(c)], SHAPES[int(rng.integers(len(SHAPES)))]) for c in colors)
        return PairScene(first, second, PAIR_MOTIONS[int(rng.integers(len(PAIR_MOTIONS)))])
    if kind == "text":
        word = WORDS[int(rng.integers(len(WORDS)))]
        motion = TEXT_MOTIONS[int(rng.integers(len(TEXT_MOTIONS)))]
        return TextScene(word, motion, tuple(COLORS)[int(rng.integers(len(COLORS)))])
    raise ValueError(f"unknown tier-2 scene kind {kind!r}; allowed: two, text")


def scene_attributes(scene: Scene) -> dict[str, Any]:
    """The true attributes of a scene as written in a manifest record (without caption / geometry).

    Tier 1: ``{"color", "shape", "motion"}`` (no ``scene`` key, as before tier 2; stills have no
    ``motion``); pairs: ``{"scene":
    "two", "objects": [{"color", "shape"}, {"color", "shape"}], "motion"}``; text: ``{"scene": "text",
    "word", "color", "motion"}``.
    """
    if isinstance(scene, PairScene):
        objects = [{"color": c, "shape": s} for c, s in scene.objects]
        return {"scene": "two", "objects": objects, "motion": scene.motion}
    if isinstance(scene, TextScene):
        return {"scene": "text", "word": scene.word, "color": scene.color, "motion": scene.motion}
    if isinstance(scene, Combo):  # still images have no motion key (as tier-1 image records)
        motion = {} if scene.motion is None else {"motion": scene.motion}
        return {"color": scene.color, "shape": scene.shape, **motion}
    raise TypeError(f"not a world scene: {scene!r}")


def scene_from_attributes(attributes: Mapping[str, Any]) -> Scene:
    """The scene of a manifest record's ``attributes`` (inverse of :func:`scene_attributes`); a record
    without ``scene`` is tier 1 (a still image when it has no ``motion``)."""
    kind = attributes.get("scene", "one")
    if kind == "one":
        return Combo(attributes["color"], attributes["shape"], attributes.get("motion"))
    if kind == "two":
        first, second = (Combo(o["color"], o["shape"]) for o in attributes["objects"])
        return PairScene(first, second, attributes["motion"])
    if kind == "text":
        return TextScene(attributes["word"], attributes["motion"], attributes["color"])
    raise ValueError(f"unknown scene {kind!r} in attributes; allowed: {', '.join(SCENE_KINDS)}")
