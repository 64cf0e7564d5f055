"""Output-path preflight, one-line file errors and exclusive run-directory locks (docs/reliability.md).

Every command that writes calls :func:`check_file_output`, :func:`check_frames_output` or
:func:`check_dir_output` before it loads a model, so a bad output path fails in a second instead of
after a whole generation, and nothing the program did not write is ever deleted or replaced.
:func:`describe_os_error` turns an ``OSError`` (ENOSPC, EFBIG, EACCES, EROFS, EISDIR, EBUSY, ...) into
one line naming the path and the cause. :class:`RunLock` serialises writers of one directory (a text
embedding cache, a training run) with an ``flock`` from the ``filelock`` package plus a holder record
(pid, host, start time), so a refusal can say who holds the lock and a lock left by a dead process is
taken over with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FRAME_FILE = re.compile(r"frame_[0-9]{5}\.png")
"""Names of the PNG frames a frame-folder output holds (``frame_00000.png``, ...)."""
LOCK_NAME = ".lock"
HOLDER_NAME = ".lock-holder.json"


class OutputPathError(ValueError):
    """An output path cannot be written as asked; the message is one line naming the path."""


class LockedError(RuntimeError):
    """A directory is locked by another live process; the message names the holder."""


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_parent(directory: str | os.PathLike[str], *, option: str = "-o") -> Path:
    """Check that files can be created in ``directory``: it exists (or can be made under an existing
    ancestor) and is a directory in which a probe file can be created and removed. Returns the path;
    :class:`OutputPathError` otherwise."""
    import tempfile

    folder = Path(directory) if str(directory) else Path(".")
    anchor = _first_existing(folder.absolute())
    if not anchor.is_dir():
        raise OutputPathError(f"{option} {str(folder)!r}: {str(anchor)!r} exists and is not a directory")
    try:
        with tempfile.NamedTemporaryFile(prefix=".write-probe-", dir=anchor):
            pass
    except OSError as err:
        cause = " ".join((err.strerror or str(err)).split())
        where = f"{option} {str(folder)!r}: cannot create files in {str(anchor)!r}"
        raise OutputPathError(f"{where}: {cause}") from None
    return folder


def check_file_output(path: str | os.PathLike[str], *, option: str = "-o") -> Path:
    """Preflight of a file output (a video, a JSON report, ...) before any work is done.

    The path must name a file (not ``.``, ``..`` or an existing directory), an existing entry must be
    a regular file (it will be replaced atomically, see :func:`imagen_video.serialization.atomic_path`)
    and its parent must exist or be creatable, and be writable. Returns ``Path(path)``; raises
    :class:`OutputPathError` with one line naming ``option`` and the path.
    """
    target = Path(path)
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or target.name in ("", ".", "..") or text in (".", ".."):
        raise OutputPathError(f"{option} {text!r} names a directory; give a file name")
    if target.is_dir():
        raise OutputPathError(f"{option} {text!r} is an existing directory; give a file name")
    if target.exists() and not target.is_file():
        raise OutputPathError(f"{option} {text!r} exists and is not a regular file")
    check_parent(target.parent, option=option)
    return target


def check_frames_output(path: str | os.PathLike[str], *, option: str = "-o") -> Path:
    """Preflight of a PNG frame-folder output: a new directory, an empty one, or one holding only
    ``frame_NNNNN.png`` files from an earlier run (those are replaced); anything else is refused."""
    target = Path(path)
    text = os.fspath(path)
    if target.exists():
        if not target.is_dir():
            raise OutputPathError(f"{option} {text!r} exists and is not a directory of frames")
        foreign = sorted(p.name for p in target.iterdir() if not FRAME_FILE.fullmatch(p.name))
        if foreign:
            raise OutputPathError(
                f"{option} {text!r} is a directory holding other files than frames (e.g. {foreign[0]!r}); "
                "give a new or empty directory"
            )
    check_parent(target, option=option)  # the folder itself, or where it will be made
    return target


def check_dir_output(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Preflight of an output directory that a command fills (a run, a cache, a dataset): it is a
    directory or can be created, and is writable."""
    target = Path(path)
    text = os.fspath(path)
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{option} {text!r} exists and is not a directory")
    check_parent(target, option=option)  # the directory itself, or where it will be made
    return target


