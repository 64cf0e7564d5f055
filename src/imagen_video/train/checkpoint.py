"""Crash-safe checkpoint directories: safetensors groups plus one JSON state file, never pickles.

Layout under a checkpoint root (``out_dir/checkpoints``)::

    step_00000100/            one complete checkpoint
        <group>.safetensors   e.g. model, ema, optimizer, rng (tensors only)
        state.json            everything else (step, data position, optimizer param groups, RNG ints)
    latest                    text file naming the newest complete checkpoint directory

A checkpoint is first written to ``.tmp-step_...`` (every file fsynced, then the directory), renamed to
its final name in one ``os.rename`` and only then is ``latest`` replaced atomically. A SIGKILL at any
moment therefore leaves either the previous checkpoint or the new one, never a half-written one; left-
over ``.tmp-*`` directories are ignored by :func:`find_latest_checkpoint` and removed by
:func:`remove_temp_dirs`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from imagen_video.serialization import atomic_write_text

CHECKPOINT_PREFIX = "step_"
TEMP_PREFIX = ".tmp-"
LATEST_FILE = "latest"
STATE_FILE = "state.json"


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint taken after ``step`` optimiser steps."""
    return f"{CHECKPOINT_PREFIX}{step:08d}"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_group(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    plain = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    save_file(plain, str(path))
    _fsync_path(path)


def write_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    groups: Mapping[str, Mapping[str, torch.Tensor]],
    state: Mapping[str, Any],
    *,
    keep: int,
) -> Path:
    """Atomically write checkpoint ``step`` under ``root``, point ``latest`` at it, keep the newest ``keep``.

    ``groups`` maps a group name to a flat dict of tensors (one ``<name>.safetensors`` each); ``state``
    must be JSON-serialisable. An existing checkpoint of the same step is left as it is (same step, same
    state in a deterministic run) and ``latest`` is pointed at it. Returns the checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    if not final.is_dir():
        tmp = root / f"{TEMP_PREFIX}{final.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for name, tensors in groups.items():
            _save_group(tensors, tmp / f"{name}.safetensors")
        state_path = tmp / STATE_FILE
        state_path.write_text(json.dumps(dict(state), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_path(state_path)
        _fsync_path(tmp)
        os.rename(tmp, final)
        _fsync_path(root)
    atomic_write_text(root / LATEST_FILE, final.name + "\n")
    prune_checkpoints(root, keep=keep)
    return final


def list_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoint directories under ``root``, oldest first (temp directories excluded)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def find_latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The checkpoint named by ``latest`` if it is complete, else the newest complete one, else None."""
    root = Path(root)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        named = root / pointer.read_text(encoding="utf-8").strip()
        if named.name.startswith(CHECKPOINT_PREFIX) and (named / STATE_FILE).is_file():
            return named
    complete = list_checkpoints(root)
    return complete[-1] if complete else None


def prune_checkpoints(root: str | os.PathLike[str], *, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints (never the one ``latest`` names)."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep!r}")
    latest = find_latest_checkpoint(root)
    for path in list_checkpoints(root)[:-keep]:
        if path != latest:
            shutil.rmtree(path, ignore_errors=True)


def remove_temp_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """Remove half-written ``.tmp-*`` checkpoint directories left by a killed run; return them."""
    root = Path(root)
    if not root.is_dir():
        return []
    stale = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(TEMP_PREFIX)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def read_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Load a checkpoint directory: ``({group: {name: tensor}}, state)`` with tensors on CPU."""
    from safetensors.torch import load_file

    path = Path(path)
    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    groups = {f.name[: -len(".safetensors")]: load_file(str(f)) for f in sorted(path.glob("*.safetensors"))}
    return groups, state


def open_latest_checkpoint(
    root: str | os.PathLike[str], *, report: bool = True
) -> tuple[Path, dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """``(path, groups, state)`` of the newest complete checkpoint under ``root`` (see
    :func:`read_checkpoint`), or None when there is none (said on stderr when ``report``)."""
    path = find_latest_checkpoint(root)
    if path is None:
        if report:
            print(f"no checkpoint in {root}; starting from step 0", file=sys.stderr)
        return None
    groups, state = read_checkpoint(path)
    return path, groups, state


def clear_incomplete(root: str | os.PathLike[str]) -> None:
    """Remove the half-written checkpoint directories of a killed run, saying which on stderr."""
    for stale in remove_temp_dirs(root):
        print(f"removed incomplete checkpoint {stale}", file=sys.stderr)
