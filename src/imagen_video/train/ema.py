"""Exponential moving average of the weights, the weights that are sampled and exported.

After update n (0-based) the shadow weights move as ``ema <- decay_n * ema + (1 - decay_n) * w`` with
``decay_n = min(decay, (1 + n) / (10 + n))`` when warm-up is on (the usual EMA warm-up of diffusion
training, so an early checkpoint's EMA is not dominated by the random initialisation). Floating-point
buffers are averaged like parameters; integer buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Shadow copy of a module whose floating-point state follows an exponential moving average."""

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def current_decay(self) -> float:
        """Decay of the next update: ``min(decay, (1 + n) / (10 + n))`` with warm-up, else ``decay``."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights toward ``model``'s current state (same architecture, unwrapped)."""
        decay = self.current_decay()
        source = model.state_dict()
        for name, shadow in self.model.state_dict().items():
            value = source[name].detach()
            if shadow.is_floating_point():
                shadow.lerp_(value.to(shadow.dtype), 1.0 - decay)
            else:
                shadow.copy_(value)
        self.num_updates += 1

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The shadow state dict (tensors for safetensors)."""
        return {k: v.detach() for k, v in self.model.state_dict().items()}

    def load_state(self, tensors: dict[str, torch.Tensor], num_updates: int) -> None:
        """Restore the shadow weights and the update counter from a checkpoint."""
        self.model.load_state_dict(tensors, strict=True)
        self.num_updates = int(num_updates)
