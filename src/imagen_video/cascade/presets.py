"""Named cascade presets: ``tiny`` (tests), ``demo`` (the embedded CPU cascade) and
``paper`` (the 7 stages of Figure 6 with T5-XXL and the sampler settings of sec. 3 / Table 1).

Guidance weights are in the paper's eq. 5 convention (w = 0: no guidance); see
:mod:`imagen_video.diffusion.config` for the Saharia ``W = 1 + w`` convention of Table 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from imagen_video.cascade.config import CascadeConfig, StageConfig
from imagen_video.diffusion.config import (
    DiffusionConfig,
    GuidanceConfig,
    SamplerConfig,
    ThresholdConfig,
    constant_guidance,
    ddim_sampler,
    dynamic_threshold,
    no_guidance,
    oscillating_guidance,
    paper_base_sampler,
    paper_oscillating_guidance,
    paper_sr_sampler,
    saharia_to_eq5,
)
from imagen_video.models import presets as model_presets
from imagen_video.models.config import TextConfig, UNetConfig, unet_config

EMBEDDED_TEXT_DIM = 384  # all-MiniLM-L6-v2 token width (the embedded encoder)
DEFAULT_AUG_LOGSNR = math.log(5.0)  # sampling-time noise-aug level, the paper's "SNR 5" (sec. 2.5)


def _stage(
    name: str,
    kind: str,
    unet: UNetConfig,
    shape: tuple[int, int, int],
    fps: float,
    cond: tuple[int, int, int] | None,
    sampler: SamplerConfig,
    guidance: GuidanceConfig,
    *,
    threshold: ThresholdConfig | None = None,
    train_crop: tuple[int, int] | None = None,
    use_images: bool = False,
) -> StageConfig:
    cond_t, cond_h, cond_w = cond if cond is not None else (None, None, None)
    return StageConfig(
        name=name,
        kind=kind,
        unet=unet,
        diffusion=DiffusionConfig(),
        frames=shape[0],
        height=shape[1],
        width=shape[2],
        fps=fps,
        cond_frames=cond_t,
        cond_height=cond_h,
        cond_width=cond_w,
        aug_logsnr=DEFAULT_AUG_LOGSNR if kind != "base" else 0.0,
        sampler=sampler,
        guidance=guidance,
        threshold=threshold if threshold is not None else dynamic_threshold(),
        train_crop=train_crop,
        use_images=use_images,
    )


# ----------------------------------------------------------------------------------------------
# tiny: three stages of tiny networks for tests (the whole cascade samples in about a second)
# ----------------------------------------------------------------------------------------------


def tiny_stage_unet(kind: str, text_dim: int = EMBEDDED_TEXT_DIM) -> UNetConfig:
    """A two-level 8/16-channel U-Net for tests: temporal attention for ``kind="base"``, temporal
    convolution and a conditioning input for "tsr" / "ssr" (paper sec. 2.3, in miniature)."""
    sr = kind != "base"
    return unet_config(
        (8, 16),
        res_blocks=1,
        attn_levels=(1,),
        temporal="conv" if sr else "attention",
        cond_channels=3 if sr else 0,
        text=TextConfig(dim=text_dim, null_tokens=2),
        head_dim=8,
        norm_groups=4,
        emb_mult=2,
    )


def tiny_cascade(text_encoder: str = "embedded", text_dim: int = EMBEDDED_TEXT_DIM) -> CascadeConfig:
    """Tests: base 4x8x8 @ 2 fps -> tsr 8x8x8 @ 4 fps -> ssr 8x16x16, a few sampler steps each.

    The base uses oscillating guidance and the tsr constant guidance, so both guidance paths run.
    """
    stages = (
        _stage("base", "base", tiny_stage_unet("base", text_dim), (4, 8, 8), 2.0, None,
               SamplerConfig(name="ancestral", steps=4), oscillating_guidance(2.0, 0.0, 1)),
        _stage("tsr", "tsr", tiny_stage_unet("tsr", text_dim), (8, 8, 8), 4.0, (4, 8, 8),
               ddim_sampler(3), constant_guidance(1.0)),
        _stage("ssr", "ssr", tiny_stage_unet("ssr", text_dim), (8, 16, 16), 4.0, (8, 8, 8),
               ddim_sampler(2), no_guidance()),
    )  # fmt: skip
    return CascadeConfig(name="tiny", text_encoder=text_encoder, text_max_length=16, stages=stages)


# ----------------------------------------------------------------------------------------------
# demo: the embedded CPU cascade, 8x12x20 @ 2 fps -> 32x48x80 @ 8 fps (paper pattern, Figure 6)
# ----------------------------------------------------------------------------------------------


def _demo_tsr2_unet() -> UNetConfig:
    """The second demo TSR (32x24x40): 16/32/64 channels, temporal convolution, text cross-attention at
    the coarsest level only; the models package's ``demo_tsr_unet`` costs 3x more at this size."""
    return unet_config(
        (16, 32, 64),
        res_blocks=1,
        cross_attn_levels=(2,),
        temporal="conv",
        cond_channels=3,
        text=TextConfig(dim=EMBEDDED_TEXT_DIM),
        head_dim=32,
        norm_groups=8,
    )


