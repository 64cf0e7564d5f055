"""Sharded work under ``torchrun``: each rank claims batches from a shared counter in the job's
torch.distributed store, so fast ranks take more and no batch is done twice.

The same code runs as one process (no torchrun: every batch is this process's) or as ``WORLD_SIZE``
ranks: :func:`join_job` joins torchrun's rendezvous (``env://``: its TCPStore), starts a process
group (NCCL on CUDA, gloo on the CPU) with a timeout on every collective, and keeps the store for
:meth:`Shard.claim` (``TCPStore.add`` on a counter). Rank 0 shows one progress bar for the whole
job, fed through the store; the other ranks print nothing but errors. A rank that dies makes
torchrun stop the job and name it; a collective that waits longer than the timeout raises.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, TypeVar

import torch

DEFAULT_TIMEOUT_S = 1800.0
"""Longest wait in a collective (and for the rendezvous): one batch of a paper-scale cascade."""

T = TypeVar("T")


@dataclasses.dataclass
class Shard:
    """This process's place in the job: rank, world size, device, and the store (None for one process)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    store: Any = None  # torch.distributed.Store shared by the ranks
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        """True on rank 0: the rank that shows progress, merges the manifest and writes results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group of more than one rank is running."""
        return self.store is not None

    def claim(self, count: int) -> Iterator[int]:
        """Indices of the batches (out of ``count``) this rank takes, one at a time from the counter."""
        if not self.distributed:
            yield from range(count)
            return
        while (index := int(self.store.add("next", 1)) - 1) < count:
            yield index

    def add_done(self, videos: int) -> int:
        """Count ``videos`` more as done across the job; return the job's total so far."""
        if not self.distributed:
            return 0
        return int(self.store.add("done", videos))


def resolve_rank_device(device: str, local_rank: int) -> torch.device:
    """``device`` for this rank: ``auto`` is :func:`imagen_video.device.auto_device` (chosen silently:
    only rank 0 may print); ``cuda`` without an index becomes ``cuda:<LOCAL_RANK>``; an explicit
    device is kept."""
    from imagen_video.device import AUTO, auto_device

    resolved = auto_device() if device == AUTO else torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    return resolved


def join_job(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Shard:
    """Join the torchrun job described by the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``), or return a one-process :class:`Shard` outside torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_rank_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size == 1:
        return Shard(0, 1, 0, resolved)
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
    store.set_timeout(timeout)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted job counts afresh
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(f"imagen-video/{restart}/group", store),
        rank=rank,
        world_size=world_size,
        timeout=timeout,
    )
    job_store = dist.PrefixStore(f"imagen-video/{restart}/work", store)
    return Shard(rank, world_size, local_rank, resolved, job_store, timeout_s)


def leave_job(shard: Shard, *, wait: bool = True) -> None:
    """Wait for every rank at the end of the job (unless ``wait`` is False), then leave the process group."""
    if shard.distributed:
        import torch.distributed as dist

        if wait:
            dist.barrier()
        dist.destroy_process_group()


def from_main(value: T, shard: Shard) -> T:
    """Rank 0's ``value`` on every rank (a picklable object), e.g. a seed or the list of work to do."""
    if not shard.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(values: list[float], shard: Shard) -> list[float]:
    """Element-wise sum of per-rank numbers (e.g. seconds spent sampling), on every rank."""
    if not shard.distributed:
        return list(values)
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=shard.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


class JobProgress:
    """Rank 0's one bar for the whole job: videos done / total, videos per minute and the ETA.

    Other ranks report through the store (:meth:`Shard.add_done`); rank 0 reads the store's count
    whenever it refreshes (after each of its own sampler steps and batches, and while it waits).
    """

    def __init__(self, shard: Shard, total: int, done: int, *, enabled: bool, desc: str = "") -> None:
        """A bar from ``done`` (already made before this run) to ``total`` videos, on rank 0 only."""
        from tqdm.auto import tqdm

        self.shard, self.base, self.start = shard, done, time.perf_counter()
        self.local = 0  # videos this process made (the count when running alone)
        show = enabled and shard.is_main
        self.bar = tqdm(
            total=total,
            initial=done,
            desc=desc or None,
            unit="video",
            disable=not show,
            file=sys.stderr,
            bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} videos [{elapsed}{postfix}]",
        )

    @property
    def made(self) -> int:
        """Videos made in this run by every rank (this process alone outside torchrun)."""
        return int(self.shard.store.add("done", 0)) if self.shard.distributed else self.local

    def refresh(self) -> None:
        """Move the bar to the job's current count and show the rate per minute and the ETA."""
        made = self.made
        elapsed = time.perf_counter() - self.start
        if made and elapsed > 0:
            per_minute = made / elapsed * 60
            left = (self.bar.total - self.base - made) / per_minute
            self.bar.set_postfix_str(f"{per_minute:.1f} videos/min, ETA {left:.1f} min", refresh=False)
        self.bar.update(self.base + made - self.bar.n)

    def finished_batch(self, videos: int) -> None:
        """Count a batch this rank finished."""
        self.local += videos
        self.shard.add_done(videos)
        self.refresh()

    def wait_for_all(self, poll_s: float = 0.5) -> None:
        """Mark this rank finished; rank 0 keeps the bar moving until every rank has finished, and
        raises RuntimeError naming the ranks still out when nothing moved for the job's timeout."""
        shard = self.shard
        if shard.distributed:
            shard.store.set(f"finished/{shard.rank}", "1")
            shard.store.add("finished", 1)
            last, moved = None, time.monotonic()
            while shard.is_main and (finished := int(shard.store.add("finished", 0))) < shard.world_size:
                state = (finished, int(shard.store.add("done", 0)))
                if state != last:
                    last, moved = state, time.monotonic()
                elif time.monotonic() - moved > shard.timeout_s:
                    out = [r for r in range(shard.world_size) if not shard.store.check([f"finished/{r}"])]
                    raise RuntimeError(f"rank(s) {out} made no progress for {shard.timeout_s:g} s")
                self.refresh()
                time.sleep(poll_s)
        self.refresh()
        self.bar.refresh()
        self.bar.close()


def gather_to_main(value: T, shard: Shard) -> list[T] | None:
    """Every rank's ``value`` (a picklable object, tensors on the CPU) as a list in rank order on
    rank 0; None on the other ranks."""
    if not shard.distributed:
        return [value]
    import torch.distributed as dist

    gathered: list[T] | None = [None] * shard.world_size if shard.is_main else None  # type: ignore[list-item]
    dist.gather_object(value, gathered, dst=0)
    return gathered
