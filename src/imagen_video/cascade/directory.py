"""The cascade directory: ``cascade.json`` plus one stage folder per stage (docs/CONTRIBUTING.md,
"Cascade directory").

``cascade.json`` holds a format tag, the stage order, the text encoder's identity (when known) and
the :class:`CascadeConfig` (stage shapes, fps and the default sampler, guidance, thresholding and
noise-augmentation level of each stage). Each ``<dir>/<stage name>/`` is a stage folder written by
:func:`imagen_video.cascade.stage_io.save_stage`. The stage folders define the networks; the sampling
fields (``config.SAMPLING_FIELDS``) of ``cascade.json`` override the stage folders' defaults, so a
cascade can change its sampler settings without touching weights. Assembling a cascade over trained
stage folders is writing ``cascade.json`` (:func:`assemble_cascade`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagen_video.cascade.config import SAMPLING_FIELDS, CascadeConfig, StageConfig
from imagen_video.cascade.stage_io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    StageLoadError,
    copy_stage_folder,
    read_stage_config,
)
from imagen_video.serialization import MALFORMED_ERRORS, atomic_write_json

CASCADE_FILE = "cascade.json"
CASCADE_FORMAT = "imagen-video-cascade"
CASCADE_FORMAT_VERSION = 1


class CascadeLoadError(ValueError):
    """A directory is not a cascade, or one of its stages is missing or does not match; names the stage."""


@dataclass(frozen=True)
class CascadeManifest:
    """Contents of ``cascade.json``: the config and the identity of the text encoder it was built with."""

    config: CascadeConfig
    text_encoder_identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``cascade.json``."""
        return {
            "format": CASCADE_FORMAT,
            "format_version": CASCADE_FORMAT_VERSION,
            "stage_order": list(self.config.stage_names),
            "text_encoder_identity": self.text_encoder_identity,
            "config": self.config.to_dict(),
        }


def write_cascade_json(directory: str | os.PathLike[str], manifest: CascadeManifest) -> Path:
    """Atomically write ``<directory>/cascade.json``; return its path."""
    return atomic_write_json(Path(directory) / CASCADE_FILE, manifest.to_dict())


