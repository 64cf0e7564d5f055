"""Crash-safe checkpoint directories: safetensors groups plus one JSON state file, never pickles.

Layout under a checkpoint root (``out_dir/checkpoints``)::

    step_00000100/            one complete checkpoint
        <group>.safetensors   e.g. model, ema, optimizer, rng (tensors only)
        state.json            everything else (step, data position, optimizer param groups, RNG ints)
                              and ``files_sha256``: the sha256 of each safetensors file
    latest                    text file naming the newest complete checkpoint directory

A checkpoint is first written to ``.tmp-step_...`` (every file fsynced, then the directory), renamed to
its final name in one ``os.rename`` and only then is ``latest`` replaced atomically; a failed write
removes its own temporary directory. Pruning renames an old checkpoint to ``.tmp-del-*`` before
deleting it, so a kill during pruning never leaves a partial ``step_*``. A SIGKILL at any moment
therefore leaves either the previous checkpoint or the new one, never a half-written one; left-over
``.tmp-*`` directories and ``step_*`` directories without a complete ``state.json`` are ignored by
:func:`find_latest_checkpoint` and removed by :func:`remove_temp_dirs`. :func:`read_checkpoint`
verifies every file against its recorded sha256 (docs/reliability.md).
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

from imagen_video.integrity import IntegrityError, check_sha256_field, file_sha256, verify_file
from imagen_video.serialization import atomic_write_text, default_file_mode

CHECKPOINT_PREFIX = "step_"
TEMP_PREFIX = ".tmp-"
LATEST_FILE = "latest"
STATE_FILE = "state.json"
DELETE_PREFIX = ".tmp-del-"
SHA256_KEY = "files_sha256"


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
    os.chmod(path, default_file_mode())  # the process umask, as for every other file written
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
        try:
            _write_files(tmp, groups, state)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # this call's own temporary directory
            raise
        _fsync_path(root)
    atomic_write_text(root / LATEST_FILE, final.name + "\n")
    prune_checkpoints(root, keep=keep)
    return final


def _write_files(
    folder: Path, groups: Mapping[str, Mapping[str, torch.Tensor]], state: Mapping[str, Any]
) -> None:
    """Every group's safetensors file, then ``state.json`` with their sha256, all fsynced."""
    digests = {}
    for name, tensors in groups.items():
        path = folder / f"{name}.safetensors"
        _save_group(tensors, path)
        digests[path.name] = file_sha256(path)
    state_path = folder / STATE_FILE
    text = json.dumps({**dict(state), SHA256_KEY: digests}, indent=2, sort_keys=True) + "\n"
    state_path.write_text(text, encoding="utf-8")
    _fsync_path(state_path)
    _fsync_path(folder)


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
            doomed = path.with_name(f"{DELETE_PREFIX}{path.name}-{os.getpid()}")
            os.rename(path, doomed)  # one atomic step: a kill from here on leaves only a .tmp-* name
            shutil.rmtree(doomed, ignore_errors=True)


def _is_complete(folder: Path) -> bool:
    """A ``step_*`` directory whose ``state.json`` parses and whose listed files all exist."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict):
        return False
    files = state.get(SHA256_KEY, {})
    return isinstance(files, dict) and all(isinstance(n, str) and (folder / n).is_file() for n in files)


def remove_temp_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """Remove what a killed run can leave: ``.tmp-*`` directories (half-written or half-deleted
    checkpoints) and ``step_*`` directories without a complete ``state.json``; return them."""
    root = Path(root)
    if not root.is_dir():
        return []
    stale = [
        p
        for p in root.iterdir()
        if p.is_dir()
        and (p.name.startswith(TEMP_PREFIX) or (p.name.startswith(CHECKPOINT_PREFIX) and not _is_complete(p)))
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def read_checkpoint(
    path: str | os.PathLike[str], *, verify: bool = True
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Load a checkpoint directory: ``({group: {name: tensor}}, state)`` with tensors on CPU.

    Raises :class:`IntegrityError` (one line naming the file) when ``state.json`` is unreadable or not
    an object, or (with ``verify``) when a file listed in it is missing or differs from its recorded
    sha256.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    state_path = path / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise IntegrityError(f"checkpoint {path.name}: cannot read {STATE_FILE}: {err}") from None
    if not isinstance(state, dict):
        raise IntegrityError(f"checkpoint {path.name}: {STATE_FILE} is not a JSON object")
    files = state.pop(SHA256_KEY, {})
    if verify:
        if not isinstance(files, dict):
            raise IntegrityError(f"checkpoint {path.name}: {SHA256_KEY} in {STATE_FILE} is not an object")
        for name, digest in files.items():
            try:
                expected = check_sha256_field(digest, f"{SHA256_KEY}[{name!r}]")
            except ValueError as err:
                raise IntegrityError(f"checkpoint {path.name}: {err}") from None
            verify_file(path / Path(str(name)).name, expected, what=f"checkpoint {path.name}")
    try:
        groups = {
            f.name[: -len(".safetensors")]: load_file(str(f)) for f in sorted(path.glob("*.safetensors"))
        }
    except (SafetensorError, OSError) as err:
        raise IntegrityError(f"checkpoint {path.name}: cannot read its weights: {err}") from None
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
