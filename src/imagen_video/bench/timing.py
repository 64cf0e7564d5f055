"""Timing of a benchmark step: the median over repeats after warm-up, synchronised on CUDA."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(
    fn: Callable[[], Any],
    *,
    repeats: int,
    warmup: int,
    device: Any,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median of ``clock`` time (wall by default, or e.g. ``time.process_time``) of ``fn`` over
    ``repeats`` runs after ``warmup`` runs; CUDA work is synchronised before each reading."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        sync()
        times.append(clock() - start)
    return statistics.median(times)
