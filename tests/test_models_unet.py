"""Properties of the space-time video U-Net (paper sec. 2.3, 2.5, 2.6, Figure 7) on tiny networks."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from imagen_video.models import LevelConfig, TextConfig, UNetConfig, VideoUNet, unet_config
from imagen_video.models.attention import TemporalAttention
from imagen_video.models.layers import TemporalConv, logsnr_to_unit, sinusoidal_embedding
from imagen_video.models.presets import TINY_VARIANTS, tiny_unet

TEXT_DIM = 32


def make_inputs(config: UNetConfig, b: int, t: int, h: int, w: int, seed: int = 0, tokens: int = 6) -> dict:
    """Random contract-1 inputs for ``config`` (keyword arguments of VideoUNet.forward)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, tokens, dtype=torch.bool)
    mask[0, tokens // 2 :] = False  # sample 0 has padding
    inputs = {
        "z_t": torch.randn(b, config.in_channels, t, h, w, generator=g),
        "logsnr": torch.randn(b, generator=g) * 4,
        "text_tokens": torch.randn(b, tokens, config.text.dim, generator=g),
        "text_mask": mask,
    }
    if config.is_super_resolution:
        inputs["cond_video"] = torch.randn(b, config.cond_channels, t, h, w, generator=g)
        inputs["aug_logsnr"] = torch.randn(b, generator=g)
    return inputs


def build(config: UNetConfig, seed: int = 0) -> VideoUNet:
    return VideoUNet(config, generator=torch.Generator().manual_seed(seed)).eval()


def perturb_temporal(net: VideoUNet, seed: int = 1) -> None:
    """Give the zero-initialised temporal layers random weights so they actually mix frames."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, TemporalAttention):
                m.out.weight.copy_(torch.randn(m.out.weight.shape, generator=g) * 0.3)
            elif isinstance(m, TemporalConv):
                m.conv.weight.copy_(torch.randn(m.conv.weight.shape, generator=g) * 0.3)


@pytest.mark.parametrize("variant", TINY_VARIANTS)
@pytest.mark.parametrize("thw", [(5, 12, 20), (7, 24, 40), (1, 8, 8)])
def test_output_shape_every_variant(variant: str, thw: tuple[int, int, int]) -> None:
    config = tiny_unet(variant)
    net = build(config)
    inputs = make_inputs(config, 2, *thw)
    with torch.no_grad():
        out = net(**inputs)
    assert out.shape == (2, config.out_channels, *thw)
    assert torch.isfinite(out).all()


def test_fully_convolutional_top_stage_any_size() -> None:
    config = tiny_unet("top")
    assert config.is_fully_convolutional
    net = build(config)
    with torch.no_grad():
        out = net(**make_inputs(config, 1, 3, 13, 21))  # odd sizes: ceil on the way down, skip size up
    assert out.shape == (1, 3, 3, 13, 21)


@pytest.mark.parametrize("variant", ["base", "tsr"])
def test_identity_init_of_temporal_layers(variant: str) -> None:
    """A fresh model gives each frame of a video the output of that frame run alone (T = 1)."""
    config = tiny_unet(variant)
    net = build(config)
    inputs = make_inputs(config, 2, 5, 12, 20)
    with torch.no_grad():
        video_out = net(**inputs)
        for f in range(5):
            single = {k: (v[:, :, f : f + 1] if k in ("z_t", "cond_video") else v) for k, v in inputs.items()}
            torch.testing.assert_close(net(**single)[:, :, 0], video_out[:, :, f], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["base", "tsr"])
def test_image_mode_frames_are_independent(variant: str) -> None:
    """Perturbing one frame of an image sequence leaves the other frames' outputs unchanged (sec. 2.6)."""
    config = tiny_unet(variant)
    net = build(config)
    perturb_temporal(net)
    inputs = make_inputs(config, 2, 5, 12, 20)
    perturbed = copy.deepcopy(inputs)
    perturbed["z_t"][:, :, 2] += torch.randn(perturbed["z_t"][:, :, 2].shape)
    image_mode = torch.tensor([True, False])
    with torch.no_grad():
        before = net(**inputs, image_mode=image_mode)
        after = net(**perturbed, image_mode=image_mode)
    others = [0, 1, 3, 4]
    # Sample 0 is an image sequence: only frame 2 changes.
    torch.testing.assert_close(after[0][:, others], before[0][:, others], atol=1e-5, rtol=1e-5)
    assert (after[0][:, 2] - before[0][:, 2]).abs().max() > 1e-2
    # Sample 1 is a video: the perturbation reaches the other frames through the temporal layers.
    assert (after[1][:, others] - before[1][:, others]).abs().max() > 1e-3


def test_image_mode_matches_frames_run_alone_with_trained_temporal_layers() -> None:
    config = tiny_unet("base")
    net = build(config)
    perturb_temporal(net)
    inputs = make_inputs(config, 1, 4, 8, 8)
    with torch.no_grad():
        packed = net(**inputs, image_mode=torch.tensor([True]))
        for f in range(4):
            alone = net(**{**inputs, "z_t": inputs["z_t"][:, :, f : f + 1]})
            torch.testing.assert_close(packed[:, :, f], alone[:, :, 0], atol=1e-5, rtol=1e-5)


def test_temporal_attention_knows_frame_order() -> None:
    """Rotary positions: reversing the frames does not just reverse the output (no time symmetry)."""
    config = tiny_unet("base")
    net = build(config)
    perturb_temporal(net)
    inputs = make_inputs(config, 1, 5, 8, 8)
    with torch.no_grad():
        out = net(**inputs)
        rev = net(**{**inputs, "z_t": inputs["z_t"].flip(2)})
    assert (rev.flip(2) - out).abs().max() > 1e-3


def test_gradient_checkpointing_same_gradients() -> None:
    config = tiny_unet("base").replace(dropout=0.1)
    plain = VideoUNet(config, generator=torch.Generator().manual_seed(0)).train()
    ckpt = VideoUNet(config.replace(gradient_checkpointing=True)).train()
    ckpt.load_state_dict(plain.state_dict())
    perturb_temporal(plain)
    perturb_temporal(ckpt)
    inputs = make_inputs(config, 2, 3, 8, 8)
    grads = []
    for net in (plain, ckpt):
        torch.manual_seed(123)  # same dropout masks; checkpointing replays the RNG state
        net(**inputs).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)


