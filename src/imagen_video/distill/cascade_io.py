"""Distilled stages in cascade directories: load a stage to distill, assemble original / mixed / fully
distilled cascades (paper sec. 3.4, Table 1).

A distilled stage folder (``<run>/stage``, written by ``save_stage``) has the same network as the
original plus the w-embedding (``unet.use_guidance_embedding=True``) and defaults to the stochastic
sampler. :func:`assemble_distilled_cascade` writes a new cascade directory whose stages come from the
original cascade except the replaced ones, so ``Cascade.from_pretrained`` / ``generate`` run it
unchanged: the runner gives guidance-conditioned stages one forward per step with ``guidance_w``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from imagen_video.cascade.config import CascadeConfig, StageConfig
from imagen_video.cascade.directory import (
    CascadeManifest,
    read_cascade_json,
    resolve_stage_config,
    write_cascade_json,
)
from imagen_video.cascade.runner import Cascade
from imagen_video.cascade.stage_io import (
    CONFIG_FILE,
    copy_stage_folder,
    load_stage,
    read_stage_config,
    save_stage,
)

PathLike = str | os.PathLike[str]


def load_cascade_stage(
    cascade_dir: PathLike, stage_name: str, *, device: str = "cpu"
) -> tuple[CascadeConfig, StageConfig, nn.Module]:
    """``(cascade config, stage config, frozen network)`` of stage ``stage_name`` of a cascade directory.

    The stage config carries ``cascade.json``'s sampling settings. KeyError names the valid stages;
    CascadeLoadError / StageLoadError name the stage when files are missing or do not match.
    """
    manifest = read_cascade_json(cascade_dir)
    stage = resolve_stage_config(cascade_dir, manifest.config.stage(stage_name))
    _, model = load_stage(Path(cascade_dir) / stage_name, stage_name=stage_name, device=device)
    return manifest.config, stage, model


def stage_folder(path: PathLike) -> Path:
    """A stage folder from a stage folder or a distillation / training run directory (``<run>/stage``)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "stage" / CONFIG_FILE).is_file():
        return path / "stage"
    raise FileNotFoundError(
        f"{str(path)!r} is neither a stage folder nor a run directory with a stage/ folder"
    )


def _same_network(original: StageConfig, distilled: StageConfig) -> bool:
    """True when ``distilled`` is ``original``'s network, possibly with an added w-embedding."""
    plain = distilled.replace(
        unet=distilled.unet.replace(use_guidance_embedding=original.unet.use_guidance_embedding)
    )
    return plain.architecture() == original.architecture()


WEIGHT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _copy_stage(source: Path, target: Path, weights_dtype: str | None = None) -> None:
    """Copy a stage folder's weights then its config, each atomically; with ``weights_dtype``
    ("fp16" / "bf16") the network is re-saved with its floating-point tensors in that dtype (half the
    size; the loader casts them back to the model's dtype)."""
    if weights_dtype is not None:
        config, model = load_stage(source, stage_name=target.name)
        save_stage(target, config, model.to(WEIGHT_DTYPES[weights_dtype]))
        return
    copy_stage_folder(source, target)


def assemble_distilled_cascade(
    target_dir: PathLike,
    source_dir: PathLike,
    replacements: Mapping[str, PathLike],
    *,
    name: str | None = None,
    weights_dtype: str | None = None,
) -> CascadeConfig:
    """Write a cascade directory: ``source_dir``'s stages with ``replacements`` (stage name -> distilled
    stage folder or run directory) swapped in; return its config. ``weights_dtype`` ("fp16" / "bf16")
    stores every stage's weights at half size (e.g. to ship a cascade in a package).

    E.g. ``{"tsr1": ..., "ssr1": ...}`` gives Table 1's "original base + distilled SR"; every stage
    gives the fully distilled cascade. Kept stages keep ``cascade.json``'s sampling settings; replaced
    stages bring their own (stochastic sampler, distilled step count). ValueError names the stage
    when a replacement is unknown or is not a distillation of that stage's network.
    """
    target, source = Path(target_dir), Path(source_dir)
    if weights_dtype is not None and weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype={weights_dtype!r}; allowed: {', '.join(WEIGHT_DTYPES)} or None")
    if target.resolve() == source.resolve():
        raise ValueError(f"the assembled cascade must go to a new directory, not the source {str(source)!r}")
    manifest = read_cascade_json(source)
    unknown = sorted(set(replacements) - set(manifest.config.stage_names))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(manifest.config.stage_names)}")
    stages: list[StageConfig] = []
    for stage in manifest.config.stages:
        if stage.name in replacements:
            folder = stage_folder(replacements[stage.name])
            config = read_stage_config(folder, stage.name)
            if not _same_network(stage, config):
                raise ValueError(
                    f"stage {stage.name!r}: {str(folder)!r} is not a distillation of its network"
                )
        else:
            folder, config = source / stage.name, resolve_stage_config(source, stage)
        _copy_stage(folder, target / stage.name, weights_dtype)
        stages.append(config)
    config = manifest.config.replace(name=name or f"{manifest.config.name}-distilled", stages=tuple(stages))
    write_cascade_json(target, CascadeManifest(config, manifest.text_encoder_identity))
    return config


def mixed_cascade(original: Cascade, distilled: Cascade, distilled_stages: Sequence[str]) -> Cascade:
    """In memory: ``original`` with the stages ``distilled_stages`` (networks and configs) taken from
    ``distilled`` (Table 1's mixed rows); both cascades must share stage names and shapes."""
    config, models = original.config, dict(original.models)
    for stage_name in distilled_stages:
        if not _same_network(original.config.stage(stage_name), distilled.config.stage(stage_name)):
            raise ValueError(f"stage {stage_name!r} of the distilled cascade is another network")
        config = config.replace_stage(distilled.config.stage(stage_name))
        models[stage_name] = distilled.models[stage_name]
    return Cascade(
        config, models, device=original.device, dtype=original.dtype, text_encoder=original.text_encoder
    )
