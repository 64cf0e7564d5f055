"""A memory model of one accelerator training or sampling a cascade stage (paper sec. 2.2 sizes).

Training memory per device = parameters + gradients + optimizer state (each divided by N devices when
FSDP shards them, or moved to host memory by CPU offload) + the working copy of the unsharded
parameters (FSDP: the blocks being computed; bf16 autocast without FSDP: the cached bf16 weights) +
activations saved for the backward pass, per sample times the per-device batch.

Activations are not guessed: :func:`activation_profile` runs the network's forward on the ``meta``
device (no memory is allocated, so even the 128x768x1280 stage takes seconds) and sums the tensors
autograd saves, deduplicated by storage and attributed to the space-time block that saved them. With
activation checkpointing a block keeps only its input, and one block's activations are rebuilt at a
time in the backward pass. Sampling memory (:func:`sampling_activation_bytes`) is the peak of live
tensors in a no-grad forward, tracked on the meta device by ``torch.distributed._tools.MemTracker``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from imagen_video.models.config import UNetConfig

GIB = 2**30
DTYPE_BYTES = {"fp32": 4, "bf16": 2}
"""Bytes per value of the compute precisions."""


@dataclasses.dataclass(frozen=True)
class ActivationProfile:
    """Bytes autograd saves for the backward pass of one sample (batch 1), from a meta-device forward."""

    saved_bytes: int
    """Every saved activation, deduplicated by storage (parameters excluded)."""
    block_saved_bytes: tuple[int, ...]
    """The part saved inside each space-time block, in execution order."""
    block_input_bytes: tuple[int, ...]
    """The input activation of each block (what a checkpointed block keeps)."""

    def per_sample(self, checkpointing: bool) -> int:
        """Saved bytes per sample; with checkpointing: everything outside the blocks, each block's input
        and the largest block's activations while it is recomputed in the backward pass."""
        if not checkpointing:
            return self.saved_bytes
        outside = self.saved_bytes - sum(self.block_saved_bytes)
        return outside + sum(self.block_input_bytes) + max(self.block_saved_bytes, default=0)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Predicted bytes on one device, by kind; ``host_bytes`` is what CPU offload moves to host memory."""

    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    working_params_bytes: int
    activations_bytes: int
    host_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Sum of the device-resident kinds."""
        return (
            self.params_bytes
            + self.grads_bytes
            + self.optimizer_bytes
            + self.working_params_bytes
            + self.activations_bytes
        )

    def to_dict(self) -> dict[str, float]:
        """Every kind and the total in GiB (rounded to 0.001 GiB), for a JSON line."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["total_bytes"] = self.total_bytes
        return {name.replace("_bytes", "_gib"): round(value / GIB, 3) for name, value in fields.items()}


class _FusedAttention(TorchFunctionMode):
    """Route ``F.scaled_dot_product_attention`` to the fused (flash) kernel's op, whose meta kernel
    keeps only the output and log-sum-exp for the backward, as the fused kernels of CPUs and GPUs do;
    the meta device would otherwise run the math path, which materialises the attention matrix."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        query, key, value = args[:3]
        mask = kwargs.get("attn_mask")
        if mask is not None and mask.dtype == torch.bool:  # the kernel takes an additive float mask
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
        flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        return flash(query, key, value, 0.0, False, attn_mask=mask, scale=kwargs.get("scale"))[0]


@contextlib.contextmanager
def fused_attention() -> Iterator[None]:
    """Within this context every SDPA call runs the fused kernel's op (see :class:`_FusedAttention`)."""
    with _FusedAttention():
        yield