def test_every_parameter_gets_a_gradient_in_image_mode() -> None:
    """The image-mode bypass is a multiplicative mask: no parameter drops out of the graph."""
    config = tiny_unet("tsr")
    net = VideoUNet(config).train()
    net(**make_inputs(config, 2, 3, 8, 8), image_mode=torch.tensor([True, True])).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == []


def test_wrong_shapes_name_the_expected_shape() -> None:
    config = tiny_unet("ssr")
    net = build(config)
    inputs = make_inputs(config, 2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"z_t must have shape \(B, 3, T, H, W\), got \(2, 4, 3, 8, 8\)"):
        net(**{**inputs, "z_t": torch.randn(2, 4, 3, 8, 8)})
    with pytest.raises(ValueError, match=r"z_t must have shape \(B, 3, T, H, W\)"):
        net(**{**inputs, "z_t": torch.randn(2, 3, 8, 8)})
    with pytest.raises(ValueError, match=r"cond_video must .*\(2, 3, 3, 8, 8\), got \(2, 3, 3, 4, 4\)"):
        net(**{**inputs, "cond_video": torch.randn(2, 3, 3, 4, 4)})
    with pytest.raises(ValueError, match=rf"text_tokens must have shape \(B=2, L, {TEXT_DIM}\)"):
        net(**{**inputs, "text_tokens": torch.randn(2, 6, 7)})
    with pytest.raises(ValueError, match=r"logsnr must have shape \(B,\)"):
        net(**{**inputs, "logsnr": torch.zeros(3)})
    with pytest.raises(ValueError, match="needs cond_video and aug_logsnr"):
        net(**{k: v for k, v in inputs.items() if k != "cond_video"})
    with pytest.raises(ValueError, match="text_mask must have dtype torch.bool"):
        net(**{**inputs, "text_mask": inputs["text_mask"].float()})
    with pytest.raises(ValueError, match="at least one True"):
        net(**{**inputs, "text_mask": torch.zeros(2, 6, dtype=torch.bool)})
    base = build(tiny_unet("base"))
    with pytest.raises(ValueError, match="cond_channels=0"):
        base(**inputs)
    with pytest.raises(ValueError, match="use_guidance_embedding=False"):
        base(**make_inputs(base.config, 1, 1, 8, 8), guidance_w=torch.ones(1))


