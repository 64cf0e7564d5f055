"""Known-frame masks for training a frame-conditioned base (``UNetConfig.frame_conditioning``).

Image-to-video, first/last-frame generation and extension condition the base on some clean frames of
the clip (Video Diffusion Models, Ho et al. 2022, sec. 3.1, learned here rather than imposed at
sampling time). Training draws, per clip, one pattern of known frames with equal probability
(:data:`PATTERN_PROBS`): none (a plain text-to-video step, so the network stays a base), the first
frame, the first and the last, the first ``k``, or the last ``k`` (``k`` uniform in 1 .. T - 1).
Image-mode items (paper sec. 2.6, frames independent) know no frame. The known frames' values are the
clip's own clean frames; the loss covers every frame, as for any base step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imagen_video.diffusion import _random

PATTERNS = ("none", "first", "first_last", "prefix", "suffix")
"""Known-frame patterns drawn in training, in the order of :data:`PATTERN_PROBS`."""
PATTERN_PROBS = (0.2, 0.2, 0.2, 0.2, 0.2)
"""Probability of each pattern of :data:`PATTERNS`."""


def draw_known_masks(
    batch: int,
    frames: int,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    image_mode: Tensor | None = None,
) -> Tensor:
    """(B, T) bool known-frame masks, one pattern of :data:`PATTERNS` per clip (see the module doc).

    Two draws from ``generator``, in order: the pattern u ~ U(0, 1) and the length k of a prefix or
    suffix (both (B,)). ``image_mode`` (B,) bool: those items know no frame.
    """
    if frames < 2:
        raise ValueError(f"known-frame masks need clips of at least 2 frames, got {frames}")
    u = _random.rand((batch,), generator=generator, device=device)  # (B,)
    k = (_random.rand((batch,), generator=generator, device=device) * (frames - 1)).long() + 1  # (B,)
    edges = torch.tensor(PATTERN_PROBS, device=u.device).cumsum(0)
    pattern = torch.searchsorted(edges, u.contiguous(), right=True).clamp(max=len(PATTERNS) - 1)  # (B,)
    pos = torch.arange(frames, device=u.device)[None]  # (1, T)
    first, last = pos == 0, pos == frames - 1
    masks = torch.stack(
        [
            torch.zeros_like(pos, dtype=torch.bool).expand(batch, -1),
            first.expand(batch, -1),
            (first | last).expand(batch, -1),
            pos < k[:, None],
            pos >= frames - k[:, None],
        ]
    )  # (P, B, T)
    mask = masks.gather(0, pattern.view(1, batch, 1).expand(1, batch, frames))[0]  # (B, T)
    if image_mode is not None:
        mask = mask & ~image_mode.to(mask.device)[:, None]
    return mask


def widen_for_known_frames(state: dict[str, Tensor], in_channels: int) -> dict[str, Tensor]:
    """A base network's weights for its ``frame_conditioning`` version: the input convolution gains
    ``in_channels + 1`` zero-initialised input channels (known frames and mask), so the widened
    network starts out computing exactly what the base computed."""
    weight = state["in_conv.weight"]  # (C0, C_in, k, k)
    extra = weight.new_zeros(weight.shape[0], in_channels + 1, *weight.shape[2:])
    return {**state, "in_conv.weight": torch.cat([weight, extra], dim=1)}