def demo_cascade() -> CascadeConfig:
    """The embedded demo cascade (docs/demo-cascade.md): five stages, the paper's base / TSR / SSR pattern.

    base 8x12x20 @ 2 fps (temporal attention, spatial attention at 6x10 and 3x5)
    -> tsr1 16x12x20 @ 4 fps -> ssr1 16x24x40 (spatial attention at 6x10) -> tsr2 32x24x40 @ 8 fps
    -> ssr2 32x48x80, fully convolutional, trained on 24x40 crops (sec. 2.3). SR stages use temporal
    convolutions. Default sampling is DDIM with 8 base steps and 4/4/2/2 SR steps:
    the fastest setting within 2 points of the best attribute accuracy (base 4 and SR 2/2/1/1 fell 6-8
    points; docs/demo-cascade.md). Guidance is oscillating on the base and the first two SR stages
    and off above 80x48 (sec. 2.6.2); SR stages start from their noised input
    (:func:`_from_noised_input`).
    """
    # Forward cost per sample (torch FLOP counter): base 0.9, tsr1 1.7, ssr1 4.8, tsr2 4.1, ssr2 15.8
    # GFLOP (4.0 on its 24x40 training crops); parameters 2.2M, 2.1M, 1.8M, 0.8M, 0.6M.
    base = model_presets.demo_base_unet()
    tsr1 = model_presets.demo_tsr_unet()
    ssr1 = model_presets.demo_ssr_unet()
    tsr2 = _demo_tsr2_unet()
    ssr2 = model_presets.demo_top_ssr_unet()
    oscillate = oscillating_guidance(4.0, 1.0, 4)
    stages = (
        _stage("base", "base", base, (8, 12, 20), 2.0, None, ddim_sampler(8), oscillate, use_images=True),
        _stage("tsr1", "tsr", tsr1, (16, 12, 20), 4.0, (8, 12, 20), ddim_sampler(4), oscillate),
        _stage("ssr1", "ssr", ssr1, (16, 24, 40), 4.0, (16, 12, 20), ddim_sampler(4), oscillate,
               use_images=True),
        _stage("tsr2", "tsr", tsr2, (32, 24, 40), 8.0, (16, 24, 40), ddim_sampler(2), no_guidance()),
        _stage("ssr2", "ssr", ssr2, (32, 48, 80), 8.0, (32, 24, 40), ddim_sampler(2), no_guidance(),
               train_crop=(24, 40), use_images=True),
    )  # fmt: skip
    stages = (stages[0], *(_from_noised_input(stage) for stage in stages[1:]))
    return CascadeConfig(name="demo", text_encoder="embedded", text_max_length=64, stages=stages)


DEMO_SR_AUG_LOGSNR = 12.0
DEMO_SR_T_START = {"tsr1": 0.3, "ssr1": 0.3, "tsr2": 0.1, "ssr2": 0.1}


