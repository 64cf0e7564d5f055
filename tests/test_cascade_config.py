"""Stage / cascade configs and presets (paper sec. 2.2, Figure 6, sec. 3)."""

from __future__ import annotations

import math

import pytest

from imagen_video.cascade.config import SAMPLING_FIELDS, CascadeConfig, StageConfig
from imagen_video.cascade.presets import CASCADE_PRESETS, get_cascade_preset, tiny_cascade


@pytest.mark.parametrize("name", sorted(CASCADE_PRESETS))
def test_presets_round_trip_through_json(name: str) -> None:
    config = get_cascade_preset(name)
    assert CascadeConfig.from_json(config.to_json()) == config
    assert config.stages[0].kind == "base"
    for previous, stage in zip(config.stages, config.stages[1:], strict=False):
        assert stage.cond_shape == previous.shape


def test_unknown_preset_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: tiny, demo, paper"):
        get_cascade_preset("huge")


def test_paper_preset_matches_figure_6_and_section_3() -> None:
    paper = get_cascade_preset("paper")
    shapes = [(s.kind, s.frames, s.height, s.width, s.fps) for s in paper.stages]
    assert shapes == [
        ("base", 16, 24, 40, 3.0),
        ("tsr", 32, 24, 40, 6.0),
        ("ssr", 32, 48, 80, 6.0),
        ("ssr", 32, 192, 320, 6.0),
        ("tsr", 64, 192, 320, 12.0),
        ("tsr", 128, 192, 320, 24.0),
        ("ssr", 128, 768, 1280, 24.0),
    ]
    assert paper.text_encoder == "t5:google/t5-v1_1-xxl" and paper.stages[0].unet.text.dim == 4096
    assert [s.sampler.steps for s in paper.stages] == [256] + [128] * 6
    assert {s.sampler.name for s in paper.stages} == {"ancestral"}
    # Oscillating guidance only on the base and the first two SR models (sec. 2.6.2); 15/1 in
    # Saharia's convention is 14/0 in eq. 5's.
    modes = [s.guidance.mode for s in paper.stages]
    assert modes == ["oscillating"] * 3 + ["constant"] * 4
    assert (paper.stages[0].guidance.w_high, paper.stages[0].guidance.w_low) == (14.0, 0.0)
    # Base: temporal attention after each spatial attention (Video U-Net); SR: temporal convolution;
    # top stage fully convolutional on crops.
    base_levels = paper.stages[0].unet.levels
    assert {lvl.temporal for lvl in base_levels} <= {"attention", "none"}
    assert all(lvl.temporal == "attention" for lvl in base_levels if lvl.spatial_attention)
    assert all(lvl.temporal == "conv" for s in paper.stages[1:] for lvl in s.unet.levels)
    assert [s.unet.is_fully_convolutional for s in paper.stages] == [False] * 4 + [True] * 3
    assert paper.stages[-1].train_crop == (192, 320)


def test_demo_preset_follows_the_paper_pattern() -> None:
    demo = get_cascade_preset("demo")
    assert demo.text_encoder == "embedded" and demo.stages[0].unet.text.dim == 384
    assert [s.kind for s in demo.stages] == ["base", "tsr", "ssr", "tsr", "ssr"]
    assert demo.output_shape == (32, 48, 80) and demo.fps == 8.0
    assert demo.stages[0].shape == (8, 12, 20) and demo.stages[0].fps == 2.0
    assert demo.stages[-1].unet.is_fully_convolutional and demo.stages[-1].train_crop == (24, 40)
    assert not any(s.use_images for s in demo.stages if s.kind == "tsr")
    assert [s.guidance.mode for s in demo.stages] == ["oscillating"] * 3 + ["constant"] * 2
    # SR stages start from their noised input (SDEdit), temporal ones from interpolated frames
    assert [s.sampler.t_start for s in demo.stages] == [1.0, 0.3, 0.3, 0.1, 0.1]
    assert [s.sampler.start_from for s in demo.stages[1:]] == ["interpolated", "upsampled"] * 2


