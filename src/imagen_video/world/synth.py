"""Write a synthetic captioned dataset of the world in the format of :mod:`imagen_video.data.manifest`.

Layout of the output directory::

    manifest.jsonl        one JSON record per clip / image (written last, atomically)
    synth_config.json     the SynthConfig that produced it (incl. the holdout list)
    videos/000000.npz     array ``frames`` uint8 (T, H, W, 3), lossless
    images/000000.npz     array ``frames`` uint8 (1, H, W, 3)

Record: ``{"media", "kind": "video" | "image", "caption", "fps" (videos), "attributes": {"color",
"shape", "motion" (videos), "canonical_caption", "paraphrased", "geometry"}}``. Clip ``i`` is drawn from
its own generator seeded by ``(seed, kind, i)``, so a dataset is deterministic per seed and a larger
``num_videos`` extends a smaller one. Videos never use a held-out combination; still images
have no motion, so the holdout does not apply to them. Joint image-video training: paper sec. 2.6.

Tier 2 (``tier2_fraction`` > 0, ``--tier2-fraction``): each video is, with that probability (drawn from
a generator seeded by ``(seed, 2, i)``), a tier-2 scene of a kind drawn uniformly from
``tier2_scenes`` (two objects / rendered text, :mod:`~imagen_video.world.tier2`). Its attributes are
:func:`~imagen_video.world.tier2.scene_attributes` (``"scene": "two" | "text"``, ...) plus
``canonical_caption``, ``paraphrased`` and ``geometry``; the other videos are exactly the tier-1 videos
of the same index. The holdout applies to tier 1 only; still images stay tier 1. With the default
``tier2_fraction = 0`` the output is byte-identical to the tier-1-only writer (the tier-2 fields are
left out of ``synth_config.json`` at their defaults).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from imagen_video.serialization import JsonConfig, atomic_write, atomic_write_json, atomic_write_text
from imagen_video.world.render import render_clip, sample_geometry
from imagen_video.world.render_tier2 import render_scene
from imagen_video.world.spec import (
    ALL_STILLS,
    MOTIONS,
    PALETTE,
    SHAPES,
    Combo,
    paraphrase,
    parse_combo,
    training_combos,
)
from imagen_video.world.tier2 import (
    PAIR_MOTIONS,
    TEXT_MOTIONS,
    WORDS,
    PairScene,
    TextScene,
    random_scene,
    scene_attributes,
    scene_paraphrase,
)

MANIFEST_NAME = "manifest.jsonl"
CONFIG_NAME = "synth_config.json"
_OWNED = (MANIFEST_NAME, CONFIG_NAME, "videos", "images")
_KIND_ID = {"video": 0, "image": 1}
_TIER2_ID = 2
TIER2_SCENES: tuple[str, ...] = ("two", "text")
"""Tier-2 scene kinds ``data synth`` can write: two objects, rendered text."""


@dataclasses.dataclass(frozen=True)
class SynthConfig(JsonConfig):
    """What :func:`synthesize` writes: counts, clip size, caption wording and the held-out combos."""

    num_videos: int
    """Number of video clips."""
    num_images: int = 0
    """Number of captioned still images (joint image-video training, paper sec. 2.6)."""
    frames: int = 16
    """Frames per video (paper's base model: 16)."""
    height: int = 24
    """Frame height in pixels (paper's base model: 24)."""
    width: int = 40
    """Frame width in pixels (paper's base model: 40)."""
    fps: float = 8.0
    """Nominal frame rate recorded in the manifest."""
    paraphrase_prob: float = 0.25
    """Probability that a caption is a paraphrase instead of the canonical caption."""
    seed: int = 0
    """Seed of every clip's generator."""
    holdout: tuple[str, ...] = ()
    """Held-out ``color shape motion`` triples, never emitted as videos."""
    tier2_fraction: float = 0.0
    """Probability that a video is a tier-2 scene (0: tier 1 only, the behaviour before tier 2)."""
    tier2_scenes: tuple[str, ...] = TIER2_SCENES
    """Tier-2 scene kinds to draw from uniformly: ``two`` (two objects), ``text`` (rendered text)."""
    colors: tuple[str, ...] = ()
    """Colors of the tier-1 videos and images (any of ``spec.PALETTE``, e.g. ``orange``); empty: the six
    tier-1 colors, exactly as before the option existed."""

    def __post_init__(self) -> None:
        for name in ("num_videos", "num_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_videos + self.num_images == 0:
            raise ValueError("nothing to write: num_videos and num_images are both 0")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2 (videos show motion), got {self.frames}")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"height and width must be >= 8, got {self.height}x{self.width}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not 0.0 <= self.paraphrase_prob <= 1.0:
            raise ValueError(f"paraphrase_prob must be in [0, 1], got {self.paraphrase_prob}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        unknown = [c for c in self.colors if c not in PALETTE]
        if unknown or len(set(self.colors)) != len(self.colors):
            allowed = ", ".join(PALETTE)
            raise ValueError(f"colors must be distinct colors from {{{allowed}}}, got {list(self.colors)}")
        if not self.video_pool() and self.num_videos:
            raise ValueError("the holdout set excludes every combination of these colors; nothing left")
        for motion in (*MOTIONS, None):  # every motion must fit this frame shape (raises if not)
            sample_geometry(
                Combo("white", "triangle", motion), self.height, self.width, np.random.default_rng(0)
            )
        self._check_tier2()

    def _check_tier2(self) -> None:
        if not 0.0 <= self.tier2_fraction <= 1.0:
            raise ValueError(f"tier2_fraction must be in [0, 1], got {self.tier2_fraction}")
        unknown = [k for k in self.tier2_scenes if k not in TIER2_SCENES]
        if unknown or not self.tier2_scenes or len(set(self.tier2_scenes)) != len(self.tier2_scenes):
            raise ValueError(
                f"tier2_scenes must be distinct kinds from {{{', '.join(TIER2_SCENES)}}}, got "
                f"{list(self.tier2_scenes)}"
            )
        if self.tier2_fraction == 0.0:
            return
        longest = max(WORDS, key=len)  # every tier-2 motion must fit this frame shape (raises if not)
        checks = {
            "two": [PairScene(Combo("white", "triangle"), Combo("red", "triangle"), m) for m in PAIR_MOTIONS],
            "text": [TextScene(longest, m) for m in TEXT_MOTIONS],
        }
        for kind in self.tier2_scenes:
            for scene in checks[kind]:
                render_scene(scene, frames=2, height=self.height, width=self.width, seed=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the tier-2 fields are left out at their defaults, so a tier-1 config is written
        exactly as before tier 2 existed (``from_dict`` restores the defaults)."""
        data = super().to_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in ("tier2_fraction", "tier2_scenes", "colors"):
            if getattr(self, name) == defaults[name]:
                data.pop(name)
        return data

    def video_pool(self) -> tuple[Combo, ...]:
        """Video combinations to draw from: every combination of ``colors`` (default: the tier-1
        training combinations) minus the holdout."""
        if not self.colors:
            return training_combos(self.holdout_combos())
        excluded = set(self.holdout_combos())
        combos = itertools.product(self.colors, SHAPES, MOTIONS)
        return tuple(c for c in (Combo(*t) for t in combos) if c not in excluded)

    def image_pool(self) -> tuple[Combo, ...]:
        """Still-image combinations to draw from: every shape of ``colors`` (default: the tier-1 stills)."""
        if not self.colors:
            return ALL_STILLS
        return tuple(Combo(c, s) for c, s in itertools.product(self.colors, SHAPES))

    def holdout_combos(self) -> tuple[Combo, ...]:
        """The held-out combinations as :class:`Combo` objects (validates each triple)."""
        combos = tuple(parse_combo(text) for text in self.holdout)
        for combo in combos:
            if combo.motion is None:
                raise ValueError(f"holdout entry {combo.as_text()!r} has no motion")
        return combos


def _caption(combo: Combo, rng: np.random.Generator, paraphrase_prob: float) -> tuple[str, bool]:
    if rng.random() < paraphrase_prob:
        text = paraphrase(combo, rng)
        return text, text != combo.caption
    return combo.caption, False


def tier2_kind(config: SynthConfig, index: int) -> str | None:
    """The tier-2 scene kind of video ``index`` (``None``: a tier-1 video), drawn with its own generator."""
    if config.tier2_fraction == 0.0:
        return None
    rng = np.random.default_rng([config.seed, _TIER2_ID, index])
    if rng.random() >= config.tier2_fraction:
        return None
    return config.tier2_scenes[int(rng.integers(len(config.tier2_scenes)))]


def make_tier2_record(config: SynthConfig, kind: str, index: int, out_dir: Path) -> dict[str, Any]:
    """Render video ``index`` as a random tier-2 scene of ``kind`` (``two`` / ``text``), write its npz
    under ``out_dir``, return its manifest record (generator seeded by ``(seed, 2, index, kind)``)."""
    rng = np.random.default_rng([config.seed, _TIER2_ID, index, TIER2_SCENES.index(kind)])
    scene = random_scene(kind, rng)
    caption, paraphrased = scene.caption, False
    if rng.random() < config.paraphrase_prob:
        caption = scene_paraphrase(scene, rng)
        paraphrased = caption != scene.caption
    clip, geometry = render_scene(
        scene, frames=config.frames, height=config.height, width=config.width, seed=rng
    )
    media = f"videos/{index:06d}.npz"
    _write_npz(out_dir / media, clip)
    attributes = scene_attributes(scene)
    attributes.update(canonical_caption=scene.caption, paraphrased=paraphrased, geometry=geometry.to_dict())
    record = {"media": media, "kind": "video", "caption": caption, "fps": float(config.fps)}
    return {**record, "attributes": attributes}


def _write_npz(path: Path, frames: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, frames=frames)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def make_record(
    config: SynthConfig, kind: str, index: int, out_dir: Path, pool: tuple[Combo, ...]
) -> dict[str, Any]:
    """Render item ``index`` of ``kind`` ("video" / "image") with a combination drawn from ``pool``,
    write its npz under ``out_dir``, return its manifest record."""
    rng = np.random.default_rng([config.seed, _KIND_ID[kind], index])
    frames = config.frames if kind == "video" else 1
    combo = pool[int(rng.integers(len(pool)))]
    caption, paraphrased = _caption(combo, rng, config.paraphrase_prob)
    clip, geometry = render_clip(combo, frames=frames, height=config.height, width=config.width, seed=rng)
    media = f"{kind}s/{index:06d}.npz"
    _write_npz(out_dir / media, clip)
    attributes: dict[str, Any] = {"color": combo.color, "shape": combo.shape}
    if kind == "video":
        attributes["motion"] = combo.motion
    attributes.update(canonical_caption=combo.caption, paraphrased=paraphrased, geometry=geometry.to_dict())
    record: dict[str, Any] = {"media": media, "kind": kind, "caption": caption}
    if kind == "video":
        record["fps"] = float(config.fps)
    record["attributes"] = attributes
    return record


def _prepare_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"output path exists and is not a directory: {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output directory is not empty: {out_dir} (pass --overwrite / overwrite=True to replace it)"
            )
        for name in _OWNED:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def synthesize(
    out_dir: str | Path, config: SynthConfig, *, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write the dataset described by ``config`` to ``out_dir``; return the manifest path.

    Refuses a non-empty ``out_dir`` unless ``overwrite`` (which removes only the files this function
    writes: manifest, config, ``videos/``, ``images/``). Media are written first, the manifest last
    and atomically, so a reader never sees records that point to missing files.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    _prepare_dir(out_dir, overwrite)
    jobs = [("video", i) for i in range(config.num_videos)] + [("image", i) for i in range(config.num_images)]
    pools = {"video": config.video_pool(), "image": config.image_pool()}
    records = []
    for kind, index in tqdm(jobs, desc="data synth", unit="clip", disable=not progress):
        scene = tier2_kind(config, index) if kind == "video" else None
        if scene is None:
            records.append(make_record(config, kind, index, out_dir, pools[kind]))
        else:
            records.append(make_tier2_record(config, scene, index, out_dir))
    atomic_write_json(out_dir / CONFIG_NAME, config.to_dict())
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    return atomic_write_text(out_dir / MANIFEST_NAME, lines)
