"""The space-time separable video U-Net (paper sec. 2.3 and Figure 7), one class for every stage.

Base model: per-frame 2D convolutions, spatial self-attention and temporal self-attention. SSR / TSR
models: the upsampled, noise-augmented conditioning video concatenated on channels (sec. 2.3, 2.5)
and temporal convolutions. The top SSR stage: fully convolutional (no spatial attention), so it trains
on crops and samples at any size. Text enters through cross-attention and through its masked mean
added to the log-SNR embedding; a learned null token sequence replaces it for classifier-free guidance
(sec. 2.6.1). Image sequences (sec. 2.6) get diagonal temporal attention and bypassed temporal convs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from imagen_video.models.attention import (
    CrossAttention,
    SpatialSelfAttention,
    TemporalAttention,
    temporal_attention_mask,
)
from imagen_video.models.config import LevelConfig, UNetConfig
from imagen_video.models.layers import (
    Downsample,
    ResBlock,
    ScalarEmbedding,
    TemporalConv,
    Upsample,
    logsnr_to_unit,
    make_norm,
)

LOGSNR_FEATURE_SCALE = 1000.0
"""Sinusoidal features are taken of 1000 * u, u in (0, 1) the mapped log-SNR (DDPM's 1000 steps)."""
GUIDANCE_FEATURE_SCALE = 100.0
"""Sinusoidal features are taken of 100 * w for the guidance weight w (typically 0..20)."""


class Conditioning(NamedTuple):
    """Per-forward conditioning shared by every block (built once in :meth:`VideoUNet.forward`)."""

    emb: Tensor  # (B, E) log-SNR + pooled text (+ aug log-SNR) (+ guidance w) embedding
    frames: int  # T
    context: Tensor  # (B, L, D) layer-normalised text tokens (null tokens where drop_text)
    context_mask: Tensor  # (B, L) bool, True = real token
    frame_mask: Tensor | None  # (B, 1, T, T) bool temporal attention mask, None = all frames
    keep: Tensor | None  # (B,) float, 1 - image_mode, multiplies the temporal conv residual


class SpaceTimeBlock(nn.Module):
    """Figure 7's block: spatial conv (ResBlock) -> spatial self-attn -> text cross-attn -> temporal mixing.

    Spatial layers act on each frame with shared weights; the temporal layer (attention or convolution,
    per level) mixes frames and is the identity at initialisation.
    """

    def __init__(self, c_in: int, c_out: int, level: LevelConfig, config: UNetConfig) -> None:
        super().__init__()
        norm = {"norm": config.norm, "groups": config.norm_groups}
        self.res = ResBlock(c_in, c_out, config.emb_dim, dropout=config.dropout, **norm)
        bias = config.attention_out_bias
        self.spatial = (
            SpatialSelfAttention(c_out, config.head_dim, **norm, out_bias=bias)
            if level.spatial_attention
            else None
        )
        self.cross = (
            CrossAttention(c_out, config.text.dim, config.head_dim, **norm, out_bias=bias)
            if level.cross_attention
            else None
        )
        self.temporal: TemporalAttention | TemporalConv | None = None
        if level.temporal == "attention":
            self.temporal = TemporalAttention(c_out, config.head_dim, **norm)
        elif level.temporal == "conv":
            self.temporal = TemporalConv(c_out, config.temporal_kernel, **norm)

    def forward(self, x: Tensor, cond: Conditioning) -> Tensor:
        """x: (B*T, C_in, H, W) -> (B*T, C_out, H, W)."""
        x = self.res(x, cond.emb)
        if self.spatial is not None:
            x = self.spatial(x)
        if self.cross is not None:
            x = self.cross(x, cond.context, cond.context_mask)
        if isinstance(self.temporal, TemporalAttention):
            x = self.temporal(x, cond.frames, cond.frame_mask)
        elif isinstance(self.temporal, TemporalConv):
            x = self.temporal(x, cond.frames, cond.keep)
        return x


class VideoUNet(nn.Module):
    """Space-time separable video U-Net (paper sec. 2.3, Figure 7); see the module docstring.

    Levels (highest resolution first) each hold ``res_blocks`` space-time blocks on the way down and on
    the way up, joined by skip connections; two blocks of the last level form the middle. Conditioning
    embedding = MLP(sinusoidal(logsnr_to_unit(logsnr))) + Linear(masked mean of the text tokens)
    [+ the same MLP form of aug_logsnr for SR stages] [+ MLP(sinusoidal(w)) with zero-initialised last
    layer for guidance-distilled students]. ``generator`` makes the initialisation reproducible without
    touching the global RNG.

    Example::

        net = VideoUNet(presets.tiny_unet("base"), generator=torch.Generator().manual_seed(0))
        v_hat = net(z_t, logsnr, tokens, mask, drop_text=drop)  # (B, 3, T, H, W)
    """

    def __init__(self, config: UNetConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        if generator is None:
            self._build(config)
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._build(config)

    def _build(self, config: UNetConfig) -> None:
        levels, emb_dim, c0 = config.levels, config.emb_dim, config.levels[0].channels
        self.logsnr_embed = ScalarEmbedding(c0, emb_dim, scale=LOGSNR_FEATURE_SCALE)
        self.aug_embed = (
            ScalarEmbedding(c0, emb_dim, scale=LOGSNR_FEATURE_SCALE) if config.is_super_resolution else None
        )
        self.guidance_embed = (
            ScalarEmbedding(c0, emb_dim, scale=GUIDANCE_FEATURE_SCALE, zero_init=True)
            if config.use_guidance_embedding
            else None
        )
        self.null_tokens = nn.Parameter(torch.randn(config.text.null_tokens, config.text.dim))  # (Ln, D)
        self.text_norm = nn.LayerNorm(config.text.dim)
        self.text_pool = nn.Linear(config.text.dim, emb_dim)
        self.in_conv = nn.Conv2d(config.input_channels, c0, 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, level in enumerate(levels):
            c = level.channels
            self.down.append(
                nn.ModuleList(SpaceTimeBlock(c, c, level, config) for _ in range(level.res_blocks))
            )
            if i + 1 < len(levels):
                self.downsample.append(Downsample(c, levels[i + 1].channels))
        last = levels[-1]
        self.mid = nn.ModuleList(SpaceTimeBlock(last.channels, last.channels, last, config) for _ in range(2))
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        skip_width = 2 if config.skip == "concat" else 1
        for i in reversed(range(len(levels))):
            c = levels[i].channels
            self.up.append(
                nn.ModuleList(
                    SpaceTimeBlock(skip_width * c, c, levels[i], config) for _ in range(levels[i].res_blocks)
                )
            )
            if i > 0:
                self.upsample.append(Upsample(c, levels[i - 1].channels))
        self.out_norm = make_norm(config.norm, c0, config.norm_groups)
        self.out_conv = nn.Conv2d(c0, config.out_channels, 3, padding=1)
        if config.channels_last:
            _to_channels_last(self)

    def forward(
        self,
        z_t: Tensor,
        logsnr: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        *,
        drop_text: Tensor | None = None,
        cond_video: Tensor | None = None,
        aug_logsnr: Tensor | None = None,
        image_mode: Tensor | None = None,
        guidance_w: Tensor | None = None,
        known_video: Tensor | None = None,
        known_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict (v by default) from z_t (B, C, T, H, W) at log-SNR (B,) given text (B, L, D) / (B, L).

        See :class:`VideoUNet` and paper secs. 2.3, 2.5, 2.6. A ``frame_conditioning`` network also
        takes ``known_video`` (B, C, T, H, W) in [-1, 1], read where ``known_mask`` (B, T) bool is True
        (no frame known when both are None).
        Returns the raw prediction with z_t's shape (B, C_out, T, H, W).
        """
        self._validate(
            z_t, logsnr, text_tokens, text_mask, drop_text, cond_video, aug_logsnr, image_mode, guidance_w
        )
        b, _, frames, height, width = z_t.shape
        inputs = [z_t] if cond_video is None else [z_t, cond_video.to(z_t.dtype)]
        known = self._known_frames(z_t, known_video, known_mask)
        x = torch.cat(inputs + known, dim=1) if len(inputs) + len(known) > 1 else z_t
        x = x.transpose(1, 2).flatten(0, 1)  # (B*T, C_in, H, W)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        cond = self._conditioning(
            b, frames, logsnr, text_tokens, text_mask, drop_text, aug_logsnr, image_mode, guidance_w
        )
        h = self.in_conv(x)  # (B*T, C0, H, W)
        skips: list[Tensor] = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = self._run(block, h, cond)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for block in self.mid:
            h = self._run(block, h, cond)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = self._run(block, self._merge_skip(h, skips.pop()), cond)
            if i < len(self.upsample):
                h = self.upsample[i](h, skips[-1].shape[-2:])
        out = self.out_conv(F.silu(self.out_norm(h)))  # (B*T, C_out, H, W)
        return out.unflatten(0, (b, frames)).transpose(1, 2).contiguous()  # (B, C_out, T, H, W)

    def _known_frames(
        self, z_t: Tensor, known_video: Tensor | None, known_mask: Tensor | None
    ) -> list[Tensor]:
        """The known-frame input channels ``[known * mask, mask]`` of a ``frame_conditioning`` network
        (zeros when no frame is known); ``[]`` for other networks, which refuse known frames."""
        if not self.config.frame_conditioning:
            if known_video is not None or known_mask is not None:
                raise ValueError("known_video / known_mask given to a U-Net without frame_conditioning")
            return []
        b, _, t, h, w = z_t.shape
        if (known_video is None) != (known_mask is None):
            raise ValueError("give known_video and known_mask together (or neither)")
        if known_video is None or known_mask is None:
            zeros = z_t.new_zeros(b, self.config.in_channels + 1, t, h, w)
            return [zeros]
        _check(known_video, (b, self.config.in_channels, t, h, w), "known_video", "(B, C, T, H, W)")
        _check(known_mask, (b, t), "known_mask", "(B, T)", torch.bool)
        m = known_mask.to(z_t.dtype).view(b, 1, t, 1, 1).expand(b, 1, t, h, w)  # (B, 1, T, H, W)
        return [known_video.to(z_t.dtype) * m, m]

    def _merge_skip(self, h: Tensor, skip: Tensor) -> Tensor:
        """Combine the up path with the matching down-path activation (B*T, C, H, W)."""
        if self.config.skip == "concat":
            return torch.cat([h, skip], dim=1)  # (B*T, 2C, H, W)
        if self.config.skip == "add_scaled":
            return (h + skip) * 2**-0.5
        return h + skip

    def _run(self, block: SpaceTimeBlock, h: Tensor, cond: Conditioning) -> Tensor:
        """Run one block, with activation checkpointing when configured and training."""
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, cond, use_reentrant=False)
        return block(h, cond)

    def _conditioning(
        self,
        b: int,
        frames: int,
        logsnr: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        drop_text: Tensor | None,
        aug_logsnr: Tensor | None,
        image_mode: Tensor | None,
        guidance_w: Tensor | None,
    ) -> Conditioning:
        """Embeddings, text context (with the null sequence where dropped) and frame masks."""
        context, context_mask = self._text_context(text_tokens, text_mask, drop_text)  # (B, L, D), (B, L)
        weights = context_mask.to(context.dtype)[..., None]  # (B, L, 1)
        pooled = (context * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, D) masked mean
        emb = self.logsnr_embed(logsnr_to_unit(logsnr)) + self.text_pool(pooled)  # (B, E)
        if self.aug_embed is not None and aug_logsnr is not None:
            emb = emb + self.aug_embed(logsnr_to_unit(aug_logsnr))
        if self.guidance_embed is not None and guidance_w is not None:
            emb = emb + self.guidance_embed(guidance_w.float())
        frame_mask = keep = None
        if image_mode is not None:
            frame_mask = temporal_attention_mask(image_mode, frames)
            keep = (~image_mode).float()
        return Conditioning(emb, frames, context, context_mask, frame_mask, keep)

    def _text_context(
        self, text_tokens: Tensor, text_mask: Tensor, drop_text: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Layer-normalised text tokens, the learned null sequence substituted where ``drop_text``.

        The substitution always runs (drop_text=None means no sample dropped), so the null tokens stay in
        the autograd graph and distributed training needs no ``find_unused_parameters``.
        """
        if drop_text is None:
            drop_text = torch.zeros(text_tokens.shape[0], dtype=torch.bool, device=text_tokens.device)
        n_null = self.null_tokens.shape[0]
        length = max(text_tokens.shape[1], n_null)
        tokens = F.pad(text_tokens, (0, 0, 0, length - text_tokens.shape[1]))  # (B, L', D)
        mask = F.pad(text_mask, (0, length - text_mask.shape[1]), value=False)  # (B, L')
        null = F.pad(self.null_tokens.to(tokens.dtype), (0, 0, 0, length - n_null))  # (L', D)
        null_mask = torch.arange(length, device=mask.device) < n_null  # (L',)
        tokens = torch.where(drop_text[:, None, None], null[None], tokens)
        mask = torch.where(drop_text[:, None], null_mask[None], mask)
        return self.text_norm(tokens), mask

    def _validate(
        self,
        z_t: Tensor,
        logsnr: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        drop_text: Tensor | None,
        cond_video: Tensor | None,
        aug_logsnr: Tensor | None,
        image_mode: Tensor | None,
        guidance_w: Tensor | None,
    ) -> None:
        """Check shapes and the presence of stage-specific inputs; errors name the expected shape."""
        cfg = self.config
        if z_t.dim() != 5 or z_t.shape[1] != cfg.in_channels:
            raise ValueError(f"z_t must have shape (B, {cfg.in_channels}, T, H, W), got {tuple(z_t.shape)}")
        b, _, t, h, w = z_t.shape
        _check(logsnr, (b,), "logsnr", "(B,)")
        if text_tokens.dim() != 3 or text_tokens.shape[0] != b or text_tokens.shape[2] != cfg.text.dim:
            raise ValueError(
                f"text_tokens must have shape (B={b}, L, {cfg.text.dim}), got {tuple(text_tokens.shape)}"
            )
        _check(text_mask, (b, text_tokens.shape[1]), "text_mask", "(B, L)", torch.bool)
        for name, value in (("drop_text", drop_text), ("image_mode", image_mode)):
            if value is not None:
                _check(value, (b,), name, "(B,)", torch.bool)
        if cfg.is_super_resolution:
            if cond_video is None or aug_logsnr is None:
                raise ValueError("this super-resolution U-Net needs cond_video and aug_logsnr")
            _check(cond_video, (b, cfg.cond_channels, t, h, w), "cond_video", "(B, C_cond, T, H, W)")
            _check(aug_logsnr, (b,), "aug_logsnr", "(B,)")
        elif cond_video is not None or aug_logsnr is not None:
            raise ValueError("cond_video / aug_logsnr given to a U-Net with cond_channels=0 (a base model)")
        if cfg.use_guidance_embedding:
            if guidance_w is None:
                raise ValueError("this U-Net embeds the guidance weight: pass guidance_w of shape (B,)")
            _check(guidance_w, (b,), "guidance_w", "(B,)")
        elif guidance_w is not None:
            raise ValueError("guidance_w given to a U-Net with use_guidance_embedding=False")
        if (
            z_t.device.type != "meta"
            and not torch.compiler.is_compiling()
            and not bool(_has_valid_token(text_mask, drop_text).all())
        ):
            raise ValueError("every sample needs at least one True in text_mask (or drop_text=True)")

    def num_parameters(self) -> int:
        """Total number of parameters (works on the meta device)."""
        return sum(p.numel() for p in self.parameters())


def _to_channels_last(module: nn.Module) -> None:
    """Put every convolution weight in channels-last memory (matching the activations)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)


def _has_valid_token(text_mask: Tensor, drop_text: Tensor | None) -> Tensor:
    """(B,) bool: the sample attends to at least one token (its own or the null sequence)."""
    valid = text_mask.any(dim=1)
    return valid if drop_text is None else valid | drop_text


def _check(
    value: Tensor, shape: tuple[int, ...], name: str, symbolic: str, dtype: torch.dtype | None = None
) -> None:
    """Raise a one-line error naming the expected shape (and dtype) of an input."""
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {symbolic} = {shape}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {value.dtype}")
