"""Training state to and from (safetensors tensors, JSON) pairs: model, EMA, optimizer and RNG states.

Checkpoints never pickle: every tensor goes to a safetensors group and every other value (optimizer
param groups, Python / NumPy RNG integers) to JSON. Model and optimizer state go through
``torch.distributed.checkpoint.state_dict`` with full (unsharded) state dicts keyed by parameter
names, so the same code serves a plain module, DistributedDataParallel and FSDP.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from imagen_video.train.lowbit_state import join_states, place_states, split_state

if TYPE_CHECKING:
    from imagen_video.train.ema import EMA

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
_SEP = "/"


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full state dict of ``model`` (plain, DDP or FSDP; collective under FSDP) on CPU.

    In a process group only rank 0 receives the tensors (other ranks get an empty dict).
    """
    return get_model_state_dict(model, options=_FULL)


def load_model_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load a full state dict into ``model`` (plain, DDP or FSDP), strictly."""
    set_model_state_dict(model, tensors, options=StateDictOptions(full_state_dict=True, strict=True))


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` (e.g. to check that replicas agree)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu")
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.reshape(-1).contiguous()  # any memory format (e.g. channels-last) -> logical order
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def optimizer_tensors(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split the optimizer's full state into tensors ``"<param name>/<key>"`` and JSON (param groups).

    8-bit state (torchao's AdamW8bit) is stored as its plain parts ``"<param name>/<key>.codes"``,
    ``.scale`` and ``.qmap``, listed in the JSON's ``packed`` (:mod:`imagen_video.train.lowbit_state`).
    In a process group the full state is gathered on rank 0 only; other ranks get empty results.
    """
    full = get_optimizer_state_dict(model, optimizer, options=_FULL)
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    packed: dict[str, dict[str, Any]] = {}
    for param_name, entry in full.get("state", {}).items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                parts, meta = split_state(f"{param_name}{_SEP}{key}", value)
                tensors.update(parts)
                if meta is not None:
                    packed[f"{param_name}{_SEP}{key}"] = meta
            else:
                scalars.setdefault(param_name, {})[key] = value
    groups = [{k: _json_value(v) for k, v in g.items()} for g in full.get("param_groups", [])]
    return tensors, {"param_groups": groups, "scalars": scalars, "packed": packed}


def _json_value(value: Any) -> Any:
    """A param-group value for JSON: tuples as lists, a 0-d tensor (torchao's learning rate) as a number."""
    if isinstance(value, tuple):
        return list(value)
    return value.item() if isinstance(value, torch.Tensor) else value


def load_optimizer_tensors(
    model: nn.Module, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_tensors`: rebuild the full optimizer state and load it."""
    state: dict[str, dict[str, Any]] = {}
    tensor_lrs = [g["lr"] if isinstance(g["lr"], torch.Tensor) else None for g in optimizer.param_groups]
    joined = join_states(tensors, meta.get("packed", {}))
    eight_bit = {name: joined.pop(name) for name in meta.get("packed", {})}  # placed after the rest
    for flat, value in joined.items():
        param_name, key = flat.rsplit(_SEP, 1)
        state.setdefault(param_name, {})[key] = value
    for param_name, entry in meta["scalars"].items():
        state.setdefault(param_name, {}).update(entry)
    groups = [dict(group) for group in meta["param_groups"]]
    set_optimizer_state_dict(
        model,
        optimizer,
        {"state": state, "param_groups": groups},
        options=StateDictOptions(full_state_dict=True),
    )
    place_states(model, optimizer, eight_bit)
    for group, tensor_lr in zip(optimizer.param_groups, tensor_lrs, strict=True):
        if isinstance(group.get("betas"), list):  # JSON has no tuples: restore AdamW's (beta1, beta2) type
            group["betas"] = tuple(group["betas"])
        if tensor_lr is not None:  # torchao's optimizers keep the learning rate as a tensor
            group["lr"] = torch.tensor(group["lr"], dtype=tensor_lr.dtype, device=tensor_lr.device)


def capture_rng(generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states: the training generator, torch CPU / CUDA, Python and NumPy globals."""
    tensors = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{index}"] = cuda_state
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    numpy_json = {
        "bit_generator": numpy_state["bit_generator"],
        "key": numpy_state["state"]["key"].tolist(),
        "pos": int(numpy_state["state"]["pos"]),
        "has_gauss": int(numpy_state["has_gauss"]),
        "gauss": float(numpy_state["gauss"]),
    }
    return tensors, {"python": [version, list(internal), gauss], "numpy": numpy_json}


def restore_rng(generator: torch.Generator, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states are restored for the devices present)."""
    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if f"cuda{index}" in tensors:
                torch.cuda.set_rng_state(tensors[f"cuda{index}"], index)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_json = meta["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_json["bit_generator"],
            "state": {"key": np.asarray(numpy_json["key"], dtype=np.uint32), "pos": numpy_json["pos"]},
            "has_gauss": numpy_json["has_gauss"],
            "gauss": numpy_json["gauss"],
        }
    )


def weights_groups(
    model: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer, *, sharded: bool = False
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Checkpoint groups ``model``, ``ema``, ``optimizer`` and their JSON fields ``ema_num_updates``,
    ``optimizer`` (collective under FSDP: every rank calls; ``sharded``: the EMA copy is FSDP too)."""
    model_state = model_tensors(model)
    ema_state = model_tensors(ema.model) if sharded else ema.state_tensors()
    optim_tensors, optim_meta = optimizer_tensors(model, optimizer)
    groups = {"model": model_state, "ema": ema_state, "optimizer": optim_tensors}
    return groups, {"ema_num_updates": ema.num_updates, "optimizer": optim_meta}


def load_weights_groups(
    model: nn.Module,
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    groups: dict[str, dict[str, torch.Tensor]],
    state: dict[str, Any],
    *,
    sharded: bool = False,
) -> None:
    """Restore what :func:`weights_groups` wrote into ``model``, ``ema`` and ``optimizer``."""
    load_model_tensors(model, groups["model"])
    if sharded:
        load_model_tensors(ema.model, groups["ema"])
        ema.num_updates = int(state["ema_num_updates"])
    else:
        ema.load_state(groups["ema"], state["ema_num_updates"])
    load_optimizer_tensors(model, optimizer, groups["optimizer"], state["optimizer"])
