"""The distillation loss log (one CSV row per optimiser step) and the per-round summary (JSON).

``distill_log.csv``: ``global_step, phase, round, student_steps, step, loss, lr, grad_norm, skipped``
where ``step`` counts optimiser steps within the round (1-based) and ``student_steps`` is N of a
progressive round (empty for guidance distillation). On resume the rows after the resumed
checkpoint are dropped, so the log reads as one uninterrupted run. ``rounds.json`` summarises every
finished round from the log: first / last / mean loss and the means over its first and last tenth.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagen_video.distill.config import Round
from imagen_video.serialization import atomic_write_json
from imagen_video.train.monitor import CsvLog

LOG_FIELDS: tuple[str, ...] = (
    "global_step",
    "phase",
    "round",
    "student_steps",
    "step",
    "loss",
    "lr",
    "grad_norm",
    "skipped",
)


def distill_log(path: str | Path, *, resume_step: int = 0) -> CsvLog:
    """The append-only distillation log at ``path``, keeping rows up to global step ``resume_step``."""
    return CsvLog(path, resume_step=resume_step, fields=LOG_FIELDS, step_field="global_step")


def read_distill_log(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``distill_log.csv`` as strings (empty list when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def round_summary(rnd: Round, rows: Sequence[dict[str, str]]) -> dict[str, Any]:
    """Loss summary of one round from its log rows (non-finite losses are skipped steps)."""
    losses = [float(r["loss"]) for r in rows if int(r["round"]) == rnd.index and r["phase"] == rnd.phase]
    finite = [v for v in losses if math.isfinite(v)]
    tenth = max(1, len(finite) // 10)
    return {
        **rnd.to_dict(),
        "name": rnd.name,
        "steps_logged": len(losses),
        "loss_first": finite[0] if finite else None,
        "loss_last": finite[-1] if finite else None,
        "loss_mean": _mean(finite),
        "loss_mean_first_tenth": _mean(finite[:tenth]),
        "loss_mean_last_tenth": _mean(finite[-tenth:]),
    }


def write_round_summaries(
    path: str | Path, rounds: Sequence[Round], log_path: str | Path
) -> list[dict[str, Any]]:
    """Write ``rounds.json`` for the finished ``rounds`` from the log at ``log_path``; return it."""
    rows = read_distill_log(log_path)
    summaries = [round_summary(rnd, rows) for rnd in rounds]
    atomic_write_json(path, summaries)
    return summaries