def _from_noised_input(stage: StageConfig) -> StageConfig:
    """The demo's SR sampling: start from the nearly clean (aug log-SNR 12) upsampled input noised to
    ``DEMO_SR_T_START`` (t = 0.3 for tsr1 and ssr1, 0.1 for tsr2 and ssr2); temporal SR stages start
    from their input frames interpolated in time (``SamplerConfig.start_from``).

    Chosen while the SR stages were briefly trained (1,000-6,800 steps of batch 8), when from pure
    noise (the paper's start) they blurred and grained the shapes. On 18 world prompts t = 0.3 raised
    the attribute accuracy from 0.44 (aug log-SNR 3, t = 1) to 0.67; on 36 prompts t = 0.1 for the
    last two stages, fine-tuned on t <= 0.35, raised it from 0.67-0.69 to 0.86-0.92. With the
    first GPU-trained stages (v5 in docs/demo-cascade.md), t = 1 for tsr1 and ssr1 is close behind
    (R-Precision 0.931 against 0.958 on seed 0).
    """
    start_from = "interpolated" if stage.kind == "tsr" else "upsampled"
    sampler = stage.sampler.replace(t_start=DEMO_SR_T_START[stage.name], start_from=start_from)
    return stage.replace(aug_logsnr=DEMO_SR_AUG_LOGSNR, sampler=sampler)


# ----------------------------------------------------------------------------------------------
# paper: the 7 stages of Figure 6 (16x40x24 @ 3 fps -> 128x1280x768 @ 24 fps), T5-XXL
# ----------------------------------------------------------------------------------------------


def paper_cascade() -> CascadeConfig:
    """The paper's 7-stage cascade (sec. 2.2, Figure 6) with its sampler settings (sec. 3, Table 1).

    Shapes (T x H x W): base 16x24x40 @ 3 fps -> TSR 32x24x40 @ 6 -> SSR 32x48x80 -> SSR 32x192x320
    -> TSR 64x192x320 @ 12 -> TSR 128x192x320 @ 24 -> SSR 128x768x1280 (fully convolutional, trained
    on 192x320 crops). Base and the first two SR stages: spatial attention and oscillating guidance
    "15, 1" (Saharia convention, w = 14 / 0 here); the later stages constant w = 5 (Saharia's 6, the
    Table 1 constant; our choice above 80x48). Ancestral sampling, 256 base / 128 SR steps.
    """
    unets = {name: unet for name, unet, _ in model_presets.paper_unets()}
    constant = constant_guidance(saharia_to_eq5(6.0))
    sr, osc = paper_sr_sampler(), paper_oscillating_guidance(16)
    stages = (
        _stage("base", "base", unets["base"], (16, 24, 40), 3.0, None, paper_base_sampler(),
               paper_oscillating_guidance(), use_images=True),
        _stage("tsr1", "tsr", unets["tsr1"], (32, 24, 40), 6.0, (16, 24, 40), sr, osc),
        _stage("ssr1", "ssr", unets["ssr1"], (32, 48, 80), 6.0, (32, 24, 40), sr, osc, use_images=True),
        _stage("ssr2", "ssr", unets["ssr2"], (32, 192, 320), 6.0, (32, 48, 80), sr, constant,
               use_images=True),
        _stage("tsr2", "tsr", unets["tsr2"], (64, 192, 320), 12.0, (32, 192, 320), sr, constant),
        _stage("tsr3", "tsr", unets["tsr3"], (128, 192, 320), 24.0, (64, 192, 320), sr, constant),
        _stage("ssr3", "ssr", unets["ssr3"], (128, 768, 1280), 24.0, (128, 192, 320), sr, constant,
               train_crop=(192, 320), use_images=True),
    )  # fmt: skip
    return CascadeConfig(
        name="paper", text_encoder="t5:google/t5-v1_1-xxl", text_max_length=128, stages=stages
    )


CASCADE_PRESETS: dict[str, Callable[[], CascadeConfig]] = {
    "tiny": tiny_cascade,
    "demo": demo_cascade,
    "paper": paper_cascade,
}


def get_cascade_preset(name: str) -> CascadeConfig:
    """The named cascade preset ("tiny", "demo" or "paper"); ValueError naming the allowed names."""
    if name not in CASCADE_PRESETS:
        raise ValueError(f"unknown cascade preset {name!r}; allowed: {', '.join(CASCADE_PRESETS)}")
    return CASCADE_PRESETS[name]()
