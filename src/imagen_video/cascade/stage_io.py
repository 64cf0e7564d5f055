"""The single place that reads and writes a stage folder (docs/CONTRIBUTING.md, "Cascade directory").

A stage folder ``<cascade dir>/<stage name>/`` holds ``config.json`` (the :class:`StageConfig`) and
``model.safetensors`` (the network's weights; the EMA weights when written by training). Both are
written atomically; weights first, then the config, so a folder whose ``config.json`` is new always
has the matching weights. Loading checks that every file exists and that the weights match the
config key by key and shape by shape, and every error names the stage.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from imagen_video.cascade.config import StageConfig
from imagen_video.serialization import atomic_write, atomic_write_json, save_safetensors_atomic

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STAGE_FORMAT = "imagen-video-stage"
_MAX_LISTED_KEYS = 4


class StageLoadError(ValueError):
    """A stage folder is missing, incomplete, or its weights do not match its config; names the stage."""


def save_stage(directory: str | os.PathLike[str], stage_cfg: StageConfig, model: torch.nn.Module) -> Path:
    """Write ``model``'s weights and ``stage_cfg`` into the stage folder ``directory``; return it.

    ``model`` must be built from ``stage_cfg.unet`` (checked through its ``config`` attribute when it
    has one). Pass the EMA model to save EMA weights. Tensors are saved on CPU in their own dtype.
    """
    folder = Path(directory)
    config = getattr(model, "config", None)
    if config is not None and config != stage_cfg.unet:
        raise ValueError(f"stage {stage_cfg.name!r}: the model's UNetConfig differs from stage_cfg.unet")
    state = model.state_dict()
    metadata = {"format": STAGE_FORMAT, "stage": stage_cfg.name}
    save_safetensors_atomic(dict(state), folder / WEIGHTS_FILE, metadata=metadata)
    atomic_write_json(folder / CONFIG_FILE, stage_cfg.to_dict())
    return folder


def copy_stage_folder(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy a stage folder's two files into ``target``, weights first, each atomically (a reader never
    sees a config without its weights); returns ``target``."""
    source, target = Path(source), Path(target)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        atomic_write(target / name, lambda tmp, name=name: shutil.copyfile(source / name, tmp))
    return target


def read_stage_config(directory: str | os.PathLike[str], stage_name: str | None = None) -> StageConfig:
    """Read the :class:`StageConfig` of a stage folder; StageLoadError naming the stage on any problem.

    ``stage_name`` is the name the caller expects (e.g. from ``cascade.json``); it defaults to the
    folder's name and must match the config's ``name``.
    """
    folder = Path(directory)
    expected = stage_name if stage_name is not None else folder.name
    if not folder.is_dir():
        raise StageLoadError(f"stage {expected!r}: folder {str(folder)!r} does not exist")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise StageLoadError(f"stage {expected!r}: {str(path)!r} is missing")
    try:
        stage_cfg = StageConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as err:
        raise StageLoadError(f"stage {expected!r}: invalid {CONFIG_FILE}: {err}") from err
    if stage_name is not None and stage_cfg.name != stage_name:
        raise StageLoadError(
            f"stage {expected!r}: {str(path)!r} describes stage {stage_cfg.name!r}, not {stage_name!r}"
        )
    return stage_cfg


def load_stage_weights(
    directory: str | os.PathLike[str], stage_cfg: StageConfig, *, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` of a stage folder (StageLoadError naming the stage when missing)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise StageLoadError(f"stage {stage_cfg.name!r}: {str(path)!r} is missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise StageLoadError(f"stage {stage_cfg.name!r}: cannot read {str(path)!r}: {err}") from err


def build_stage_model(stage_cfg: StageConfig) -> torch.nn.Module:
    """A freshly initialised :class:`VideoUNet` for ``stage_cfg`` (paper sec. 2.3)."""
    from imagen_video.models import VideoUNet

    return VideoUNet(stage_cfg.unet)


def check_weights_match(
    stage_cfg: StageConfig, model: torch.nn.Module, state: dict[str, torch.Tensor]
) -> None:
    """Raise StageLoadError naming the stage and the first mismatching keys unless ``state`` has
    exactly ``model``'s keys with the same shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:_MAX_LISTED_KEYS])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:_MAX_LISTED_KEYS])})")
    if wrong:
        shown = ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:_MAX_LISTED_KEYS]
        )
        problems.append(f"{len(wrong)} with the wrong shape ({shown})")
    if problems:
        raise StageLoadError(
            f"stage {stage_cfg.name!r}: weights do not match its config: {'; '.join(problems)}"
        )


def load_stage(
    directory: str | os.PathLike[str],
    *,
    stage_name: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[StageConfig, torch.nn.Module]:
    """Load a stage folder: ``(StageConfig, VideoUNet)`` in eval mode on ``device`` (and ``dtype``).

    Raises :class:`StageLoadError` naming the stage when the folder or a file is missing, the config
    is invalid, or the weights do not match the config.
    """
    stage_cfg = read_stage_config(directory, stage_name)
    state = load_stage_weights(directory, stage_cfg)
    model = build_stage_model(stage_cfg)
    check_weights_match(stage_cfg, model, state)
    model.load_state_dict(state, strict=True)
    model.to(device=device, dtype=dtype)
    model.eval().requires_grad_(False)
    return stage_cfg, model
