"""Generator-driven random draws that work when the generator and the tensors live on different devices.

A CPU ``torch.Generator`` with CUDA tensors is allowed: numbers are drawn on the generator's device
and moved, so a seed gives the same numbers on every device. No global RNG is used unless
``generator`` is None.

``generator`` may also be a sequence of generators, one per sample along dim 0: each sample's numbers
then come from its own generator only, so a sample's noise does not depend on the batch it is in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator for the whole tensor, one per sample along dim 0, or None (the global RNG)."""


def _draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def _draw(
    draw: Callable[..., torch.Tensor],
    shape: Sequence[int],
    generator: Generators,
    device: torch.device | str,
    dtype: torch.dtype,
) -> torch.Tensor:
    if isinstance(generator, torch.Generator) or generator is None:
        out = draw(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
        return out.to(device)
    generators = list(generator)
    if not shape or len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for a draw of shape {tuple(shape)}")
    rows = [draw(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype).to(device) for g in generators]
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
