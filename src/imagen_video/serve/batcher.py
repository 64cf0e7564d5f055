"""Dynamic batching for ``imagen-video serve``: one worker thread samples queued jobs in batches.

The oldest queued job opens a batch; queued jobs with the same settings (:func:`batch_key`) join it
until it holds ``max_batch`` videos or ``batch_wait_ms`` have passed since the oldest arrived or the
worker became free, whichever is later (clients that resubmit when their video is done then share
the next batch instead of alternating between half-full ones). The
batch runs through :meth:`Cascade.generate` with one ``torch.Generator`` per video (video k of a job
uses ``seed + k``), so a video does not depend on what shares its batch: batched and alone it is the
same up to float rounding of the batched network forwards. Only this thread runs the networks, so a
flood of requests never loads or runs a model twice at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from imagen_video.cascade.runner import Cascade, CascadeStep
from imagen_video.serve import requests
from imagen_video.serve.encoder import truncated
from imagen_video.serve.store import Job, JobStore
from imagen_video.serve.variants import write_job_video, write_preview_frames

log = logging.getLogger("imagen_video.serve")


class QueueFull(RuntimeError):
    """The queue holds ``queue_size`` jobs; ``retry_after`` estimates the seconds until there is room."""

    def __init__(self, retry_after: int) -> None:
        """Store the estimate beside the message."""
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class StoreBusy(RuntimeError):
    """Another server holds the job store (two servers would run the same queued jobs)."""


class _Stopped(Exception):
    """Raised inside a batch when the server stops; its jobs stay in progress and run after restart."""


@dataclasses.dataclass
class Progress:
    """Live progress of a job in progress: percent done and the stage being sampled."""

    percent: int = 0
    stage: str | None = None


@dataclasses.dataclass
class _Row:
    job: Job
    index: int  # video index within the job


class Batcher:
    """Collects queued jobs of ``store`` into batches and samples them with ``cascades`` (name ->
    :class:`Cascade`) on one worker thread (:meth:`start`, :meth:`stop`)."""

    def __init__(
        self,
        store: JobStore,
        cascades: Mapping[str, Cascade],
        *,
        max_batch: int = 8,
        batch_wait_ms: float = 50.0,
        queue_size: int = 64,
    ) -> None:
        """Configure the batcher; nothing runs until :meth:`start`."""
        if max_batch < 1 or queue_size < 1 or batch_wait_ms < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and batch_wait_ms >= 0")
        self.store, self.cascades = store, dict(cascades)
        self.max_batch, self.batch_wait, self.queue_size = max_batch, batch_wait_ms / 1000.0, queue_size
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._progress: dict[str, Progress] = {}
        self._thread: threading.Thread | None = None
        self._lock: Any = None  # the store's server lock while running
        self._seconds_per_video = 1.0  # running estimate for Retry-After
        self._free_since = 0.0  # when the last batch finished (time.time())

    # ------------------------------------------------------------------------------------------
    # client side
    # ------------------------------------------------------------------------------------------

    def submit(self, job_id: str, request: dict) -> Job:
        """Store a normalized request as a queued job and wake the worker; :class:`QueueFull` when full."""
        with self._wake:
            queued = self.store.count("queued")
            if queued >= self.queue_size:
                estimate = self._seconds_per_video * (queued + self.max_batch) / self.max_batch
                raise QueueFull(max(1, math.ceil(estimate)))
            job = self.store.add(job_id, request)
            self._wake.notify_all()
        return job

    def progress(self, job: Job) -> Progress:
        """The job's progress: 0 while queued, 100 when finished, live in between."""
        if job.status in ("completed", "failed"):
            return Progress(100, None)
        return self._progress.get(job.id, Progress())

    # ------------------------------------------------------------------------------------------
    # worker
    # ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Take the store's server lock, requeue jobs a crash left in progress, start the worker.

        Raises :class:`StoreBusy` when another server holds the store."""
        from filelock import Timeout

        self._lock = self.store.server_lock()
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise StoreBusy(f"another server is using the store {self.store.root}") from None
        recovered = self.store.recover()
        if recovered:
            log.info("requeued %d job(s) left in progress", recovered)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="imagen-video-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; a batch in progress is abandoned at its next step and runs after restart."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                self._run(batch)
                self._free_since = time.time()

    def _next_batch(self) -> list[Job]:
        """Wait for the oldest queued job and its compatible followers (see the module docstring)."""
        with self._wake:
            while not self._stop.is_set():
                queued = self.store.queued()
                if not queued:
                    self._wake.wait()
                    continue
                batch = self._compatible(queued)
                opened = max(queued[0].created_at, self._free_since)
                remaining = opened + self.batch_wait - time.time()
                if sum(job.request["num_videos"] for job in batch) >= self.max_batch or remaining <= 0:
                    return batch
                self._wake.wait(remaining)
        return []

    def _compatible(self, queued: list[Job]) -> list[Job]:
        """The oldest job and, in order, the queued jobs with its settings that fit in ``max_batch``."""
        head, key = queued[0], requests.batch_key(queued[0].request)
        batch, videos = [head], head.request["num_videos"]
        for job in queued[1:]:
            count = job.request["num_videos"]
            if videos + count <= self.max_batch and requests.batch_key(job.request) == key:
                batch.append(job)
                videos += count
        return batch

    def _run(self, batch: list[Job]) -> None:
        """Sample a batch, write every job's files, then mark the jobs completed (or failed)."""
        rows = [_Row(job, k) for job in batch for k in range(job.request["num_videos"])]
        started = time.perf_counter()
        timing = _Timing()
        try:
            model = batch[0].request["model"]
            if model not in self.cascades:  # queued before a restart with other models
                raise ValueError(f"model {model!r} is not loaded; loaded: {', '.join(self.cascades)}")
            cascade = self.cascades[model]
            with timing.measure("store"):
                self.store.start([job.id for job in batch], len(rows))
            for job in batch:
                self._progress[job.id] = Progress()
            chunks = [rows[i : i + self.max_batch] for i in range(0, len(rows), self.max_batch)]
            for number, chunk in enumerate(chunks):
                self._run_chunk(cascade, chunk, number, len(chunks), timing)
            warnings = self._truncation_warnings(cascade, batch)  # remembered from the sampling
            with timing.measure("store"):
                for job_id in self.store.complete([job.id for job in batch], warnings):  # deleted meanwhile
                    shutil.rmtree(self.store.job_dir(job_id), ignore_errors=True)
        except _Stopped:
            return
        except Exception as err:  # a failed batch fails its jobs, the server goes on
            log.exception("batch of %d job(s) failed", len(batch))
            message = " ".join(str(err).split()) or type(err).__name__
            for job in batch:
                self.store.fail(job.id, message)
        else:
            self._seconds_per_video = (time.perf_counter() - started) / len(rows)
            log.debug("batch of %d video(s) in %.3f s: %s", len(rows), time.perf_counter() - started, timing)
        finally:
            for job in batch:
                self._progress.pop(job.id, None)

    def _truncation_warnings(self, cascade: Cascade, batch: list[Job]) -> dict[str, str]:
        """A warning for each job whose prompt is longer than the text encoder's token length."""
        encoder = cascade.text_encoder
        flags = truncated(encoder, [job.request["prompt"] for job in batch])
        message = (
            f"the prompt is longer than the text encoder's {encoder.max_length} tokens and was truncated"
        )
        return {job.id: message for job, cut in zip(batch, flags, strict=True) if cut}

    def _run_chunk(
        self, cascade: Cascade, chunk: list[_Row], number: int, chunks: int, timing: _Timing
    ) -> None:
        """Generate the videos of ``chunk`` (one generator per video) and write their files."""
        base = cascade.config.stages[0]

        def on_step(step: CascadeStep) -> None:
            if self._stop.is_set():
                raise _Stopped
            percent = min(99, int(100 * (number * step.total + step.done) / (chunks * step.total)))
            for row in chunk:
                self._progress[row.job.id] = Progress(percent, step.stage)
            if step.stage_index == 0 and step.step == step.steps - 1 and step.x_hat is not None:
                with timing.measure("preview"):
                    self._write_previews(chunk, step.x_hat, base.fps)

        generators = [torch.Generator().manual_seed(row.job.request["seed"] + row.index) for row in chunk]
        with timing.measure("sampling"):  # includes the preview's share
            output = cascade.generate(
                [row.job.request["prompt"] for row in chunk],
                generator=generators,
                overrides=requests.overrides(chunk[0].job.request),
                callback=on_step,
                progress=False,
            )
        with timing.measure("files"):
            for row, video in zip(chunk, output.video, strict=True):
                job = row.job
                write_job_video(self.store, job.id, row.index, video, output.fps, job.request["format"])

    def _write_previews(self, chunk: list[_Row], x_hat: torch.Tensor, fps: float) -> None:
        """Keep the base stage's clip (x_hat (N, C, T, H, W) in [-1, 1]) of each job's first video."""
        for position, row in enumerate(chunk):
            if row.index == 0:
                clip = ((x_hat[position].float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)  # (C, T, H, W)
                write_preview_frames(self.store, row.job.id, clip, fps)


class _Timing:
    """Seconds a batch spent in each part of the worker's loop (logged at DEBUG level)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def measure(self, part: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``part``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

    def __str__(self) -> str:
        return ", ".join(f"{part} {seconds:.3f} s" for part, seconds in self.seconds.items())
