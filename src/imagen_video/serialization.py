"""Shared plumbing for configs and files: lossless JSON for frozen dataclasses, and atomic writes.

Every config in the project is a frozen dataclass that inherits :class:`JsonConfig`; nested configs,
tuples and enums-as-strings round-trip exactly through ``to_dict`` / ``from_dict``. Every file the
project writes (checkpoints, cascade folders, videos) goes through :func:`atomic_write`, so a crash
or SIGKILL at any moment never leaves a half-written file at the final path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="JsonConfig")

MALFORMED_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
)
"""What building a config from arbitrary JSON can raise; readers turn these into one-line errors."""


class JsonConfig:
    """Mixin for frozen dataclass configs: lossless ``to_dict`` / ``from_dict`` / JSON round trip."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (nested configs become dicts, tuples become lists)."""
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build the config from ``to_dict`` output; unknown keys are an error that names them."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in data.items():
            try:
                kwargs[name] = _from_plain(hints[name], value)
            except MALFORMED_ERRORS as err:
                raise ValueError(f"{cls.__name__}.{name}{_nested(err)}") from None
        try:
            return cls(**kwargs)
        except (TypeError, AttributeError, OverflowError) as err:  # a value of the wrong JSON type
            raise ValueError(f"{cls.__name__}: a field has the wrong type ({err})") from None

    def to_json(self, indent: int | None = 2) -> str:
        """Serialize to a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        """Parse a JSON string written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def replace(self: T, **changes: Any) -> T:
        """Return a copy with some fields changed (validation runs again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def _nested(err: BaseException) -> str:
    """The rest of a field path: ``[1]: ...`` or ``.name: ...`` from an inner error, else ``: ...``."""
    text = str(err.args[0]) if err.args else type(err).__name__
    return text if text.startswith(("[", ".")) else f": {text}"


def _from_plain(hint: Any, value: Any) -> Any:
    """Convert plain JSON data back to the annotated type (dataclasses, tuples, optionals)."""
    if value is None:
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            raise TypeError(f"expected a JSON object ({hint.__name__}), got null")
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        for option in non_none:
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return _from_plain(option, value)
        return _from_plain(non_none[0], value) if len(non_none) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if issubclass(hint, JsonConfig):
            return hint.from_dict(value)
        return hint(**value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and not isinstance(value, dict):
        raise TypeError(f"expected a JSON object ({hint.__name__}), got {type(value).__name__}")
    if origin in (tuple, list) and not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a JSON array, got {type(value).__name__}")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_element(args[0], i, v) for i, v in enumerate(value))
        if args:
            return tuple(_from_plain(a, v) for a, v in zip(args, value, strict=True))
        return tuple(value)
    if origin is list:
        return [_from_plain(args[0], v) for v in value] if args else list(value)
    if origin is dict:
        return {k: _from_plain(args[1], v) for k, v in value.items()} if args else dict(value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def _element(hint: Any, index: int, value: Any) -> Any:
    """``_from_plain`` of one array element; an error names its index (``[1]: ...``)."""
    try:
        return _from_plain(hint, value)
    except MALFORMED_ERRORS as err:
        raise ValueError(f"[{index}]{_nested(err)}") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is left
    as it was, so readers only ever see a complete file.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())  # mkstemp and safetensors create 0600; use the umask's mode
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def default_file_mode() -> int:
    """Mode of a new file under the process umask (0644 with the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``; return ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write a UTF-8 text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_safetensors_atomic(
    tensors: dict[str, Any], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> Path:
    """Atomically save a dict of tensors as safetensors (tensors are made contiguous on CPU)."""
    from safetensors.torch import save_file

    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(plain, str(tmp), metadata=metadata))
