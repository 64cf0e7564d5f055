"""Attention layers of the video U-Net, all through ``F.scaled_dot_product_attention`` (paper Figure 7).

- :class:`SpatialSelfAttention`: self-attention among the H*W positions of each frame separately.
- :class:`CrossAttention`: every position attends to the text tokens (with their padding mask).
- :class:`TemporalAttention`: self-attention among the T frames at each spatial position, with rotary
  position embeddings over the frame index, so attention depends on relative frame positions (the
  Video U-Net of Ho et al. 2022b uses relative positions) and works for any T; masked to the diagonal
  for image sequences (paper sec. 2.6).

Every layer is pre-norm and residual; query/key/value projections have no bias (a key bias cancels in
the softmax, a value bias is the output bias), which saves a pass over the projected tokens, and the
spatial and cross-attention output projections accumulate straight into the residual (one GEMM). Inputs
and outputs are frame batches (B*T, C, H, W); with
channels-last memory the (B*T, H*W, C), (B, T*H*W, C) and (B, T, H*W, C) views used here are free.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagen_video.models.layers import make_norm


def _tokens(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, H*W, C); a view for channels-last memory."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def _add_projection(x: Tensor, o: Tensor, proj: nn.Module) -> Tensor:
    """x + o @ W^T as one GEMM that accumulates into the residual (torch.addmm): no separate add pass.

    x: (N, C, H, W) residual stream; o: (N*H*W, C) attention output; proj: Linear(C, C). A projection
    bias (``UNetConfig.attention_out_bias``, kept for weights trained with one) costs one more pass.
    """
    n, c, h, w = x.shape
    residual = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view for channels-last memory
    if not isinstance(proj, nn.Linear):  # a wrapped projection (a LoRA adapter): through its forward
        return _untokens(residual + proj(o), x)
    out = torch.addmm(residual, o, proj.weight.t())
    if proj.bias is not None:
        out = out + proj.bias
    return _untokens(out, x)


def _untokens(tokens: Tensor, like: Tensor) -> Tensor:
    """(N, H*W, C) -> (N, C, H, W) shaped like ``like``; a view of contiguous tokens (channels-last)."""
    n, c, h, w = like.shape
    return tokens.reshape(n, h, w, c).permute(0, 3, 1, 2)


class SpatialSelfAttention(nn.Module):
    """Self-attention within each frame over its H*W positions (spatial attention of Figure 7)."""

    def __init__(
        self, channels: int, head_dim: int, *, norm: str, groups: int, out_bias: bool = False
    ) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.norm = make_norm(norm, channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Linear(channels, channels, bias=out_bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B*T, C, H, W) -> (B*T, C, H, W)."""
        tokens = _tokens(self.norm(x))  # (N, HW, C)
        n, length, c = tokens.shape
        qkv = self.qkv(tokens).view(n, length, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (N, heads, HW, d) each
        o = F.scaled_dot_product_attention(q, k, v)  # (N, heads, HW, d)
        return _add_projection(x, o.transpose(1, 2).reshape(n * length, c), self.out)


class CrossAttention(nn.Module):
    """Cross-attention from every position of every frame to the sample's text tokens (paper sec. 2.2).

    Frames of one sample share the same text, so the queries of all T*H*W positions of a sample form one
    sequence against its L tokens: no per-frame copies of the keys and values.
    """

    def __init__(
        self,
        channels: int,
        context_dim: int,
        head_dim: int,
        *,
        norm: str,
        groups: int,
        out_bias: bool = False,
    ) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.norm = make_norm(norm, channels, groups)
        self.q = nn.Linear(channels, channels, bias=False)
        self.kv = nn.Linear(context_dim, 2 * channels, bias=False)
        self.out = nn.Linear(channels, channels, bias=out_bias)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        """x: (B*T, C, H, W); context: (B, L, D) normalised tokens; context_mask: (B, L) bool."""
        b, length, _ = context.shape
        n, c, h, w = x.shape
        d = c // self.heads
        q = self.q(_tokens(self.norm(x))).reshape(b, -1, self.heads, d).transpose(1, 2)  # (B, heads, T*HW, d)
        k, v = self.kv(context).view(b, length, 2, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        mask = context_mask[:, None, None, :]  # (B, 1, 1, L)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, T*HW, d)
        return _add_projection(x, o.transpose(1, 2).reshape(n * h * w, c), self.out)


def rotary_phases(frames: int, dim: int, device: torch.device) -> Tensor:
    """Complex rotary phases exp(i * t * theta_j), (T, dim/2), over the frame index (Su et al. 2021)."""
    theta = 10000.0 ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)  # (d/2,)
    angles = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * theta[None]  # (T, d/2)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary(x: Tensor, phases: Tensor) -> Tensor:
    """Rotate consecutive channel pairs of x (..., T, d) by the phases (T, d/2): one complex product.

    Relative frame positions for temporal attention: q_t . k_s then depends on t - s only.
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (..., T, d/2) complex
    return torch.view_as_real(pairs * phases).flatten(-2).to(x.dtype)


class TemporalAttention(nn.Module):
    """Self-attention over the T frames at each spatial position (temporal attention of Figure 7).

    The output projection is zero-initialised, so the layer is the identity at initialisation and a
    stage can start from image weights. ``frame_mask`` (B, 1, T, T) bool, built by
    :func:`temporal_attention_mask`, restricts image sequences to the diagonal (paper sec. 2.6).
    """

    def __init__(self, channels: int, head_dim: int, *, norm: str, groups: int) -> None:
        super().__init__()
        self.heads = channels // head_dim
        self.norm = make_norm(norm, channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, frames: int, frame_mask: Tensor | None) -> Tensor:
        """x: (B*T, C, H, W); frame_mask: (B, 1, T, T) bool or None -> (B*T, C, H, W)."""
        n, c, h, w = x.shape
        b, hw, d = n // frames, h * w, c // self.heads
        tokens = _tokens(self.norm(x)).unflatten(0, (b, frames))  # (B, T, HW, C)
        tokens = tokens.transpose(1, 2).reshape(b * hw, frames, c)  # (B*HW, T, C), the one layout copy
        qkv = self.qkv(tokens).view(b * hw, frames, 3, self.heads, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B*HW, heads, T, d) strided views
        phases = rotary_phases(frames, d, x.device)  # (T, d/2)
        q, k = apply_rotary(q, phases), apply_rotary(k, phases)
        mask = None
        if frame_mask is not None:  # (B, 1, T, T) -> (B*HW, 1, T, T) additive 0 / -inf, no gradient
            mask = torch.zeros(frame_mask.shape, dtype=q.dtype, device=x.device)
            mask = mask.masked_fill(~frame_mask, -math.inf)
            mask = mask[:, None].expand(b, hw, 1, frames, frames).reshape(b * hw, 1, frames, frames)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B*HW, heads, T, d)
        o = self.out(o.transpose(1, 2).reshape(b, hw, frames, c))  # (B, HW, T, C)
        residual = _tokens(x).unflatten(0, (b, frames)) + o.transpose(1, 2)  # (B, T, HW, C) in x's layout
        return _untokens(residual.flatten(0, 1), x)


def temporal_attention_mask(image_mode: Tensor, frames: int) -> Tensor:
    """(B,) bool -> (B, 1, T, T) bool: all True for videos, the identity for image sequences."""
    eye = torch.eye(frames, dtype=torch.bool, device=image_mode.device)
    return (eye | ~image_mode[:, None, None])[:, None]
