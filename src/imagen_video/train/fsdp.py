"""Memory options of paper-size training: FSDP2 per block, bf16 mixed precision, CPU offload, 8-bit AdamW.

The paper's stages (sec. 2.2: 11.6B diffusion parameters, a 5.6B base) do not fit one accelerator with
fp32 AdamW state. :func:`shard_unet` applies ``torch.distributed.fsdp.fully_shard`` to every space-time
block (Figure 7) and then to the root, so at most a few blocks are unsharded at a time; its
``MixedPrecisionPolicy`` computes in bf16 and reduces gradients in fp32, and ``CPUOffloadPolicy`` keeps
the sharded parameters, gradients and optimizer state in host memory. Activation checkpointing per
block is the U-Net's own ``gradient_checkpointing`` flag. :func:`make_optimizer` builds AdamW, or the
8-bit AdamW of torchao (optimizer state at one byte per value, block-wise scaled). One process can use
the same sharded path through :func:`single_process_group` (a one-rank group), as a GPU with one device
does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

OPTIMIZERS = ("adamw", "adamw8bit")
"""Optimizers of :func:`make_optimizer`: torch's AdamW, or torchao's 8-bit AdamW."""

EIGHT_BIT_PACKAGE = "torchao"
"""The maintained library that provides the 8-bit AdamW (``pip install torchao``)."""


def shard_unet(
    model: nn.Module,
    *,
    mixed_precision: bool = False,
    cpu_offload: bool = False,
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Shard ``model`` with FSDP2: each space-time block, then the root (which holds the rest).

    Needs a started process group. ``mixed_precision``: bf16 parameters in forward and backward, fp32
    gradient reduction (``MixedPrecisionPolicy``); ``cpu_offload``: sharded parameters, gradients and
    optimizer state live in host memory (``CPUOffloadPolicy``). Returns ``model`` itself (FSDP2 changes
    its class in place); its parameters become ``DTensor`` shards.
    """
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    from imagen_video.models.unet import SpaceTimeBlock

    policy = MixedPrecisionPolicy()
    if mixed_precision:
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    # pinned host memory speeds the copies to an accelerator; without one there is nothing to pin for
    offload = (
        CPUOffloadPolicy(pin_memory=torch.accelerator.is_available()) if cpu_offload else OffloadPolicy()
    )
    for param in model.parameters():  # FSDP shards flat storage: no channels-last parameters
        param.data = param.data.contiguous()
    options = {"mp_policy": policy, "offload_policy": offload}
    for block in [m for m in model.modules() if isinstance(m, SpaceTimeBlock)]:
        fully_shard(block, reshard_after_forward=reshard_after_forward, **options)
    fully_shard(model, reshard_after_forward=reshard_after_forward, **options)
    return model


@contextlib.contextmanager
def single_process_group(device: torch.device) -> Iterator[None]:
    """A one-rank process group (gloo on CPU, NCCL on CUDA) for the sharded path in one process.

    Does nothing when a process group is already running (e.g. under torchrun).
    """
    if dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def make_optimizer(
    params: Iterable[nn.Parameter],
    name: str = "adamw",
    *,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """AdamW (``"adamw"``) or torchao's 8-bit AdamW (``"adamw8bit"``); ImportError naming the package.
    For 8-bit AdamW over FSDP2 shards, torch.compile's on-disk caches are turned off in this process
    (see :func:`_no_shared_compile_cache`)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    options = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
    if name == "adamw":
        return torch.optim.AdamW(params, **options)
    adamw8bit = eight_bit_adamw()
    from torch.distributed.tensor import DTensor

    params = list(params)
    if any(isinstance(p, DTensor) for p in params):
        _no_shared_compile_cache()
    return adamw8bit(params, **options)


def eight_bit_adamw() -> type[torch.optim.Optimizer]:
    """torchao's ``AdamW8bit`` class; ImportError naming the package and the extra when it is missing."""
    try:
        from torchao.optim import AdamW8bit
    except ImportError:
        raise ImportError(
            f"--optimizer adamw8bit needs {EIGHT_BIT_PACKAGE}: pip install 'imagen-video[scale]' "
            f"(or pip install {EIGHT_BIT_PACKAGE})"
        ) from None
    return AdamW8bit


def _no_shared_compile_cache() -> None:
    """Turn off torch.compile's on-disk graph caches in this process. torchao compiles its update per
    parameter shape; under FSDP2 a cache entry is keyed by the parameter's global shape, so a rank
    whose shard of an unevenly split parameter differs (e.g. 3 rows over 2 ranks: 2 and 1) can load
    another rank's graph and fail its size check. Each process then compiles its own graphs."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = False
    functorch_config.enable_autograd_cache = False


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate; torchao's optimizers keep it as a tensor, which is
    filled in place (their compiled step refuses a float)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def optimizer_state_bytes_per_param(name: str) -> float:
    """Bytes of optimizer state per parameter: AdamW 8 (fp32 m and v); 8-bit AdamW 2 (one byte each)
    plus one fp32 scale per 256-value block of each (torchao's default block size)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return 8.0 if name == "adamw" else 2.0 + 2 * 4.0 / 256
