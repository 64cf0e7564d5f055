"""Generator-driven random draws that work when the generator and the tensors live on different devices.

A CPU ``torch.Generator`` with CUDA tensors is allowed: numbers are drawn on the generator's device
and moved, so a seed gives the same numbers on every device. No global RNG is used unless
``generator`` is None.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def randn(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal tensor of ``shape`` drawn from ``generator`` and placed on ``device``."""
    out = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(device)


def rand(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform [0, 1) tensor of ``shape`` drawn from ``generator`` and placed on ``device``."""
    out = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(device)
