"""Integrity of weights files: sha256 recorded beside each file written, verified at load, and the
tensors checked for dtype and NaN / Inf before any sampling (docs/reliability.md).

Every safetensors file the project writes (stage folders, training checkpoints, text-embedding cache
shards) has its sha256 recorded in the JSON file beside it; loading recomputes it and refuses a file
whose bytes changed (a bit flip, a truncation, a swapped file). Hashing reads the whole file once;
its cost at demo and paper size is measured in docs/reliability.md, and ``--no-verify`` skips it for
a trusted large model. A file without a recorded hash (written before hashes were recorded) loads
without this check.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import torch

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 22


class IntegrityError(ValueError):
    """A weights file or tensor is not what was written; the message is one line naming it."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike[str], expected: str | None, *, what: str) -> None:
    """Raise :class:`IntegrityError` naming ``what`` and the file unless its sha256 is ``expected``.

    ``expected`` None (no hash recorded) passes; a missing or unreadable file is an IntegrityError too.
    """
    if expected is None:
        return
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise IntegrityError(f"{what}: cannot read {os.fspath(path)!r}: {err.strerror or err}") from None
    if actual != expected:
        raise IntegrityError(
            f"{what}: {os.fspath(path)!r} does not match its recorded sha256 (recorded {expected[:12]}..., "
            f"found {actual[:12]}...): the file changed after it was written"
        )


def check_sha256_field(value: object, where: str) -> str | None:
    """A recorded sha256 read from JSON: None, or 64 lowercase hex digits (ValueError otherwise)."""
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_PATTERN.fullmatch(value):
        raise ValueError(f"{where} must be 64 lowercase hex digits, got {value!r}")
    return value


def check_tensors(tensors: Mapping[str, torch.Tensor], dtypes: Collection[torch.dtype], *, what: str) -> None:
    """Before any sampling: every tensor of ``tensors`` has one of ``dtypes`` (the dtype the weights
    were written in: no silent cast of int64 or fp16 weights) and holds no NaN or Inf. Raises
    :class:`IntegrityError` naming ``what`` and the first bad tensor."""
    for name, tensor in tensors.items():
        if tensor.dtype not in dtypes:
            expected = " or ".join(str(d) for d in dtypes)
            raise IntegrityError(f"{what}: tensor {name!r} is {tensor.dtype}, expected {expected}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise IntegrityError(f"{what}: tensor {name!r} holds {bad} NaN or infinite value(s)")


def record_sha256(paths: Mapping[str, Path]) -> dict[str, str]:
    """``{name: sha256}`` of the files ``paths`` (to store in the JSON beside them)."""
    return {name: file_sha256(path) for name, path in paths.items()}
