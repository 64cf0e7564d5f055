"""U-Net presets: tiny test nets, the demo cascade, and the paper's 7-stage cascade (paper sec. 2.2)."""

from __future__ import annotations

import time

import pytest
import torch

from imagen_video.models import UNetConfig, VideoUNet
from imagen_video.models.presets import (
    DEMO_TEXT_DIM,
    T5_XXL_DIM,
    TINY_VARIANTS,
    demo_base_unet,
    demo_ssr_unet,
    demo_top_ssr_unet,
    demo_tsr_unet,
    paper_parameter_counts,
    paper_unets,
    tiny_unet,
)


@pytest.mark.parametrize("variant", TINY_VARIANTS)
def test_tiny_unet_is_fast(variant: str) -> None:
    config = tiny_unet(variant)
    net = VideoUNet(config, generator=torch.Generator().manual_seed(0))
    b, t, h, w = 1, 3, 8, 8
    kwargs = {}
    if config.is_super_resolution:
        kwargs = {"cond_video": torch.zeros(b, 3, t, h, w), "aug_logsnr": torch.zeros(b)}
    args = (
        torch.zeros(b, 3, t, h, w),
        torch.zeros(b),
        torch.zeros(b, 2, config.text.dim),
        torch.ones(b, 2, dtype=torch.bool),
    )
    with torch.no_grad():
        net(*args, **kwargs)
        start = time.process_time()
        net(*args, **kwargs)
    assert time.process_time() - start < 1.0
    with pytest.raises(ValueError, match=r"one of \('base', 'ssr', 'tsr', 'top'\)"):
        tiny_unet("huge")


def _count(config: UNetConfig) -> int:
    with torch.device("meta"):
        return VideoUNet(config).num_parameters()


def test_demo_cascade_stages() -> None:
    base, tsr, ssr, top = demo_base_unet(), demo_tsr_unet(), demo_ssr_unet(), demo_top_ssr_unet()
    assert all(c.text.dim == DEMO_TEXT_DIM for c in (base, tsr, ssr, top))
    assert not base.is_super_resolution and all(c.cond_channels == 3 for c in (tsr, ssr, top))
    # Temporal attention after each spatial attention (Video Diffusion Models), none elsewhere.
    assert [(lvl.spatial_attention, lvl.temporal) for lvl in base.levels] == [
        (False, "none"),
        (True, "attention"),
        (True, "attention"),
    ]
    assert all(level.temporal == "conv" for c in (tsr, ssr, top) for level in c.levels)
    assert top.is_fully_convolutional and not base.is_fully_convolutional
    assert 1.5e6 <= _count(base) <= 2.5e6
    assert all(0.3e6 <= _count(c) <= 2.5e6 for c in (tsr, ssr, top))


def test_paper_cascade_shapes_and_architecture() -> None:
    stages = paper_unets()
    assert [name for name, _, _ in stages] == ["base", "tsr1", "ssr1", "ssr2", "tsr2", "tsr3", "ssr3"]
    assert [shape for _, _, shape in stages] == [
        (16, 24, 40),
        (32, 24, 40),
        (32, 48, 80),
        (32, 192, 320),
        (64, 192, 320),
        (128, 192, 320),
        (128, 768, 1280),
    ]
    configs = dict((name, config) for name, config, _ in stages)
    assert all(c.text.dim == T5_XXL_DIM for c in configs.values())
    base_levels = configs["base"].levels
    assert all(lvl.temporal == ("attention" if lvl.spatial_attention else "none") for lvl in base_levels)
    assert sum(lvl.temporal == "attention" for lvl in configs["base"].levels) == 3
    assert all(level.temporal == "conv" for n, c in configs.items() if n != "base" for level in c.levels)
    with_spatial_attention = [n for n, c in configs.items() if not c.is_fully_convolutional]
    assert {"base", "ssr1", "ssr2"} <= set(with_spatial_attention) and "ssr3" not in with_spatial_attention
    assert all(c.is_super_resolution for n, c in configs.items() if n != "base")


def test_paper_parameter_count_on_meta_device() -> None:
    counts = paper_parameter_counts()
    assert set(counts) == {"base", "tsr1", "ssr1", "ssr2", "tsr2", "tsr3", "ssr3", "total"}
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert abs(counts["total"] / 11.6e9 - 1) < 0.03  # the paper's 11.6B diffusion parameters
    assert abs(counts["base"] / 5.6e9 - 1) < 0.05  # assumed: the 5.6B base of Figure 11
    with torch.device("meta"):
        net = VideoUNet(paper_unets()[0][1])
    assert all(p.device.type == "meta" for p in net.parameters())
