"""Process-group set-up and model wrapping for ``torchrun --nproc_per_node K`` training.

The same command runs on one process or under torchrun: :func:`init_distributed` reads the torchrun
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and starts NCCL on GPUs or gloo on CPU.
Parameters are replicated with DistributedDataParallel (never ``find_unused_parameters``: the U-Net keeps
every parameter in the graph), or sharded with FSDP (``fully_shard``) for models that do not fit one
device. Only rank 0 writes files; the helpers here keep the ranks in lock step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job: rank, world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    """"nccl" or "gloo" when a process group was started, else None."""

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes checkpoints, logs, previews and the stage folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one rank is running."""
        return self.backend is not None and self.world_size > 1


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """``None`` / ``"auto"``: ``cuda:<local_rank>`` if CUDA is available, else CPU; else the named device."""
    if device in (None, "auto"):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if resolved.index is None:
            resolved = torch.device(f"cuda:{local_rank}")
    return resolved


def init_distributed(device: str | None = None) -> DistContext:
    """Start the process group when launched by torchrun (NCCL on CUDA, gloo on CPU); else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size == 1:
        return DistContext(0, 1, 0, resolved, None)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank, resolved, backend)


def shutdown_distributed(ctx: DistContext) -> None:
    """Destroy the process group started by :func:`init_distributed` (no-op for one process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(
    model: nn.Module,
    ctx: DistContext,
    *,
    fsdp: bool = False,
    cpu_offload: bool = False,
    mixed_precision: bool = False,
) -> nn.Module:
    """Wrap ``model`` (already on ``ctx.device``) for data-parallel training.

    FSDP shards every space-time block and then the root (:func:`imagen_video.train.fsdp.shard_unet`;
    ``cpu_offload``: FSDP2's ``CPUOffloadPolicy``; ``mixed_precision``: bf16 compute, fp32 gradient
    reduction); it needs a started process group, also in one process
    (:func:`imagen_video.train.fsdp.single_process_group`). DDP replicates; a single process without
    ``fsdp`` gets the module back unchanged.
    """
    if fsdp:
        from imagen_video.train.fsdp import shard_unet

        return shard_unet(model, cpu_offload=cpu_offload, mixed_precision=mixed_precision)
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user module inside a DDP wrapper (FSDP2 modules are their own user module)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is True on at least one (e.g. a stop signal seen by one rank)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_ranks(values: list[float], ctx: DistContext) -> list[float]:
    """Element-wise mean of per-rank numbers (e.g. loss, skipped-file counts use :func:`sum_over_ranks`)."""
    if not ctx.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return (tensor / ctx.world_size).tolist()


def sum_over_ranks(value: int, ctx: DistContext) -> int:
    """Sum of an integer over ranks."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return int(tensor.item())


def gather_to_main(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Collect one picklable object per rank on rank 0 (in-memory transport only, nothing on disk)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op for one process)."""
    if ctx.distributed:
        dist.barrier()