def test_drop_text_uses_the_learned_null_tokens() -> None:
    config = tiny_unet("base")
    net = build(config)
    inputs = make_inputs(config, 2, 3, 8, 8)
    drop = torch.tensor([True, True])
    other_text = {"text_tokens": torch.randn(2, 9, TEXT_DIM), "text_mask": torch.ones(2, 9, dtype=torch.bool)}
    with torch.no_grad():
        cond = net(**inputs)
        uncond = net(**inputs, drop_text=drop)
        uncond_other = net(**{**inputs, **other_text}, drop_text=drop)
        mixed = net(**inputs, drop_text=torch.tensor([False, True]))
        changed_null = copy.deepcopy(net)
        changed_null.null_tokens.add_(torch.randn(changed_null.null_tokens.shape))
        uncond_changed = changed_null(**inputs, drop_text=drop)
    assert (uncond - cond).abs().max() > 1e-3
    torch.testing.assert_close(uncond_other, uncond, atol=1e-6, rtol=1e-6)  # text ignored when dropped
    torch.testing.assert_close(mixed[0], cond[0], atol=1e-5, rtol=1e-5)  # per-sample choice
    torch.testing.assert_close(mixed[1], uncond[1], atol=1e-5, rtol=1e-5)
    assert (uncond_changed - uncond).abs().max() > 1e-4  # the null tokens are what is used


def test_padded_text_tokens_are_ignored() -> None:
    config = tiny_unet("base")
    net = build(config)
    inputs = make_inputs(config, 2, 3, 8, 8)
    noisy = copy.deepcopy(inputs)
    noisy["text_tokens"][0, 3:] = torch.randn(3, TEXT_DIM) * 10  # sample 0 positions 3.. are padding
    with torch.no_grad():
        torch.testing.assert_close(net(**noisy), net(**inputs), atol=1e-6, rtol=1e-6)


def test_text_reaches_fully_convolutional_stage_through_pooled_embedding() -> None:
    config = tiny_unet("top")
    assert not any(level.cross_attention for level in config.levels)
    net = build(config)
    inputs = make_inputs(config, 2, 2, 8, 8)
    with torch.no_grad():
        a = net(**inputs)
        b = net(**{**inputs, "text_tokens": torch.randn(inputs["text_tokens"].shape)})
    assert (a - b).abs().max() > 1e-4


def test_sr_stage_uses_cond_video_and_aug_logsnr() -> None:
    config = tiny_unet("ssr")
    net = build(config)
    inputs = make_inputs(config, 2, 2, 8, 8)
    with torch.no_grad():
        out = net(**inputs)
        other_cond = net(**{**inputs, "cond_video": torch.zeros_like(inputs["cond_video"])})
        other_aug = net(**{**inputs, "aug_logsnr": inputs["aug_logsnr"] + 3.0})
    assert (out - other_cond).abs().max() > 1e-3
    assert (out - other_aug).abs().max() > 1e-4


def test_guidance_embedding_student_starts_equal_to_teacher() -> None:
    teacher_config = tiny_unet("base")
    teacher = build(teacher_config)
    student = VideoUNet(teacher_config.replace(use_guidance_embedding=True)).eval()
    result = student.load_state_dict(teacher.state_dict(), strict=False)
    assert result.unexpected_keys == [] and all(k.startswith("guidance_embed.") for k in result.missing_keys)
    inputs = make_inputs(teacher_config, 2, 3, 8, 8)
    with torch.no_grad():
        expected = teacher(**inputs)
        for w in (torch.tensor([0.0, 7.5]), torch.tensor([15.0, 1.0])):
            torch.testing.assert_close(student(**inputs, guidance_w=w), expected, atol=1e-6, rtol=1e-6)
        last = student.guidance_embed.mlp[2]
        last.weight.normal_()
        a = student(**inputs, guidance_w=torch.tensor([0.0, 0.0]))
        b = student(**inputs, guidance_w=torch.tensor([8.0, 8.0]))
    assert (a - b).abs().max() > 1e-4  # w is wired into the network once the layer is trained
    with pytest.raises(ValueError, match="pass guidance_w"):
        student(**inputs)


def test_channels_last_layout_gives_the_same_output() -> None:
    config = tiny_unet("ssr")
    a = build(config)
    b = VideoUNet(config.replace(channels_last=False)).eval()
    b.load_state_dict(a.state_dict())
    inputs = make_inputs(config, 2, 3, 12, 20)
    with torch.no_grad():
        torch.testing.assert_close(b(**inputs), a(**inputs), atol=1e-5, rtol=1e-5)


