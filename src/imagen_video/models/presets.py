"""Named U-Net presets: a tiny test net, the small demo cascade, and the paper's 7-stage cascade.

The paper (sec. 2.2, Figure 6) gives the cascade's stage shapes and its total of 11.6B diffusion
parameters, but not the width of each stage; :func:`paper_unets` documents the split it assumes.
"""

from __future__ import annotations

from imagen_video.models.config import TextConfig, UNetConfig, base_temporal, unet_config

TINY_VARIANTS = ("base", "ssr", "tsr", "top")
"""Tiny test variants: base (temporal attention at every level, so tests exercise it at the highest
resolution too), ssr / tsr (conditioning video, temporal conv; the same network: SSR and TSR differ in
how the caller upsamples the conditioning video), top (fully convolutional SSR: no spatial attention,
no cross-attention; text via the pooled embedding)."""

DEMO_TEXT_DIM = 384
"""Width of the embedded MiniLM text encoder the demo cascade uses."""

T5_XXL_DIM = 4096
"""Width of T5-XXL token embeddings (the paper's frozen text encoder, sec. 2.2)."""


def tiny_unet(variant: str = "base") -> UNetConfig:
    """A tiny network for tests (two levels of 16 and 32 channels; a forward takes milliseconds)."""
    if variant not in TINY_VARIANTS:
        raise ValueError(f"tiny_unet variant must be one of {TINY_VARIANTS}, got {variant!r}")
    common = {"head_dim": 16, "norm_groups": 8, "text": TextConfig(dim=32, null_tokens=4), "res_blocks": 1}
    if variant == "base":
        return unet_config((16, 32), attn_levels=(1,), temporal="attention", **common)
    if variant == "top":
        return unet_config((16, 32), attn_levels=(), temporal="conv", cond_channels=3, **common)
    return unet_config((16, 32), attn_levels=(1,), temporal="conv", cond_channels=3, **common)


def demo_base_unet() -> UNetConfig:
    """Demo cascade base stage (about 2M parameters): spatial + temporal attention at the two lower
    levels (:func:`base_temporal`), MiniLM text.

    Sized to train on a CPU in tens of minutes at small shapes (e.g. 8 frames of 16x24).
    """
    return unet_config(
        (32, 64, 96),
        res_blocks=1,
        attn_levels=(1, 2),
        temporal=base_temporal(3, (1, 2)),
        head_dim=32,
        norm_groups=16,
        text=TextConfig(dim=DEMO_TEXT_DIM),
    )


def demo_tsr_unet() -> UNetConfig:
    """Demo temporal super-resolution stage: conditioning video, temporal convolution (paper sec. 2.3)."""
    return unet_config(
        (32, 64, 96),
        res_blocks=1,
        attn_levels=(2,),
        temporal="conv",
        cond_channels=3,
        head_dim=32,
        norm_groups=16,
        text=TextConfig(dim=DEMO_TEXT_DIM),
    )


def demo_ssr_unet() -> UNetConfig:
    """Demo spatial super-resolution stage: conditioning video, temporal convolution, attention at the
    lowest resolution level only."""
    return unet_config(
        (24, 48, 96),
        res_blocks=1,
        attn_levels=(2,),
        temporal="conv",
        cond_channels=3,
        head_dim=32,
        norm_groups=8,
        text=TextConfig(dim=DEMO_TEXT_DIM),
    )


def demo_top_ssr_unet() -> UNetConfig:
    """Demo top SSR stage: fully convolutional (no spatial attention, no cross-attention; the text
    arrives through the pooled embedding), so it trains on crops and samples at full size (sec. 2.3)."""
    return unet_config(
        (16, 32, 64),
        res_blocks=1,
        attn_levels=(),
        temporal="conv",
        cond_channels=3,
        head_dim=32,
        norm_groups=8,
        text=TextConfig(dim=DEMO_TEXT_DIM),
    )


def paper_unets() -> list[tuple[str, UNetConfig, tuple[int, int, int]]]:
    """The paper's 7 stages (Figure 6) as (name, config, (frames, height, width)) in cascade order.

    Shapes are the published ones: base 16x24x40 at 3 fps -> TSR 32x24x40 -> SSR 32x48x80 -> SSR
    32x192x320 -> TSR 64x192x320 -> TSR 128x192x320 -> SSR 128x768x1280 (frames x height x width);
    text: T5-XXL (4096). Architecture facts from sec. 2.3: the base model uses temporal attention, the
    SR models temporal convolution; the base and the first two SSR models have spatial attention; the
    highest-resolution SSR is fully convolutional. Assumptions (not published): the TSR models have
    spatial attention only at 24x40 (the first TSR); per-stage widths and depths, chosen so the base
    is about 5.6B parameters (the largest base of the scaling study, Figure 11) and the six SR stages
    share the rest of the published 11.6B total. Cross-attention sits at the two lowest-resolution
    levels of every stage (text conditions all stages, Figure 6 caption).
    """
    text = TextConfig(dim=T5_XXL_DIM, null_tokens=8)
    common = {"head_dim": 64, "text": text}
    return [
        (
            "base",
            unet_config(
                (640, 1280, 2560, 3840),
                res_blocks=3,
                attn_levels=(1, 2, 3),
                temporal=base_temporal(4, (1, 2, 3)),
                **common,
            ),
            (16, 24, 40),
        ),
        (
            "tsr1",
            unet_config(
                (256, 512, 1024, 1792),
                res_blocks=3,
                attn_levels=(2, 3),
                temporal="conv",
                cond_channels=3,
                **common,
            ),
            (32, 24, 40),
        ),
        (
            "ssr1",
            unet_config(
                (256, 512, 1024, 1792),
                res_blocks=3,
                attn_levels=(2, 3),
                temporal="conv",
                cond_channels=3,
                **common,
            ),
            (32, 48, 80),
        ),
        (
            "ssr2",
            unet_config(
                (128, 256, 512, 1024, 1792),
                res_blocks=3,
                attn_levels=(3, 4),
                temporal="conv",
                cond_channels=3,
                **common,
            ),
            (32, 192, 320),
        ),
        (
            "tsr2",
            unet_config(
                (128, 256, 512, 1024, 1792),
                res_blocks=3,
                attn_levels=(),
                cross_attn_levels=(3, 4),
                temporal="conv",
                cond_channels=3,
                **common,
            ),
            (64, 192, 320),
        ),
        (
            "tsr3",
            unet_config(
                (128, 256, 512, 1024, 1792),
                res_blocks=3,
                attn_levels=(),
                cross_attn_levels=(3, 4),
                temporal="conv",
                cond_channels=3,
                **common,
            ),
            (128, 192, 320),
        ),
        (
            "ssr3",
            unet_config(
                (128, 256, 512, 1024, 1280),
                res_blocks=2,
                attn_levels=(),
                cross_attn_levels=(3, 4),
                temporal="conv",
                cond_channels=3,
                **common,
            ),
            (128, 768, 1280),
        ),
    ]


def paper_parameter_counts() -> dict[str, int]:
    """Parameters of each :func:`paper_unets` stage and their ``"total"``, built on the meta device
    (no memory is allocated). The paper states 11.6B diffusion parameters in total (sec. 2.2)."""
    import torch

    from imagen_video.models.unet import VideoUNet

    counts: dict[str, int] = {}
    with torch.device("meta"):
        for name, config, _ in paper_unets():
            counts[name] = VideoUNet(config).num_parameters()
    counts["total"] = sum(counts.values())
    return counts