def read_cascade_json(directory: str | os.PathLike[str]) -> CascadeManifest:
    """Read ``<directory>/cascade.json``; CascadeLoadError when the directory is not a cascade."""
    folder = Path(directory)
    if not folder.is_dir():
        raise CascadeLoadError(f"{str(folder)!r} is not a cascade directory: it does not exist")
    path = folder / CASCADE_FILE
    if not path.is_file():
        raise CascadeLoadError(f"{str(folder)!r} is not a cascade directory: it has no {CASCADE_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CascadeLoadError(f"{str(path)!r} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != CASCADE_FORMAT:
        raise CascadeLoadError(f'{str(path)!r} is not a cascade file (no "format": "{CASCADE_FORMAT}")')
    if data.get("format_version") != CASCADE_FORMAT_VERSION:
        raise CascadeLoadError(
            f"{str(path)!r} has format_version {data.get('format_version')!r}; "
            f"this version reads {CASCADE_FORMAT_VERSION}"
        )
    if not isinstance(data.get("config"), dict):
        raise CascadeLoadError(f"{str(path)!r}: 'config' must be a JSON object")
    identity = data.get("text_encoder_identity")
    if identity is not None and not isinstance(identity, str):
        raise CascadeLoadError(f"{str(path)!r}: 'text_encoder_identity' must be a string or null")
    try:
        config = CascadeConfig.from_dict(data["config"])
    except MALFORMED_ERRORS as err:
        raise CascadeLoadError(f"{str(path)!r}: invalid cascade config: {err}") from None
    if list(config.stage_names) != data.get("stage_order"):
        raise CascadeLoadError(
            f"{str(path)!r}: stage_order {data.get('stage_order')} disagrees with the config's stages "
            f"{list(config.stage_names)}"
        )
    return CascadeManifest(config=config, text_encoder_identity=identity)


def read_cascade_config(path: str | os.PathLike[str]) -> CascadeConfig:
    """A :class:`CascadeConfig` from a cascade directory, its ``cascade.json``, or a plain
    ``CascadeConfig.to_json()`` file."""
    target = Path(path)
    if target.is_dir():
        return read_cascade_json(target).config
    data = json.loads(target.read_text(encoding="utf-8"))
    if isinstance(data, dict) and data.get("format") == CASCADE_FORMAT:
        return read_cascade_json(target.parent).config
    return CascadeConfig.from_dict(data)


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves where two nested config dicts differ."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out.extend(_differences(left, right, f"{prefix}{key}."))
        elif left != right:
            out.append(f"{prefix}{key}")
    return out


def resolve_stage_config(directory: str | os.PathLike[str], stage: StageConfig) -> StageConfig:
    """Check the stage folder ``<directory>/<stage.name>`` against ``cascade.json``'s ``stage``.

    The network-defining fields must be equal (CascadeLoadError naming the stage and the differing
    fields); the returned config is the folder's, with ``cascade.json``'s sampling fields.
    """
    folder = Path(directory) / stage.name
    try:
        on_disk = read_stage_config(folder, stage.name)
    except StageLoadError as err:
        raise CascadeLoadError(str(err)) from err
    differing = _differences(on_disk.architecture(), stage.architecture())
    if differing:
        raise CascadeLoadError(
            f"stage {stage.name!r}: {str(folder / CONFIG_FILE)!r} does not match {CASCADE_FILE} "
            f"(differs in {', '.join(differing[:6])})"
        )
    return on_disk.replace(**{field: getattr(stage, field) for field in SAMPLING_FIELDS})


def order_stages(stages: list[StageConfig]) -> list[StageConfig]:
    """Order stage configs into a chain: the base, then each stage whose input is the previous output.

    ValueError naming the stages when there is no base, several candidates, or stages left over.
    """
    bases = [s for s in stages if s.kind == "base"]
    if len(bases) != 1:
        raise ValueError(f"a cascade needs exactly one base stage, found {[s.name for s in bases]}")
    chain, rest = [bases[0]], [s for s in stages if s.kind != "base"]
    while rest:
        nxt = [s for s in rest if s.cond_shape == chain[-1].shape]
        output = "x".join(str(n) for n in chain[-1].shape)
        if not nxt:
            inputs = ", ".join(f"{s.name} takes {'x'.join(str(n) for n in s.cond_shape)}" for s in rest)
            raise ValueError(
                f"no stage takes stage {chain[-1].name!r}'s output {output} (frames x height x width) as "
                f"its input ({inputs}): a stage producing the input of {rest[0].name} is missing"
            )
        if len(nxt) > 1:
            raise ValueError(
                f"several stages ({', '.join(s.name for s in nxt)}) take stage {chain[-1].name!r}'s "
                f"output {output}; give the order explicitly (--order)"
            )
        chain.append(nxt[0])
        rest.remove(nxt[0])
    return chain


def stage_folders(directory: str | os.PathLike[str]) -> list[Path]:
    """The stage folders in a cascade directory (subfolders with a ``config.json``), sorted by name;
    the frame-conditioned base's ``base_frames/`` is not a stage."""
    from imagen_video.cascade.frame_base import FRAME_BASE_DIR

    root = Path(directory)
    folders = sorted(root.iterdir()) if root.is_dir() else []
    return [p for p in folders if (p / CONFIG_FILE).is_file() and p.name != FRAME_BASE_DIR]


def assemble_cascade(
    directory: str | os.PathLike[str],
    *,
    name: str,
    text_encoder: str,
    text_max_length: int,
    stage_dirs: list[str | os.PathLike[str]] | None = None,
    order: list[str] | None = None,
    text_encoder_identity: str | None = None,
    text_dim: int | None = None,
    frame_base: str | os.PathLike[str] | None = None,
) -> CascadeConfig:
    """Write ``cascade.json`` over trained stage folders and return the config.

    ``stage_dirs``: stage folders to copy into ``<directory>/<stage name>/`` (e.g. a training run's
    ``<run>/stage``); default: the stage folders already in ``directory``. ``order``: the stage names
    in sampling order; default: inferred from the shapes (:func:`order_stages`). ``text_dim``: the
    text encoder's width, checked against every stage before anything is written. Stage sampling
    defaults come from the stage folders. ``frame_base``: a frame-conditioned base's stage folder to
    copy in as ``base_frames/`` (:mod:`imagen_video.cascade.frame_base`); an existing one is kept.
    Raises ValueError / StageLoadError naming the stage.
    """
    from imagen_video.cascade.frame_base import FRAME_BASE_DIR, check_frame_base

    root = Path(directory)
    if stage_dirs:
        found = [(Path(d), read_stage_config(d)) for d in stage_dirs]
    else:
        found = [(p, read_stage_config(p, p.name)) for p in stage_folders(root)]
    if not found:
        raise ValueError(f"no stage folders (with {CONFIG_FILE}) in {str(root)!r} and none given")
    by_name: dict[str, tuple[Path, StageConfig]] = {}
    for folder, cfg in found:
        if cfg.name in by_name:
            raise ValueError(f"stage name {cfg.name!r} appears twice ({by_name[cfg.name][0]} and {folder})")
        if not (folder / WEIGHTS_FILE).is_file():
            raise StageLoadError(f"stage {cfg.name!r}: {str(folder / WEIGHTS_FILE)!r} is missing")
        by_name[cfg.name] = (folder, cfg)
    if order is not None:
        unknown = [n for n in order if n not in by_name]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown} in the order; found: {', '.join(by_name)}")
        stages = [by_name[n][1] for n in order]
    else:
        stages = order_stages([cfg for _, cfg in by_name.values()])
    config = CascadeConfig(
        name=name, text_encoder=text_encoder, text_max_length=text_max_length, stages=tuple(stages)
    )
    if text_dim is not None and stages[0].unet.text.dim != text_dim:
        raise ValueError(
            f"text encoder {text_encoder!r} gives width {text_dim}; the stages take {stages[0].unet.text.dim}"
        )
    frame_cfg = read_stage_config(frame_base, stages[0].name) if frame_base is not None else None
    if frame_cfg is not None:
        check_frame_base(frame_cfg, stages[0])
    for stage in stages:
        source, target = by_name[stage.name][0], root / stage.name
        if source.resolve() != target.resolve():
            copy_stage_folder(source, target)
    if frame_base is not None and Path(frame_base).resolve() != (root / FRAME_BASE_DIR).resolve():
        copy_stage_folder(frame_base, root / FRAME_BASE_DIR)
    write_cascade_json(root, CascadeManifest(config, text_encoder_identity))
    return config
