"""8-bit optimizer state as plain tensors, so a training checkpoint stays safetensors + JSON.

torchao's ``AdamW8bit`` keeps the first and second moments of every large parameter (at least 4096
values, a multiple of the 256-value block) as ``OptimState8bit`` tensor subclasses: block-wise
dynamic quantisation (Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization"). One such
tensor is three plain tensors and a flag:

``codes``
    uint8, the parameter's shape: the index of each value in ``qmap``;
``scale``
    float32, one per 256-value block: the block's absolute maximum, by which ``qmap`` is multiplied;
``qmap``
    float32, 256 entries: the dynamic quantisation map, the value in [-1, 1] each code stands for;
``signed``
    True for the first moment (signed map), False for the second (unsigned map).

safetensors stores plain tensors only, so :func:`split_state` writes a state tensor ``<name>`` as
``<name>.codes``, ``<name>.scale`` and ``<name>.qmap`` and returns its flag for the checkpoint's JSON;
:func:`join_states` rebuilds the subclass from them, bit for bit, so a resumed run continues exactly.
The checkpoint holds the full (unsharded) state; :func:`place_states` puts it back into the optimizer
as each parameter is laid out, taking this rank's rows under FSDP2 (torch's sharding of a full state
dict splits tensors with an operator the subclass does not implement).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

EIGHT_BIT = "torchao.OptimState8bit"
"""The JSON ``type`` of a state tensor stored as its 8-bit parts."""

PARTS = ("codes", "scale", "qmap")
"""The plain tensors of one 8-bit state tensor, in ``OptimState8bit``'s constructor order."""


def split_state(name: str, value: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``({name: value}, None)`` for a plain tensor; for torchao's 8-bit state its parts
    ``{name.codes, name.scale, name.qmap}`` and ``{"type": EIGHT_BIT, "signed": ...}``.

    Any other tensor subclass raises ValueError naming it (a checkpoint holds plain tensors only).
    """
    if type(value) is torch.Tensor:
        return {name: value}, None
    from torchao.optim.subclass_8bit import OptimState8bit

    if not isinstance(value, OptimState8bit):
        raise ValueError(
            f"optimizer state {name!r} is a {type(value).__name__}; checkpoints store plain tensors "
            "and torchao's 8-bit AdamW state only"
        )
    parts = {f"{name}.{part}": getattr(value, part) for part in PARTS}
    return parts, {"type": EIGHT_BIT, "signed": bool(value.signed)}


def join_states(
    tensors: dict[str, torch.Tensor], packed: dict[str, dict[str, Any]]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`split_state` over a flat dict: every name in ``packed`` (name -> its JSON) is
    rebuilt from its parts in ``tensors``; other tensors pass through. KeyError / ValueError for a
    missing part or an unknown type."""
    if not packed:
        return dict(tensors)
    from torchao.optim.subclass_8bit import OptimState8bit

    joined = dict(tensors)
    for name, meta in packed.items():
        if meta.get("type") != EIGHT_BIT:
            raise ValueError(f"optimizer state {name!r} has unknown type {meta.get('type')!r}")
        codes, scale, qmap = (joined.pop(f"{name}.{part}") for part in PARTS)
        blocks = scale.numel()
        if codes.dtype != torch.uint8 or scale.ndim != 1 or not blocks or codes.numel() % blocks:
            raise ValueError(f"optimizer state {name!r}: its 8-bit parts have the wrong dtype or shape")
        if qmap.dtype != torch.float32 or qmap.shape != (256,):
            raise ValueError(f"optimizer state {name!r}: its qmap is not 256 float32 values")
        joined[name] = OptimState8bit(codes, scale, qmap, bool(meta["signed"]))
    return joined


def place_states(model: nn.Module, optimizer: torch.optim.Optimizer, states: dict[str, torch.Tensor]) -> None:
    """Put full 8-bit states ``{"<param name>/<key>": OptimState8bit}`` into ``optimizer.state``, each
    laid out as its parameter of ``model`` (plain, DDP or FSDP2: this rank's rows as a DTensor)."""
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    params = dict(module.named_parameters())
    for flat, full in states.items():
        param_name, key = flat.rsplit("/", 1)
        param = params[param_name]
        if tuple(full.shape) != tuple(param.shape):
            raise ValueError(
                f"optimizer state {flat!r} has shape {tuple(full.shape)}, its parameter {tuple(param.shape)}"
            )
        optimizer.state[param][key] = _shard_like(full, param)


def _shard_like(full: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """``full`` as ``param`` holds its values: this rank's rows of an FSDP2 ``Shard(0)`` DTensor (FSDP2
    splits dim 0 as ``torch.chunk`` does), or the tensor itself on the parameter's device."""
    from torch.distributed.tensor import DTensor, Shard

    if not isinstance(param, DTensor):
        return full.to(param.device)
    if tuple(param.placements) != (Shard(0),):
        raise ValueError(f"8-bit optimizer state supports FSDP2's Shard(0) only, not {param.placements}")
    rows = param.to_local().shape[0]
    chunk = -(-param.shape[0] // param.device_mesh.size())
    start = min(param.device_mesh.get_local_rank() * chunk, param.shape[0])
    local = full[start : start + rows]  # block-aligned where each rank's shard was quantised
    placed = DTensor.from_local(
        local, param.device_mesh, param.placements, run_check=False, shape=param.shape, stride=param.stride()
    )
    # from_local moves the shard to the mesh's device; under CPU offload the state stays on the host
    return placed.to(param.device)