def test_tiny_preset_shapes() -> None:
    tiny = tiny_cascade()
    assert [s.shape for s in tiny.stages] == [(4, 8, 8), (8, 8, 8), (8, 16, 16)]
    assert [s.fps for s in tiny.stages] == [2.0, 4.0, 4.0]
    assert tiny.stages[1].temporal_factor == 2 and tiny.stages[2].temporal_factor == 1


def _stage(**changes: object) -> StageConfig:
    return tiny_cascade().stages[1].replace(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "xsr"}, "allowed: base, tsr, ssr"),
        ({"temporal_upsample": "interp"}, "allowed: repeat, blank"),
        ({"frames": 6}, "integer multiple > 1 of cond_frames"),
        ({"cond_height": 4, "cond_width": 4}, "a tsr stage keeps H x W"),
        ({"use_images": True}, "base and ssr stages only"),
        ({"train_crop": (16, 8)}, "must fit the output"),
        ({"height": 9}, "divisible by 2"),
        ({"fps": 0.0}, "positive number"),
        ({"cond_frames": None}, "needs cond_frames"),
        ({"name": "a/b"}, "folder name"),
    ],
)
def test_stage_validation_names_the_problem(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _stage(**changes)


def test_ssr_must_keep_frames_and_enlarge() -> None:
    ssr = tiny_cascade().stages[2]
    with pytest.raises(ValueError, match="an ssr stage keeps T"):
        ssr.replace(cond_frames=4)
    with pytest.raises(ValueError, match="must enlarge"):
        ssr.replace(cond_height=16, cond_width=16)
    base = tiny_cascade().stages[0]
    with pytest.raises(ValueError, match="a base stage has no input video"):
        base.replace(cond_frames=4, cond_height=8, cond_width=8)


def test_training_time_range_must_cover_the_sampler_start() -> None:
    """A stage trained on t <= t_max cannot be sampled from above it; a base always starts at t = 1."""
    ssr = tiny_cascade().stage("ssr")
    short = ssr.replace(diffusion=ssr.diffusion.replace(t_max=0.4), sampler=ssr.sampler.replace(t_start=0.3))
    assert short.diffusion.t_max == 0.4
    with pytest.raises(ValueError, match=r"t_start=1.0 exceeds diffusion.t_max=0.4"):
        short.replace(sampler=short.sampler.replace(t_start=1.0))
    base = tiny_cascade().stages[0]
    with pytest.raises(ValueError, match="a base stage is sampled from pure noise"):
        base.replace(diffusion=base.diffusion.replace(t_max=0.5))
    # what training draws is not the network: a checkpoint may continue under another t_max
    assert short.trained_network() == ssr.trained_network()
    assert short.architecture() != ssr.architecture()


def test_cascade_validates_the_chain_and_names_the_stage() -> None:
    tiny = tiny_cascade()
    base, tsr, ssr = tiny.stages
    with pytest.raises(ValueError, match=r"stage 'ssr': input shape \(8, 8, 8\).*'base' output \(4, 8, 8\)"):
        tiny.replace(stages=(base, ssr))
    with pytest.raises(ValueError, match=r"stage 'tsr': fps 5.0 does not follow"):
        tiny.replace(stages=(base, tsr.replace(fps=5.0), ssr.replace(fps=5.0)))
    with pytest.raises(ValueError, match="duplicate stage name"):
        tiny.replace(stages=(base, tsr, ssr.replace(name="tsr")))
    with pytest.raises(ValueError, match="first stage must be a base"):
        tiny.replace(stages=(tsr, ssr))
    with pytest.raises(KeyError, match="stages: base, tsr, ssr"):
        tiny.stage("ssr9")
    assert tiny.stage("tsr") is tsr and tiny.index("ssr") == 2


def test_architecture_excludes_only_sampling_fields() -> None:
    stage = tiny_cascade().stages[1]
    arch = stage.architecture()
    assert not set(SAMPLING_FIELDS) & set(arch)
    assert set(arch) | set(SAMPLING_FIELDS) == set(stage.to_dict())
    changed = stage.replace(aug_logsnr=math.log(3.0), sampler=stage.sampler.replace(steps=7))
    assert changed.architecture() == arch
