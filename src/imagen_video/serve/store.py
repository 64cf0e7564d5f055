"""The durable job store of ``imagen-video serve``: jobs in SQLite (write-ahead log), outputs as files.

One table holds every job with its request and status (``queued``, ``in_progress``, ``completed``,
``failed``). Each video's files live in ``<root>/videos/<job id>/`` and are written atomically
(:mod:`imagen_video.serialization`), so a reader never sees a partial file; a job becomes
``completed`` only after the files the worker writes are in place (the other variants are written on
first request, :mod:`imagen_video.serve.variants`). Ids are random (:func:`new_job_id`) and the
only part of a path that comes from a job, checked against :data:`JOB_ID` before any path is built.

After a crash (even ``kill -9``) the store is consistent: committed jobs survive (WAL with
``synchronous=FULL``), and :meth:`JobStore.recover` puts jobs that were in progress back in the
queue, so each accepted job completes exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

JobStatus = Literal["queued", "in_progress", "completed", "failed"]
JOB_ID = re.compile(r"video_[0-9a-f]{32}")
VARIANTS = {"mp4": ".mp4", "gif": ".gif", "png": "_frames.zip"}  # variant -> file name suffix
PREVIEW_NAME = "preview.mp4"
PREVIEW_FRAMES_NAME = "preview_frames.zip"
_FILE_LOCKS = 64  # jobs share this many file locks (by id), so the locks never grow with the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    error TEXT,
    warning TEXT,
    batch_size INTEGER,
    completions INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);
"""


def new_job_id() -> str:
    """A random job id, ``video_`` and 32 hex digits (128 bits from :mod:`secrets`)."""
    return f"video_{secrets.token_hex(16)}"


def is_job_id(value: str) -> bool:
    """True when ``value`` has the shape of a job id (nothing else ever reaches a path)."""
    return JOB_ID.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True)
class Job:
    """One stored job: its id, the validated request (a JSON object) and its status fields."""

    id: str
    status: JobStatus
    request: dict[str, Any]
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    warning: str | None = None
    batch_size: int | None = None
    completions: int = 0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """The job of a ``jobs`` table row."""
        fields = dict(row)
        fields.pop("seq")
        fields["request"] = json.loads(fields["request"])
        return cls(**fields)