def test_layer_norm_variant_runs_and_keeps_identity_init() -> None:
    config = tiny_unet("base").replace(norm="layer")
    net = build(config)
    inputs = make_inputs(config, 1, 3, 8, 8)
    with torch.no_grad():
        video = net(**inputs)
        single = net(**{**inputs, "z_t": inputs["z_t"][:, :, 1:2]})
    torch.testing.assert_close(single[:, :, 0], video[:, :, 1], atol=1e-5, rtol=1e-5)


def test_generator_makes_initialisation_reproducible() -> None:
    config = tiny_unet("base")
    state = torch.get_rng_state()
    a = VideoUNet(config, generator=torch.Generator().manual_seed(7)).state_dict()
    b = VideoUNet(config, generator=torch.Generator().manual_seed(7)).state_dict()
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_logsnr_map_and_sinusoidal_features() -> None:
    logsnr = torch.tensor([-math.inf, -20.0, 0.0, 20.0, math.inf])
    u = logsnr_to_unit(logsnr)
    torch.testing.assert_close(u[2], torch.tensor(0.5))  # 2/pi * atan(1)
    assert u[0] == 1.0 and u[-1] == 0.0 and torch.all(u[:-1] > u[1:])
    emb = sinusoidal_embedding(torch.tensor([0.0, 1.0]), 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    torch.testing.assert_close(emb[1, 0], torch.cos(torch.tensor(1.0)))
    torch.testing.assert_close(emb[1, 4], torch.sin(torch.tensor(1.0)))


def test_config_json_round_trip_and_validation() -> None:
    config = unet_config(
        (16, 32),
        attn_levels=(1,),
        temporal=("conv", "attention"),
        cond_channels=3,
        head_dim=16,
        norm_groups=8,
        text=TextConfig(dim=24, null_tokens=2),
    )
    assert UNetConfig.from_json(config.to_json()) == config
    assert config.levels[1] == LevelConfig(
        32, 2, spatial_attention=True, cross_attention=True, temporal="attention"
    )
    with pytest.raises(ValueError, match=r"one of \('attention', 'conv', 'none'\)"):
        LevelConfig(16, temporal="lstm")
    with pytest.raises(ValueError, match=r"one of \('group', 'layer'\)"):
        tiny_unet("base").replace(norm="batch")
    with pytest.raises(ValueError, match="divisible by head_dim=64"):
        unet_config((16, 32), attn_levels=(1,), norm_groups=8)
    with pytest.raises(ValueError, match=r"out of range; allowed level indices 0..1"):
        unet_config((16, 32), attn_levels=(2,))


def _saved_activation_bytes(net: VideoUNet, inputs: dict) -> int:
    """Bytes of the distinct tensors autograd saves for the backward pass of one forward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(**inputs)
    return sum(n for ptr, n in storages.items() if ptr not in params)


def test_sr_activation_memory_is_linear_in_frames_and_pixels() -> None:
    """Temporal convolutions and no spatial attention: training memory grows linearly with T*H*W."""
    config = tiny_unet("top")
    net = VideoUNet(config).train()
    small = _saved_activation_bytes(net, make_inputs(config, 1, 2, 16, 16))
    more_frames = _saved_activation_bytes(net, make_inputs(config, 1, 4, 16, 16))
    more_pixels = _saved_activation_bytes(net, make_inputs(config, 1, 2, 32, 32))
    assert more_frames / small == pytest.approx(2.0, rel=0.03)
    assert more_pixels / small == pytest.approx(4.0, rel=0.03)


def test_temporal_conv_loads_a_conv3d_kernel() -> None:
    """Weights of the equivalent Conv3d formulation, (C, C, k, 1, 1), load into the (k, 1) Conv2d."""
    config = tiny_unet("tsr")
    net = build(config)
    perturb_temporal(net)
    state = {
        k: (v[..., None] if k.endswith("temporal.conv.weight") else v) for k, v in net.state_dict().items()
    }
    assert any(v.dim() == 5 for v in state.values())
    other = VideoUNet(config).eval()
    other.load_state_dict(state)
    inputs = make_inputs(config, 1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(other(**inputs), net(**inputs))