def meta_inputs(
    unet: UNetConfig, batch: int, shape: tuple[int, int, int], text_tokens: int, dtype: torch.dtype
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Meta-device network inputs: z_t (B, 3, T, H, W), log-SNR, text (B, L, D) and mask, SR conditioning."""
    frames, height, width = shape
    with torch.device("meta"):
        video = (batch, unet.in_channels, frames, height, width)
        args = (
            torch.empty(video, dtype=dtype),
            torch.empty(batch),
            torch.empty(batch, text_tokens, unet.text.dim, dtype=dtype),
            torch.empty(batch, text_tokens, dtype=torch.bool),
        )
        kwargs: dict[str, Any] = {}
        if unet.is_super_resolution:
            cond = (batch, unet.cond_channels, frames, height, width)
            kwargs = {"cond_video": torch.empty(cond, dtype=dtype), "aug_logsnr": torch.empty(batch)}
    return args, kwargs


def meta_network(unet: UNetConfig, dtype: torch.dtype) -> torch.nn.Module:
    """The stage's network on the meta device, in ``dtype``, without activation checkpointing."""
    from imagen_video.models.unet import VideoUNet

    with torch.device("meta"):
        return VideoUNet(dataclasses.replace(unet, gradient_checkpointing=False)).to(dtype)


def activation_profile(
    unet: UNetConfig, shape: tuple[int, int, int], *, text_tokens: int, precision: str = "fp32"
) -> ActivationProfile:
    """Saved activations of one training forward at ``shape`` (T, H, W), batch 1, on the meta device.

    ``precision="bf16"`` counts every float32 activation at 2 bytes, as bf16 autocast stores most of
    them (the normalisations it keeps in float32 are the exception the estimate ignores).
    """
    from imagen_video.models.unet import SpaceTimeBlock

    net = meta_network(unet, torch.float32)
    args, kwargs = meta_inputs(unet, 1, shape, text_tokens, torch.float32)
    float_bytes = DTYPE_BYTES[precision]
    seen = {p.untyped_storage()._cdata for p in net.parameters()}
    totals = {"all": 0}
    blocks: list[list[int]] = []  # [input bytes, saved bytes] per block call
    current: list[int | None] = [None]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = tensor.untyped_storage()._cdata
        if key not in seen:
            seen.add(key)
            nbytes = tensor.untyped_storage().nbytes()
            if tensor.dtype == torch.float32:
                nbytes = nbytes * float_bytes // 4
            totals["all"] += nbytes
            if current[0] is not None:
                blocks[current[0]][1] += nbytes
        return tensor

    def enter(module: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
        blocks.append([inputs[0].untyped_storage().nbytes(), 0])
        current[0] = len(blocks) - 1

    def leave(module: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        current[0] = None

    handles = []
    for module in net.modules():
        if isinstance(module, SpaceTimeBlock):
            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    net.train()
    with fused_attention(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        net(*args, **kwargs)
    for handle in handles:
        handle.remove()
    return ActivationProfile(
        saved_bytes=totals["all"],
        block_saved_bytes=tuple(b[1] for b in blocks),
        block_input_bytes=tuple(b[0] for b in blocks),
    )


def sampling_activation_bytes(
    unet: UNetConfig, shape: tuple[int, int, int], *, batch: int, text_tokens: int, precision: str = "fp32"
) -> int:
    """Peak bytes of live non-parameter tensors in one no-grad forward at ``shape`` and ``batch`` (a
    guided step's network call has batch 2B), tracked on the meta device in float32 (bf16: half)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    net = meta_network(unet, torch.float32)
    args, kwargs = meta_inputs(unet, batch, shape, text_tokens, torch.float32)
    tracker = MemTracker()
    tracker.track_external(net)
    with tracker, torch.no_grad(), fused_attention():
        net(*args, **kwargs)
    peak = tracker.get_tracker_snapshot("peak")[torch.device("meta")]
    activations = peak["Total"] - sum(v for k, v in peak.items() if k != "Total" and k.value == "Parameter")
    return int(activations * DTYPE_BYTES[precision] // 4)


def block_parameters(unet: UNetConfig) -> list[int]:
    """Parameters of each space-time block (the FSDP units besides the root), built on the meta device."""
    from imagen_video.models.unet import SpaceTimeBlock

    net = meta_network(unet, torch.float32)
    return [sum(p.numel() for p in m.parameters()) for m in net.modules() if isinstance(m, SpaceTimeBlock)]


def train_memory(
    params: int,
    activations_per_sample: int,
    *,
    batch: int,
    gpus: int = 1,
    optimizer_bytes_per_param: float = 8.0,
    precision: str = "fp32",
    fsdp: bool = False,
    cpu_offload: bool = False,
    largest_blocks_params: int = 0,
) -> MemoryEstimate:
    """Per-device training memory of ``params`` parameters at per-device ``batch`` on ``gpus`` devices.

    Parameters and gradients are fp32 (4 bytes each), the optimizer state ``optimizer_bytes_per_param``
    (AdamW 8). FSDP divides all three by ``gpus`` and holds ``largest_blocks_params`` unsharded in the
    compute precision (the block being computed and the one prefetched); without FSDP every device
    holds a replica, plus a bf16 copy of the weights under bf16 autocast. CPU offload (FSDP only) moves
    the sharded parameters, gradients and optimizer state to host memory.
    """
    if batch < 1 or gpus < 1:
        raise ValueError(f"batch and gpus must be >= 1, got {batch}, {gpus}")
    if cpu_offload and not fsdp:
        raise ValueError("cpu_offload needs fsdp")
    shards = gpus if fsdp else 1
    state = [math.ceil(params * 4 / shards), math.ceil(params * 4 / shards)]
    state.append(math.ceil(params * optimizer_bytes_per_param / shards))
    if fsdp:
        working = largest_blocks_params * DTYPE_BYTES[precision]
    else:
        working = params * 2 if precision == "bf16" else 0
    host = 0
    if cpu_offload:
        host, state = sum(state), [0, 0, 0]
    return MemoryEstimate(
        params_bytes=state[0],
        grads_bytes=state[1],
        optimizer_bytes=state[2],
        working_params_bytes=working,
        activations_bytes=activations_per_sample * batch,
        host_bytes=host,
    )


def sample_memory(params: int, activation_peak: int, io_bytes: int) -> MemoryEstimate:
    """Per-device sampling memory: fp32 weights, the forward's activation peak and the stage's own
    video tensors (``io_bytes``: z_t, the conditioning video, the x_hat sums of tiles and windows)."""
    return MemoryEstimate(
        params_bytes=params * 4,
        grads_bytes=0,
        optimizer_bytes=0,
        working_params_bytes=0,
        activations_bytes=activation_peak + io_bytes,
    )


def devices_needed(estimate_for: Any, capacity_bytes: int, max_devices: int = 64) -> int | None:
    """Smallest power-of-two device count N whose ``estimate_for(N).total_bytes`` fits ``capacity_bytes``;
    None if not even ``max_devices`` do."""
    n = 1
    while n <= max_devices:
        if estimate_for(n).total_bytes <= capacity_bytes:
            return n
        n *= 2
    return None