def check_outputs(paths: list[Path] | tuple[Path, ...], fmt: str, *, option: str = "-o") -> list[Path]:
    """Preflight of every video output of a command: PNG frame folders for ``fmt == "png"``, else
    files (see :func:`check_frames_output`, :func:`check_file_output`). Returns ``paths``."""
    check = check_frames_output if fmt == "png" else check_file_output
    parents: set[Path] = set()
    for path in paths:
        if Path(path).parent in parents:  # siblings of a checked path: only the entry itself
            _check_entry(Path(path), fmt, option)
        else:
            check(path, option=option)
            parents.add(Path(path).parent)
    return list(paths)


def _check_entry(path: Path, fmt: str, option: str) -> None:
    """The path-specific part of the preflight (its parent was checked already)."""
    if path.exists():
        (check_frames_output if fmt == "png" else check_file_output)(path, option=option)


def describe_os_error(err: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line for an ``OSError``: the path (the error's own, else ``path``) and the cause,
    e.g. ``cannot write 'out.mp4': No space left on device (ENOSPC)``."""
    name = err.filename if err.filename is not None else path
    code = errno.errorcode.get(err.errno, "") if err.errno is not None else ""
    cause = err.strerror or str(err) or type(err).__name__
    cause = " ".join(str(cause).split())
    where = f" {os.fspath(name)!r}" if name is not None else ""
    return f"cannot write{where}: {cause}" + (f" ({code})" if code else "")


@contextlib.contextmanager
def naming_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an ``OSError`` as one naming ``path`` (the user's output rather than a temporary file
    beside it); the errno and its cause are kept."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), os.fspath(path)) from err


def _holder_record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _wait_for_record(path: Path, seconds: float = 2.0) -> dict[str, Any] | None:
    """The holder record of a busy lock; a holder that has just taken the lock writes it within
    milliseconds, so wait up to ``seconds`` for it to appear."""
    deadline = time.monotonic() + seconds
    record = _read_holder(path)
    while record is None and time.monotonic() < deadline:
        time.sleep(0.05)
        record = _read_holder(path)
    return record


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host since 2026-12-06T20:00:00Z`` (or ``an unknown process``)."""
    if holder is None:
        return "an unknown process"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"


class RunLock:
    """Exclusive lock on a directory for the duration of a ``with`` block.

    ``directory/.lock`` is locked with ``filelock.FileLock`` (``flock``: the kernel drops it when the
    holder dies), and ``directory/.lock-holder.json`` records the holder (pid, host, start time).
    ``wait=False`` refuses at once with :class:`LockedError` naming the holder; ``wait=True`` blocks
    until the lock is free (printing one line naming the holder while it waits). A holder record left
    by a process that is gone (``kill -9``) is taken over with a warning on stderr.
    """

    def __init__(self, directory: str | os.PathLike[str], *, wait: bool, what: str = "directory") -> None:
        """Lock ``directory`` (created if needed); ``what`` names it in messages."""
        self.directory = Path(directory)
        self.wait = wait
        self.what = what
        self._lock: Any = None

    def __enter__(self) -> RunLock:
        """Acquire the lock (see the class docstring)."""
        from filelock import FileLock, Timeout

        self.directory.mkdir(parents=True, exist_ok=True)
        holder_path = self.directory / HOLDER_NAME
        lock = FileLock(str(self.directory / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = describe_holder(_wait_for_record(holder_path))
            if not self.wait:
                raise LockedError(
                    f"{self.what} {str(self.directory)!r} is in use by {holder}; wait for it to finish "
                    "or choose another directory"
                ) from None
            where = f"{self.what} {str(self.directory)!r}"
            print(f"waiting for the lock on {where} held by {holder}", file=sys.stderr)
            lock.acquire()
        stale = _read_holder(holder_path)
        if stale is not None and stale.get("pid") != os.getpid():
            print(
                f"warning: took over the stale lock on {self.what} {str(self.directory)!r} left by "
                f"{describe_holder(stale)}, which ended without releasing it",
                file=sys.stderr,
            )
        from imagen_video.serialization import atomic_write_json

        atomic_write_json(holder_path, _holder_record())
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        """Remove the holder record and release the lock."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / HOLDER_NAME).unlink()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