class JobStore:
    """Jobs in ``<root>/jobs.sqlite3`` and their files under ``<root>/videos``; safe across threads."""

    def __init__(self, root: str | Path) -> None:
        """Open (creating if needed) the store at ``root``."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "videos").mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._file_locks = [threading.Lock() for _ in range(_FILE_LOCKS)]
        self._db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def server_lock(self) -> Any:
        """The lock a server holds on the store while it runs (a :class:`filelock.FileLock`), so that a
        second server cannot requeue the first one's jobs; the OS frees it when the process dies."""
        from filelock import FileLock

        return FileLock(self.root / "server.lock")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ------------------------------------------------------------------------------------------
    # jobs
    # ------------------------------------------------------------------------------------------

    def add(self, job_id: str, request: dict[str, Any], *, warning: str | None = None) -> Job:
        """Insert a queued job (committed before this returns, so an accepted job survives a crash)."""
        created = time.time()
        with self._lock:
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()
            self._db.execute(
                "INSERT INTO jobs (id, seq, status, request, created_at, warning) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, seq, "queued", json.dumps(request), created, warning),
            )
        return Job(job_id, "queued", request, created, warning=warning)

    def get(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None."""
        rows = self._execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job.from_row(rows[0]) if rows else None

    def newest(self, *, limit: int, after: str | None = None) -> list[Job]:
        """Up to ``limit`` jobs, newest first, starting after the job ``after`` (cursor pagination)."""
        if after is None:
            rows = self._execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = self._execute(
                "SELECT * FROM jobs WHERE seq < (SELECT seq FROM jobs WHERE id = ?) "
                "ORDER BY seq DESC LIMIT ?",
                (after, limit),
            )
        return [Job.from_row(row) for row in rows]

    def queued(self) -> list[Job]:
        """Every queued job, oldest first."""
        return [
            Job.from_row(r) for r in self._execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq")
        ]

    def count(self, status: JobStatus) -> int:
        """How many jobs have ``status``."""
        return int(self._execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,))[0][0])

    def start(self, job_ids: list[str], batch_size: int) -> None:
        """Mark queued jobs in progress in one batch of ``batch_size`` videos."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            for job_id in job_ids:
                self._db.execute(
                    "UPDATE jobs SET status = 'in_progress', started_at = ?, batch_size = ? "
                    "WHERE id = ? AND status = 'queued'",
                    (now, batch_size, job_id),
                )
            self._db.execute("COMMIT")

    def complete(self, job_ids: list[str], warnings: dict[str, str] | None = None) -> list[str]:
        """Mark in-progress jobs completed in one transaction (their files must be in place), with
        any ``warnings`` (id -> message); return the ids that were no longer in progress (deleted
        while they ran)."""
        now, gone, warnings = time.time(), [], warnings or {}
        with self._lock:
            self._db.execute("BEGIN")
            for job_id in job_ids:
                cursor = self._db.execute(
                    "UPDATE jobs SET status = 'completed', completed_at = ?, completions = completions + 1, "
                    "warning = COALESCE(?, warning) WHERE id = ? AND status = 'in_progress'",
                    (now, warnings.get(job_id), job_id),
                )
                if cursor.rowcount != 1:
                    gone.append(job_id)
            self._db.execute("COMMIT")
        return gone

    def fail(self, job_id: str, error: str) -> None:
        """Mark a job failed with a one-line ``error``."""
        self._execute(
            "UPDATE jobs SET status = 'failed', completed_at = ?, error = ? WHERE id = ?",
            (time.time(), error, job_id),
        )

    def delete(self, job_id: str) -> bool:
        """Remove a job and its files; False when there was none."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        if cursor.rowcount != 1:
            return False
        with self.file_lock(job_id):  # no variant of the job is being written meanwhile
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return True

    def recover(self) -> int:
        """Put jobs left in progress by a crash back in the queue; return how many (start-up only)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, batch_size = NULL "
                "WHERE status = 'in_progress'"
            )
        for directory in (self.root / "videos").iterdir():
            for leftover in directory.glob(".*.tmp*"):  # temporary files of writes a crash cut short
                leftover.unlink(missing_ok=True)
        return cursor.rowcount

    # ------------------------------------------------------------------------------------------
    # files
    # ------------------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        """``<root>/videos/<job id>``; ValueError for anything that is not a job id."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / "videos" / job_id

    def video_path(self, job_id: str, index: int, variant: str) -> Path:
        """The file of video ``index`` of a job in ``variant`` (mp4, gif or png: a zip of PNG frames)."""
        return self.job_dir(job_id) / f"video_{index}{VARIANTS[variant]}"

    def preview_path(self, job_id: str) -> Path:
        """The mp4 of the base stage's low-resolution clip of a job's first video."""
        return self.job_dir(job_id) / PREVIEW_NAME

    def preview_frames_path(self, job_id: str) -> Path:
        """The frames of that clip (a zip of PNG frames, written as soon as the base stage is done)."""
        return self.job_dir(job_id) / PREVIEW_FRAMES_NAME

    def file_lock(self, job_id: str) -> threading.Lock:
        """The lock held while a job's files are written on request or removed (shared by a fixed
        number of jobs); ValueError for anything that is not a job id."""
        return self._file_locks[int(self.job_dir(job_id).name[-8:], 16) % _FILE_LOCKS]

    def iter_completed(self, limit: int) -> Iterator[Job]:
        """The newest ``limit`` completed jobs, newest first (the page's gallery)."""
        rows = self._execute(
            "SELECT * FROM jobs WHERE status = 'completed' ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return (Job.from_row(row) for row in rows)
