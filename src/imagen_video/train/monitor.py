"""Run bookkeeping: the CSV loss log, the stop-signal flag and the progress bar (rank 0 writes only).

``train_log.csv`` has one row per ``log_every`` steps: ``step, loss, lr, grad_norm, steps_per_s,
skipped_files, skipped_steps`` (loss and grad norm are means over the logged steps and the ranks).
On resume the rows after the resumed checkpoint's step (written by the killed run after its last
checkpoint) are dropped, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from tqdm import tqdm

from imagen_video.serialization import atomic_write_text

LOG_FIELDS: tuple[str, ...] = (
    "step",
    "loss",
    "lr",
    "grad_norm",
    "steps_per_s",
    "skipped_files",
    "skipped_steps",
)


class CsvLog:
    """Append-only CSV log; ``resume_step`` drops rows past a resumed checkpoint.

    ``fields`` names the columns and ``step_field`` the column compared with ``resume_step``; the
    defaults give ``train_log.csv`` (distillation reuses the class with its own columns).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        resume_step: int | None = None,
        fields: tuple[str, ...] = LOG_FIELDS,
        step_field: str = "step",
    ) -> None:
        self.path = Path(path)
        self.fields = fields
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row[step_field]) <= resume_step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())

    def append(self, row: dict[str, Any]) -> None:
        """Append one row (keys: ``fields``) and flush it to disk."""
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=self.fields).writerow({k: row[k] for k in self.fields})


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Read ``train_log.csv`` back as a list of rows of floats (``step`` as an int-valued float)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


class StopSignal:
    """Flag set by SIGTERM / SIGINT; the loop checkpoints at the next step boundary and returns."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        """Install the handlers for the duration of the block (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def progress_bar(start: int, total: int, *, enabled: bool) -> tqdm:
    """A tqdm bar over optimiser steps (to stderr) showing steps/s and the ETA."""
    return tqdm(
        total=total,
        initial=start,
        disable=not enabled,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        desc="train",
    )
