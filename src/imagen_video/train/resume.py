"""Resuming safely: the newest checkpoint that verifies, with a warning for each one skipped.

``train --resume`` must never crash on a damaged latest checkpoint (a truncated safetensors file, a
bad ``state.json``, a missing file, a bit flip): :func:`load_newest_valid` tries the checkpoints
newest first, verifies each one's files against their recorded sha256 and its ``state.json`` against
:data:`STATE_FIELDS`, warns about each one it skips and loads the first that passes
(docs/reliability.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from imagen_video.integrity import IntegrityError
from imagen_video.serialization import MALFORMED_ERRORS
from imagen_video.train import checkpoint as ckpt
from imagen_video.train.config import TrainSetupError

STATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "step": int,
    "micro_batches": int,
    "world_size": int,
    "ema_num_updates": int,
    "skipped_steps": int,
    "optimizer": dict,
    "rng": dict,
    "train_config": dict,
    "stage_config": dict,
}
"""Required keys of a training checkpoint's ``state.json`` and their JSON types (integers >= 0)."""

Loader = Callable[[Path, dict[str, dict[str, torch.Tensor]], dict[str, Any]], None]


def check_state(state: dict[str, Any], path: Path) -> None:
    """ValueError naming the checkpoint and the field unless ``state`` has every :data:`STATE_FIELDS`
    key with its type (integers >= 0, ``world_size`` >= 1)."""
    for key, kind in STATE_FIELDS.items():
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"checkpoint {path.name}: {ckpt.STATE_FILE} field {key!r} is missing or invalid")
        if isinstance(value, int) and value < (1 if key == "world_size" else 0):
            raise ValueError(f"checkpoint {path.name}: {ckpt.STATE_FILE} field {key!r} is out of range")


def candidates(root: Path) -> list[Path]:
    """Complete checkpoints, the one ``latest`` names first, then the others newest first."""
    found = list(reversed(ckpt.list_checkpoints(root)))
    latest = ckpt.find_latest_checkpoint(root)
    if latest is not None and latest in found:
        found.remove(latest)
        found.insert(0, latest)
    return found


def load_newest_valid(root: Path, load: Loader, *, verbose: bool = True) -> Path | None:
    """Call ``load(path, groups, state)`` with the newest checkpoint under ``root`` that verifies and
    loads; return its path, or None when ``root`` holds no checkpoint.

    A checkpoint that fails (integrity, ``state.json`` fields, tensors that do not fit the model) is
    skipped with one warning line; :class:`TrainSetupError` (a checkpoint of another network) is
    raised as it is, and when every checkpoint fails the error names the newest one's problem.
    """
    found = candidates(root)
    problems = []
    for path in found:
        try:
            groups, state = ckpt.read_checkpoint(path, verify=True)
            check_state(state, path)
            load(path, groups, state)
        except TrainSetupError:
            raise
        except (IntegrityError, RuntimeError, *MALFORMED_ERRORS) as err:
            message = " ".join(str(err).split())
            problems.append(message)
            if verbose:
                print(f"warning: skipping checkpoint {path.name}: {message}", file=sys.stderr)
            continue
        return path
    if problems:
        raise TrainSetupError(f"no checkpoint in {root} can be resumed (newest: {problems[0]})")
    return None
