"""One optimisation step of one cascade stage, as a plain function a test can call.

Per micro-batch (paper secs. 2.1, 2.5, 2.6.1; docs/math.md secs. 3, 8), with the random draws
taken from ``generator`` in this order:

1. conditioning dropout: ``drop_text ~ Bernoulli(p_uncond)`` per sample (the U-Net then uses its
   learned null token sequence, classifier-free guidance);
2. SR stages only: the low-resolution conditioning clip is upsampled to the clip's (T, H, W) with
   ``upsample_video`` (bilinear in space, the stage's ``temporal_upsample`` in time) and corrupted by
   noise conditioning augmentation at a random level ``t_a ~ U(0, aug_t_max)``: the same definitions
   the cascade samples with (there with a fixed ``aug_logsnr``);
3. frame-conditioned bases only: the known-frame masks (:mod:`imagen_video.train.known_frames`);
4. the diffusion loss (v-MSE by default) at ``t ~ U(0, 1)`` with ``eps ~ N(0, I)``.

Gradients of ``grad_accum`` micro-batches are averaged (DDP/FSDP synchronise only on the last one),
the global gradient norm is clipped and AdamW steps. On CUDA with ``precision="bf16"`` the network
forward runs under bf16 autocast; schedule and loss arithmetic stay float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from imagen_video.cascade.config import StageConfig
from imagen_video.diffusion import conditioning_dropout_mask, diffusion_loss, noise_augment
from imagen_video.models import upsample_video
from imagen_video.text.base import TextEmbeddings
from imagen_video.train.known_frames import draw_known_masks

Batch = Mapping[str, Any]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``precision == "bf16"``; otherwise (fp32, or CPU) a no-op context."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_device(model: nn.Module) -> torch.device:
    """Device the model computes on: its first parameter's, or under FSDP2 CPU offload (sharded
    parameters held in host memory) the current device of its device mesh's accelerator."""
    param = next(model.parameters())
    mesh = getattr(param, "device_mesh", None)
    if mesh is not None and mesh.device_type != param.device.type:
        return torch.device(mesh.device_type, torch.get_device_module(mesh.device_type).current_device())
    return param.device


def _sr_conditioning(
    batch: Batch, size: torch.Size, stage_cfg: StageConfig, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """SR stages: the input clip upsampled to ``size`` (T, H, W) and noise-augmented at a random level
    (paper sec. 2.5, docs/math.md sec. 8); ``(None, None)`` for the base stage."""
    if stage_cfg.kind == "base":
        return None, None
    cond = batch.get("cond_video")
    if cond is None:
        raise ValueError(f"stage {stage_cfg.name!r} ({stage_cfg.kind}) needs batch['cond_video']")
    cond = cond.to(device=device, dtype=torch.float32)  # (B, C, T', H', W')
    cond = upsample_video(cond, size=tuple(size), temporal=stage_cfg.temporal_upsample)  # (B, C, T, H, W)
    return noise_augment(cond, config=stage_cfg.diffusion, training=True, generator=generator)


def stage_loss(
    model: nn.Module,
    batch: Batch,
    text: TextEmbeddings,
    stage_cfg: StageConfig,
    *,
    generator: torch.Generator,
    precision: str = "fp32",
) -> torch.Tensor:
    """Per-sample training loss (B,) of ``stage_cfg``'s network on one micro-batch (see module doc).

    ``batch``: ``video`` (B, C, T, H, W) in [-1, 1]; for SR stages ``cond_video`` (B, C, T', H', W')
    in [-1, 1] at the stage's conditioning shape; optional ``image_mode`` (B,) bool (paper sec. 2.6).
    ``text``: embeddings of the batch's captions, in batch order.
    """
    device = model_device(model)
    x = batch["video"].to(device=device, dtype=torch.float32)  # (B, C, T, H, W)
    size = x.shape[0]
    if len(text) != size:
        raise ValueError(f"text embeddings hold {len(text)} prompts but the batch holds {size} clips")
    tokens, mask = text.tokens.to(device), text.mask.to(device)  # (B, L, D), (B, L)
    drop_text = conditioning_dropout_mask(size, stage_cfg.diffusion.p_uncond, generator, device)  # (B,)
    image_mode = batch.get("image_mode")
    image_mode = None if image_mode is None else image_mode.to(device=device, dtype=torch.bool)  # (B,)
    cond_video, aug_logsnr = _sr_conditioning(batch, x.shape[2:], stage_cfg, generator, device)
    known = {}
    if stage_cfg.unet.frame_conditioning:  # clean known frames as input (train/known_frames.py)
        masks = draw_known_masks(size, x.shape[2], generator, device, image_mode)  # (B, T)
        known = {"known_video": x, "known_mask": masks}

    def predict(z_t: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            out = model(
                z_t,
                logsnr,
                tokens,
                mask,
                drop_text=drop_text,
                cond_video=cond_video,
                aug_logsnr=aug_logsnr,
                image_mode=image_mode,
                **known,
            )  # (B, C, T, H, W)
        return out.float()

    return diffusion_loss(predict, x, stage_cfg.diffusion, generator=generator)  # (B,)


@contextlib.contextmanager
def _gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce of DDP (``no_sync``) / FSDP2 on all but the last micro-batch."""
    if enabled:
        yield
    elif isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def train_step(
    model: nn.Module,
    batch: Batch | Sequence[Batch],
    text_embeddings: TextEmbeddings | Sequence[TextEmbeddings],
    stage_cfg: StageConfig,
    *,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    grad_clip: float | None = None,
    precision: str = "fp32",
) -> dict[str, float | bool]:
    """One optimiser step on one micro-batch, or on a list of micro-batches (gradient accumulation).

    ``batch`` / ``text_embeddings``: one micro-batch and its caption embeddings, or equal-length
    sequences of them whose mean loss is optimised. The gradient's global L2 norm is measured (and
    clipped to ``grad_clip`` when given) before ``optimizer.step()``. A non-finite loss or gradient
    skips the update (``skipped`` True) and leaves the weights unchanged.
    Returns ``loss`` (mean over micro-batches and samples), ``grad_norm`` (before clipping), ``skipped``.
    """
    batches = [batch] if isinstance(batch, Mapping) else list(batch)
    texts = [text_embeddings] if isinstance(text_embeddings, TextEmbeddings) else list(text_embeddings)
    if not batches or len(batches) != len(texts):
        raise ValueError(
            f"train_step needs as many text embeddings ({len(texts)}) as micro-batches "
            f"({len(batches)}), at least one"
        )
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=model_device(model))
    for index, (micro, text) in enumerate(zip(batches, texts, strict=True)):
        with _gradient_sync(model, enabled=index == len(batches) - 1):
            loss = stage_loss(model, micro, text, stage_cfg, generator=generator, precision=precision).mean()
            (loss / len(batches)).backward()
        total += loss.detach()
    max_norm = grad_clip if grad_clip is not None else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    loss_value = float(total) / len(batches)
    skipped = not (math.isfinite(grad_norm) and math.isfinite(loss_value))
    if skipped:
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer.step()
    return {"loss": loss_value, "grad_norm": grad_norm, "skipped": skipped}
