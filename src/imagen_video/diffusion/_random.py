"""Generator-driven random draws that work when the generator and the tensors live on different devices.

A CPU ``torch.Generator`` with CUDA tensors is allowed: numbers are drawn on the generator's device
and moved, so a seed gives the same numbers on every device. No global RNG is used unless
``generator`` is None.

``generator`` may also be a sequence of generators, one per sample (row of dim 0): row i is then
drawn from generator i alone, so a sample's numbers do not depend on which other samples share its
batch (a server that batches requests gives each its own seed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator for the whole batch, one per sample (row of dim 0), or None (the global RNG)."""


def _draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def _draw(
    fill: Callable[..., torch.Tensor],
    shape: Sequence[int],
    generator: Generators,
    device: torch.device | str,
    dtype: torch.dtype,
) -> torch.Tensor:
    shape = tuple(shape)
    if generator is None or isinstance(generator, torch.Generator):
        out = fill(shape, generator=generator, device=_draw_device(generator, device), dtype=dtype)
        return out.to(device)
    if not shape or len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} per-sample generators for a draw of shape {shape}")
    rows = [fill(shape[1:], generator=g, device=g.device, dtype=dtype).to(device) for g in generator]
    return torch.stack(rows)


def randn(
    shape: Sequence[int],
    *,
    generator: Generators,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal tensor of ``shape`` drawn from ``generator`` and placed on ``device``."""
    return _draw(torch.randn, shape, generator, device, dtype)


def rand(
    shape: Sequence[int],
    *,
    generator: Generators,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform [0, 1) tensor of ``shape`` drawn from ``generator`` and placed on ``device``."""
    return _draw(torch.rand, shape, generator, device, dtype)
