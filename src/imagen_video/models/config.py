"""Configuration of the space-time separable video U-Net (paper sec. 2.3 and Figure 7).

One :class:`UNetConfig` describes every network of the cascade: the base model (spatial attention and
temporal attention), the spatial and temporal super-resolution models (``cond_channels > 0``, temporal
convolution) and the fully convolutional top stage (no spatial attention at any level). Each resolution
level is a small :class:`LevelConfig`; text conditioning is a :class:`TextConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from imagen_video.serialization import JsonConfig

TemporalMixing = Literal["attention", "conv", "none"]
TEMPORAL_MIXING: tuple[str, ...] = get_args(TemporalMixing)
"""Allowed temporal layers of a level: temporal self-attention (base model), temporal convolution
(SR models, paper sec. 2.3), or none (a purely spatial level)."""

Norm = Literal["group", "layer"]
NORMS: tuple[str, ...] = get_args(Norm)
"""Allowed normalisations: GroupNorm per frame, or LayerNorm over channels per position."""

Skip = Literal["add", "add_scaled", "concat"]
SKIPS: tuple[str, ...] = get_args(Skip)
"""Allowed U-Net skip connections: added to the up path (every block starts with a normalisation, so no
rescaling is needed), added and scaled by 1/sqrt(2) (Imagen's Efficient U-Net, Saharia et al. 2022b,
App. B), or concatenated on channels (DDPM)."""


@dataclass(frozen=True)
class LevelConfig(JsonConfig):
    """One resolution level of the U-Net: its width and which layers its space-time blocks hold.

    A block is Figure 7's space-time separable block: a residual block of per-frame 2D convolutions,
    then (optionally) spatial self-attention within each frame, cross-attention to the text tokens,
    and the temporal mixing layer.
    """

    channels: int
    """Feature channels at this level (e.g. 64, 128, 256 for the three levels of the base model)."""
    res_blocks: int = 2
    """Space-time blocks per level on the way down (the way up has the same number)."""
    spatial_attention: bool = False
    """Self-attention within each frame (paper: base and the first two SSR stages only)."""
    cross_attention: bool = False
    """Cross-attention to the text tokens (the pooled text embedding reaches every level regardless)."""
    temporal: TemporalMixing = "attention"
    """Temporal mixing: one of TEMPORAL_MIXING ("attention" base, "conv" SR stages, "none")."""

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"LevelConfig.channels must be >= 1, got {self.channels}")
        if self.res_blocks < 1:
            raise ValueError(f"LevelConfig.res_blocks must be >= 1, got {self.res_blocks}")
        if self.temporal not in TEMPORAL_MIXING:
            raise ValueError(f"LevelConfig.temporal must be one of {TEMPORAL_MIXING}, got {self.temporal!r}")


@dataclass(frozen=True)
class TextConfig(JsonConfig):
    """Text conditioning (paper sec. 2.2): frozen-encoder token embeddings and the learned null sequence."""

    dim: int = 768
    """Width D of the text token embeddings (4096 for T5-XXL, 384 for the embedded MiniLM)."""
    null_tokens: int = 8
    """Length of the learned null token sequence that replaces the text where ``drop_text`` is True
    (classifier-free guidance, paper sec. 2.6.1); all of its positions are valid (mask True)."""

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"TextConfig.dim must be >= 1, got {self.dim}")
        if self.null_tokens < 1:
            raise ValueError(f"TextConfig.null_tokens must be >= 1, got {self.null_tokens}")


def _default_levels() -> tuple[LevelConfig, ...]:
    return (
        LevelConfig(64, 2, spatial_attention=False, cross_attention=False, temporal="none"),
        LevelConfig(128, 2, spatial_attention=True, cross_attention=True),
        LevelConfig(256, 2, spatial_attention=True, cross_attention=True),
    )


@dataclass(frozen=True)
class UNetConfig(JsonConfig):
    """The video U-Net (paper sec. 2.3, Figure 7). Defaults: the benchmark's base model at 64/128/256.

    The network maps (z_t, log-SNR, text, optional conditioning video and its aug log-SNR) to a raw
    prediction; it never sees schedule math.
    """

    levels: tuple[LevelConfig, ...] = field(default_factory=_default_levels)
    """Resolution levels, highest resolution first; each level after the first halves H and W."""
    in_channels: int = 3
    """Channels of z_t (and of the output, see ``out_channels``)."""
    out_channels: int = 3
    """Channels of the prediction (v by default)."""
    cond_channels: int = 0
    """Channels of the conditioning video concatenated to z_t (0: base model; 3: SSR/TSR, sec. 2.3).
    A model with cond_channels > 0 also embeds the conditioning-augmentation log-SNR (sec. 2.5)."""
    frame_conditioning: bool = False
    """Known frames as input channels (a base model fine-tuned for image-to-video and extension): the
    clean known frames (zero elsewhere) and a 0/1 mask channel are concatenated to z_t, so the input
    convolution sees ``in_channels + 1`` more channels (docs/conditional.md, "The frame-conditioned
    base"). The network is also a plain text-to-video base when no frame is known."""
    text: TextConfig = field(default_factory=TextConfig)
    """Text token width and learned null sequence."""
    head_dim: int = 64
    """Channels per attention head; a level with C channels has C // head_dim heads."""
    temporal_kernel: int = 3
    """Kernel size of the temporal convolutions (odd)."""
    norm: Norm = "layer"
    """Normalisation, one of NORMS; statistics are always per frame so frames stay independent.
    "layer" (LayerNorm over the channels of each position) is the default: on channels-last memory it
    is a contiguous reduction, measurably cheaper than GroupNorm (docs/performance.md)."""
    norm_groups: int = 32
    """Groups of the GroupNorm (each level's channels must be divisible by it when norm == "group")."""
    skip: Skip = "add"
    """U-Net skip connections, one of SKIPS: "add" (cheaper: the up blocks keep their width),
    "add_scaled" (the same, times 1/sqrt(2); for weights trained with it) or "concat" (the up blocks'
    first convolution sees twice the channels)."""
    attention_out_bias: bool = False
    """A bias on the spatial and cross-attention output projections. Off by default: the projection then
    accumulates straight into the residual in one GEMM; on for weights trained with a bias."""
    emb_mult: int = 4
    """Width of the conditioning embedding = emb_mult * levels[0].channels."""
    dropout: float = 0.0
    """Dropout inside the residual blocks."""
    use_guidance_embedding: bool = False
    """Embed the guidance weight w (guidance-distilled students, paper sec. 2.7; docs/math.md
    sec. 11). Its last layer is zero-initialised, so a student copied from its teacher starts equal."""
    gradient_checkpointing: bool = False
    """Recompute each block's activations in the backward pass (torch.utils.checkpoint)."""
    channels_last: bool = True
    """Convert the input frames and the convolution weights to channels-last memory up front. The norms
    and attention layers produce channels-last activations either way (their token views need it), so
    this only decides the format of the first layers; measured effect within noise (docs/performance.md)."""

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("UNetConfig.levels must hold at least one LevelConfig")
        for name in ("in_channels", "out_channels", "head_dim", "norm_groups", "emb_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"UNetConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.cond_channels < 0:
            raise ValueError(f"UNetConfig.cond_channels must be >= 0, got {self.cond_channels}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            raise ValueError(f"UNetConfig.temporal_kernel must be odd and >= 1, got {self.temporal_kernel}")
        if self.norm not in NORMS:
            raise ValueError(f"UNetConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.skip not in SKIPS:
            raise ValueError(f"UNetConfig.skip must be one of {SKIPS}, got {self.skip!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")
        for i, level in enumerate(self.levels):
            if self.norm == "group" and level.channels % self.norm_groups:
                raise ValueError(
                    f"UNetConfig: level {i} channels {level.channels} must be divisible by "
                    f"norm_groups={self.norm_groups}"
                )
            uses_heads = level.spatial_attention or level.cross_attention or level.temporal == "attention"
            if uses_heads and level.channels % self.head_dim:
                raise ValueError(
                    f"UNetConfig: level {i} channels {level.channels} must be divisible by "
                    f"head_dim={self.head_dim} (it has attention layers)"
                )

    @property
    def is_super_resolution(self) -> bool:
        """True for SSR/TSR stages: they take ``cond_video`` and ``aug_logsnr`` (paper secs. 2.3, 2.5)."""
        return self.cond_channels > 0

    @property
    def input_channels(self) -> int:
        """Channels the input convolution sees: z_t, the conditioning video, and with
        ``frame_conditioning`` the known frames and their mask."""
        known = self.in_channels + 1 if self.frame_conditioning else 0
        return self.in_channels + self.cond_channels + known

    @property
    def is_fully_convolutional(self) -> bool:
        """True when no level has spatial attention (the top SSR stage, paper sec. 2.3)."""
        return not any(level.spatial_attention for level in self.levels)

    @property
    def emb_dim(self) -> int:
        """Width of the conditioning embedding (log-SNR + pooled text + aug log-SNR + guidance w)."""
        return self.emb_mult * self.levels[0].channels


def base_temporal(n_levels: int, attn_levels: tuple[int, ...]) -> tuple[str, ...]:
    """Per-level temporal mixing of a base model: temporal attention after each spatial attention, as
    the Video U-Net inserts it (Video Diffusion Models, Ho et al. 2022b), and none at the other levels."""
    return tuple("attention" if i in attn_levels else "none" for i in range(n_levels))


def unet_config(
    channels: tuple[int, ...],
    *,
    res_blocks: int = 2,
    attn_levels: tuple[int, ...] = (),
    cross_attn_levels: tuple[int, ...] | None = None,
    temporal: str | tuple[str, ...] = "attention",
    **overrides: object,
) -> UNetConfig:
    """Build a :class:`UNetConfig` from per-level channel widths and level indices with attention.

    ``cross_attn_levels`` defaults to ``attn_levels``; ``temporal`` is one value for every level or one
    per level; ``overrides`` are other :class:`UNetConfig` fields (e.g. ``cond_channels=3``).
    """
    n = len(channels)
    for name, idx in (("attn_levels", attn_levels), ("cross_attn_levels", cross_attn_levels or ())):
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise ValueError(f"unet_config: {name} {bad} out of range; allowed level indices 0..{n - 1}")
    cross = attn_levels if cross_attn_levels is None else cross_attn_levels
    temporals = (temporal,) * n if isinstance(temporal, str) else tuple(temporal)
    if len(temporals) != n:
        raise ValueError(f"unet_config: temporal needs 1 or {n} values, got {len(temporals)}")
    levels = tuple(
        LevelConfig(c, res_blocks, spatial_attention=i in attn_levels, cross_attention=i in cross, temporal=t)
        for i, (c, t) in enumerate(zip(channels, temporals, strict=True))
    )
    return UNetConfig(levels=levels, **overrides)  # type: ignore[arg-type]
