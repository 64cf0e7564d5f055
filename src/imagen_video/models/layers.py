"""Building blocks of the video U-Net: embeddings, per-frame norms, residual blocks, temporal convolution.

Layout convention: inside the network a video lives as a batch of frames ``(B*T, C, H, W)`` (frame
index fastest within a sample), in channels-last memory format when the config asks for it. Spatial
layers apply to it directly with shared weights across frames (paper Figure 7); temporal layers view
the same memory as ``(B, T, H*W, C)`` or ``(B, C, T, H, W)`` without copying.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of a scalar per sample (Transformer / DDPM position embedding).

    x: (B,) float -> (B, dim) with cos features in the first half and sin in the second.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def logsnr_to_unit(logsnr: Tensor) -> Tensor:
    """Monotone map of log-SNR onto (0, 1): the cosine-schedule time of that log-SNR (docs/math.md
    sec. 1 with logsnr_min/max at -inf/+inf), 2/pi * arctan(exp(-logsnr / 2)); decreasing in log-SNR.

    Stable for any finite or infinite log-SNR: exp overflows to inf and arctan(inf) = pi/2.
    """
    return torch.atan(torch.exp(-0.5 * logsnr.float())) * (2.0 / math.pi)


class ScalarEmbedding(nn.Module):
    """Embed one scalar per sample: sinusoidal features of ``scale * x`` -> Linear -> SiLU -> Linear.

    Used for the log-SNR (paper sec. 2.1: the network is conditioned on log-SNR, through a monotone
    map), the conditioning-augmentation log-SNR (sec. 2.5) and the guidance weight w (sec. 2.7).
    With ``zero_init`` the last layer starts at zero, so the embedding adds nothing at initialisation.
    """

    def __init__(self, features: int, dim: int, *, scale: float, zero_init: bool = False) -> None:
        super().__init__()
        self.features = features
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))
        if zero_init:
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,) -> (B, dim)."""
        return self.mlp(sinusoidal_embedding(x * self.scale, self.features))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each position of a (N, C, H, W) tensor (cheap on channels-last)."""

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, H, W) in the same memory format."""
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def make_norm(kind: str, channels: int, groups: int, affine: bool = True) -> nn.Module:
    """A per-frame normalisation of (N, C, H, W): ``"group"`` GroupNorm or ``"layer"`` channel LayerNorm.

    Statistics never mix frames, so image-mode frames stay independent (paper sec. 2.6).
    """
    if kind == "group":
        return nn.GroupNorm(groups, channels, affine=affine)
    if kind == "layer":
        return ChannelLayerNorm(channels, affine=affine)
    raise ValueError(f"norm must be one of ('group', 'layer'), got {kind!r}")


class ResBlock(nn.Module):
    """Residual block of per-frame 3x3 convolutions with scale-shift conditioning (Figure 7's spatial
    convolution; frames are folded into the batch, so weights are shared across frames).

    h = conv2(dropout(SiLU(norm2(conv1(SiLU(norm1(x)))) * (1 + scale) + shift))) + skip(x), where
    (scale, shift) = Linear(SiLU(emb)) carries log-SNR, pooled text and the other embeddings.
    """

    def __init__(
        self, c_in: int, c_out: int, emb_dim: int, *, norm: str, groups: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = make_norm(norm, c_out, groups, affine=False)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B*T, C_in, H, W), emb: (B, E) -> (B*T, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B*T, C, H, W)
        scale, shift = self.emb_proj(F.silu(emb)).chunk(2, dim=-1)  # (B, C) each
        b = emb.shape[0]
        h = self.norm2(h).unflatten(0, (b, -1))  # (B, T, C, H, W), a view
        h = torch.addcmul(shift[:, None, :, None, None], h, 1 + scale[:, None, :, None, None])
        h = self.conv2(self.dropout(F.silu(h.flatten(0, 1))))  # (B*T, C, H, W)
        return self.skip(x) + h


class TemporalConv(nn.Module):
    """Temporal convolution residual layer (paper sec. 2.3, SR stages): x + keep * Conv_T(SiLU(norm(x))).

    The convolution runs over frames only (kernel k over T, 1 over space) and is zero-initialised, so
    the layer is the identity at initialisation. It is a 2D convolution with a (k, 1) kernel on the
    (B, C, T, H*W) view of the frame batch: with channels-last memory that view is free and the
    convolution is several times faster than the equivalent Conv3d (docs/performance.md).
    ``keep`` (B,) is 1 - image_mode: for a sequence of independent images the residual is multiplied by
    zero, which bypasses it while keeping every parameter in the graph (paper sec. 2.6).
    """

    def __init__(self, channels: int, kernel: int, *, norm: str, groups: int) -> None:
        super().__init__()
        self.norm = make_norm(norm, channels, groups)
        self.conv = nn.Conv2d(channels, channels, (kernel, 1), padding=(kernel // 2, 0))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        """Also accept the (C, C, k, 1, 1) kernel of a Conv3d formulation of the same layer."""
        key = prefix + "conv.weight"
        if key in state_dict and state_dict[key].dim() == 5:
            state_dict[key] = state_dict[key].squeeze(-1)  # (C, C, k, 1, 1) -> (C, C, k, 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor, frames: int, keep: Tensor | None) -> Tensor:
        """x: (B*T, C, H, W); keep: (B,) float or None -> (B*T, C, H, W)."""
        n, c, height, width = x.shape
        h = F.silu(self.norm(x)).permute(0, 2, 3, 1).reshape(-1, frames, height * width, c)  # (B, T, HW, C)
        h = self.conv(h.permute(0, 3, 1, 2))  # (B, C, T, HW), channels-last: a view of (B, T, HW, C)
        if keep is not None:
            h = h * keep.to(h.dtype)[:, None, None, None]
        h = h.permute(0, 2, 3, 1).reshape(n, height, width, c).permute(0, 3, 1, 2)  # (B*T, C, H, W)
        return x + h


class Downsample(nn.Module):
    """Per-frame strided 3x3 convolution: (B*T, C_in, H, W) -> (B*T, C_out, ceil(H/2), ceil(W/2))."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B*T, C_in, H, W) -> (B*T, C_out, ceil(H/2), ceil(W/2))."""
        return self.conv(x)


class Upsample(nn.Module):
    """Per-frame 1x1 channel projection at the low resolution, then nearest-neighbour upsampling to the
    skip's size. Projecting before upsampling costs a quarter of a high-resolution convolution; the
    3x3 convolutions of the next block do the spatial mixing."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """x: (B*T, C_in, h, w) -> (B*T, C_out, *size)."""
        return F.interpolate(self.proj(x), size=size, mode="nearest")
