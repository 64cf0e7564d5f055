"""The frame-conditioned base (method "finetuned" of conditional generation): known-frame masks drawn
in training, the widened input convolution, the network's known-frame inputs, the cascade directory's
``base_frames/`` folder and sampling with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagen_video.cascade import Cascade
from imagen_video.cascade.config import CascadeConfig, StageConfig
from imagen_video.cascade.frame_base import FRAME_BASE_DIR, KnownFrameNetwork
from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cascade.stage_io import save_stage
from imagen_video.models import VideoUNet
from imagen_video.train.known_frames import draw_known_masks, widen_for_known_frames
from imagen_video.train.step import stage_loss
from test_cascade_helpers import HashTextEncoder, single_thread

PROMPT = "a red circle moving right"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def _seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def _frame_stage(config: CascadeConfig) -> StageConfig:
    base = config.stages[0]
    return base.replace(unet=base.unet.replace(frame_conditioning=True))


def _inputs(net: VideoUNet, batch: int = 2) -> tuple[torch.Tensor, ...]:
    cfg = net.config
    z = torch.randn(batch, cfg.in_channels, 4, 8, 8, generator=_seed(1))
    tokens = torch.randn(batch, 5, cfg.text.dim, generator=_seed(2))
    return z, torch.tensor([0.5, -2.0][:batch]), tokens, torch.ones(batch, 5, dtype=torch.bool)


def test_masks_follow_the_five_patterns_and_skip_images() -> None:
    masks = draw_known_masks(4000, 8, _seed(0))
    assert masks.shape == (4000, 8) and masks.dtype == torch.bool
    counts = masks.sum(1)
    none = counts == 0
    first = masks[:, 0] & (counts == 1)
    first_last = masks[:, 0] & masks[:, -1] & (counts == 2)
    pos = torch.arange(8)[None]
    prefix = (masks == (pos < counts[:, None])).all(1)
    suffix = (masks == (pos >= 8 - counts[:, None])).all(1)
    assert bool((none | first_last | prefix | suffix).all())  # every mask is one of the patterns
    for share in (none.float().mean(), first_last.float().mean()):
        assert 0.17 < float(share) < 0.23  # 1/5 each
    assert 0.2 < float(first.float().mean()) < 0.3  # "first", and prefixes of one frame
    assert int(counts.max()) == 7  # k < T: a prefix or suffix never holds every frame
    images = torch.tensor([True, False] * 2000)
    assert not bool(draw_known_masks(4000, 8, _seed(0), image_mode=images)[images].any())
    assert torch.equal(draw_known_masks(16, 8, _seed(5)), draw_known_masks(16, 8, _seed(5)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        draw_known_masks(2, 1, _seed(0))


def test_the_widened_network_starts_as_the_base_whatever_the_known_frames() -> None:
    stage = tiny_cascade().stages[0]
    base = VideoUNet(stage.unet, generator=_seed(0)).eval()
    widened = VideoUNet(_frame_stage(tiny_cascade()).unet).eval()
    widened.load_state_dict(widen_for_known_frames(base.state_dict(), stage.unet.in_channels))
    z, logsnr, tokens, mask = _inputs(base)
    known = torch.rand_like(z) * 2 - 1
    known_mask = torch.tensor([[True, False, False, True], [True, True, False, False]])
    with torch.no_grad():
        expected = base(z, logsnr, tokens, mask)
        torch.testing.assert_close(widened(z, logsnr, tokens, mask), expected)
        out = widened(z, logsnr, tokens, mask, known_video=known, known_mask=known_mask)
    torch.testing.assert_close(out, expected)


def test_known_frame_inputs_are_checked_and_none_means_no_frame_known() -> None:
    net = VideoUNet(_frame_stage(tiny_cascade()).unet, generator=_seed(0)).eval()
    z, logsnr, tokens, mask = _inputs(net)
    with torch.no_grad():
        none = net(z, logsnr, tokens, mask)
        zeros = net(
            z, logsnr, tokens, mask, known_video=torch.ones_like(z), known_mask=torch.zeros(2, 4).bool()
        )
        given = net(
            z, logsnr, tokens, mask, known_video=torch.ones_like(z), known_mask=torch.ones(2, 4).bool()
        )
    torch.testing.assert_close(none, zeros)
    assert float((given - none).abs().max()) > 1e-4  # the known frames reach the output
    with pytest.raises(ValueError, match="together"):
        net(z, logsnr, tokens, mask, known_video=z)
    with pytest.raises(ValueError, match="known_mask must have shape"):
        net(z, logsnr, tokens, mask, known_video=z, known_mask=torch.ones(2, 3).bool())
    plain = VideoUNet(tiny_cascade().stages[0].unet)
    with pytest.raises(ValueError, match="without frame_conditioning"):
        plain(z, logsnr, tokens, mask, known_video=z, known_mask=torch.ones(2, 4).bool())


def test_training_feeds_the_clean_known_frames_and_trains_their_channels() -> None:
    stage = _frame_stage(tiny_cascade())
    net = VideoUNet(stage.unet, generator=_seed(0))
    from imagen_video.text.base import TextEmbeddings

    video = torch.rand(6, 3, 4, 8, 8, generator=_seed(1)) * 2 - 1
    text = TextEmbeddings(
        torch.randn(6, 5, stage.unet.text.dim), torch.ones(6, 5, dtype=torch.bool), [False] * 6
    )
    loss = stage_loss(net, {"video": video}, text, stage, generator=_seed(2))
    assert loss.shape == (6,) and bool(torch.isfinite(loss).all())
    loss.mean().backward()
    grad = net.in_conv.weight.grad[:, stage.unet.in_channels :]  # (C0, C + 1, k, k): known frames, mask
    assert float(grad.abs().sum()) > 0
    again = stage_loss(net, {"video": video}, text, stage, generator=_seed(2))
    torch.testing.assert_close(again, loss.detach())  # the masks come from the generator


def _cascade_with_frame_base() -> Cascade:
    config = tiny_cascade()
    frame_stage = _frame_stage(config)
    network = VideoUNet(frame_stage.unet, generator=_seed(7))
    cascade = Cascade.from_config(config, generator=_seed(0), text_encoder=HashTextEncoder())
    cascade.frame_base = (frame_stage, network.eval())
    return cascade


@pytest.mark.parametrize("last", [False, True])
def test_finetuned_method_keeps_the_known_frames(last: bool) -> None:
    cascade = _cascade_with_frame_base()
    first, final = torch.rand(3, 16, 16, generator=_seed(1)), torch.rand(3, 16, 16, generator=_seed(2))
    out = cascade.animate(
        first,
        PROMPT,
        last_frame=final if last else None,
        method="finetuned",
        generator=_seed(3),
        progress=False,
    )
    torch.testing.assert_close(out.video[0, :, 0], first, atol=1e-6, rtol=0)
    if last:
        torch.testing.assert_close(out.video[0, :, -1], final, atol=1e-6, rtol=0)
    assert set(out.timings) == {"base", "tsr", "ssr"}
    other = cascade.animate(first, PROMPT, method="reconstruction", generator=_seed(3), progress=False)
    assert float((other.video - out.video).abs().max()) > 1e-3  # another base network sampled


def test_the_frame_base_sees_the_known_frames_at_the_base_shape() -> None:
    cascade = _cascade_with_frame_base()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    network = cascade.frame_base[1]
    original = network.forward

    def spy(z_t, *args, known_video=None, known_mask=None, **kwargs):
        seen.append((known_video, known_mask))
        return original(z_t, *args, known_video=known_video, known_mask=known_mask, **kwargs)

    network.forward = spy  # type: ignore[method-assign]
    clip = torch.rand(3, 8, 16, 16, generator=_seed(4))
    cascade.extend(
        clip, PROMPT, frames=4, method="finetuned", base_steps=None, generator=_seed(5), progress=False
    )
    video, mask = seen[0]
    assert video.shape[2:] == (4, 8, 8) and mask.shape == (video.shape[0], 4)
    assert mask[0].tolist() == [True, True, False, False]  # 3 known top frames: the newest is base frame 1
    assert len(seen) == cascade.frame_base[0].sampler.steps  # one batched (cond + uncond) forward a step


def test_extension_defaults_to_reconstruction_guidance_even_with_a_frame_base() -> None:
    with_base = _cascade_with_frame_base()
    clip = torch.rand(3, 8, 16, 16, generator=_seed(4))
    for backward in (False, True):
        options = {"frames": 4, "backward": backward, "progress": False}
        default = with_base.extend(clip, PROMPT, generator=_seed(5), **options)
        chosen = with_base.extend(clip, PROMPT, method="reconstruction", generator=_seed(5), **options)
        torch.testing.assert_close(default.video, chosen.video)


def test_without_a_frame_base_the_method_is_refused() -> None:
    cascade = Cascade.from_config(tiny_cascade(), generator=_seed(0), text_encoder=HashTextEncoder())
    with pytest.raises(ValueError, match="no frame-conditioned base"):
        cascade.animate(torch.rand(3, 16, 16), PROMPT, method="finetuned", progress=False)


def test_the_frame_base_travels_with_the_cascade_directory(tmp_path: Path) -> None:
    from imagen_video.cascade.runner import CascadeLoadError

    cascade = _cascade_with_frame_base()
    cascade.save_pretrained(tmp_path / "c")
    loaded = Cascade.from_pretrained(tmp_path / "c", device="cpu", text_encoder=HashTextEncoder())
    assert loaded.frame_base is not None and loaded.frame_base[0] == cascade.frame_base[0]
    for name, tensor in cascade.frame_base[1].state_dict().items():
        assert torch.equal(loaded.frame_base[1].state_dict()[name], tensor), name
    plain = tiny_cascade().stages[0]
    save_stage(tmp_path / "c" / FRAME_BASE_DIR, plain, VideoUNet(plain.unet))
    with pytest.raises(CascadeLoadError, match="frame_conditioning"):
        Cascade.from_pretrained(tmp_path / "c", device="cpu")


def test_bound_network_repeats_the_known_frames_for_guidance() -> None:
    net = VideoUNet(_frame_stage(tiny_cascade()).unet, generator=_seed(0)).eval()
    z, logsnr, tokens, mask = _inputs(net, batch=1)
    known = torch.rand_like(z)
    bound = KnownFrameNetwork(net, known, torch.tensor([True, False, False, False]))
    doubled = torch.cat([z, z])
    with torch.no_grad():
        out = bound(doubled, logsnr.repeat(2), tokens.repeat(2, 1, 1), mask.repeat(2, 1))
        single = net(
            z, logsnr, tokens, mask, known_video=known, known_mask=torch.tensor([[True, False, False, False]])
        )
    torch.testing.assert_close(out[:1], single)
    torch.testing.assert_close(out[1:], single)


def test_assemble_copies_the_frame_base_and_reassembles_around_it(tmp_path: Path) -> None:
    from imagen_video.cascade.directory import assemble_cascade
    from imagen_video.cascade.stage_io import StageLoadError

    cascade = _cascade_with_frame_base()
    folders = []
    for stage in cascade.config.stages:
        folders.append(save_stage(tmp_path / "runs" / stage.name, stage, cascade.models[stage.name]))
    frame_folder = save_stage(tmp_path / "runs" / "frames", *cascade.frame_base)
    options = {"name": "t", "text_encoder": "embedded", "text_max_length": 8}
    with pytest.raises(StageLoadError, match="frame_conditioning"):
        assemble_cascade(tmp_path / "bad", stage_dirs=folders, frame_base=folders[0], **options)
    assemble_cascade(tmp_path / "c", stage_dirs=folders, frame_base=frame_folder, **options)
    assert (tmp_path / "c" / FRAME_BASE_DIR / "model.safetensors").is_file()
    again = assemble_cascade(tmp_path / "c", **options)  # the stage folders already there
    assert again.stage_names == cascade.config.stage_names
    loaded = Cascade.from_pretrained(tmp_path / "c", device="cpu", text_encoder=HashTextEncoder())
    assert loaded.frame_base is not None


@pytest.mark.parametrize("name", ["demo", "demo-distilled"])
def test_the_shipped_cascades_carry_a_frame_base(name: str) -> None:
    cascade = Cascade.from_pretrained(name, device="cpu")
    assert cascade.frame_base is not None
    config, network = cascade.frame_base
    base = cascade.config.stages[0]
    assert config.unet.frame_conditioning and (config.frames, config.height, config.width) == (
        base.frames,
        base.height,
        base.width,
    )
    assert network.config.input_channels == 2 * config.unet.in_channels + 1


def test_the_shipped_frame_base_animates_an_image() -> None:
    cascade = Cascade.from_pretrained("demo-distilled", device="cpu")
    image = torch.zeros(3, 48, 80)
    image[0, 20:28, 10:18] = 1.0  # a red square on black, as the world renders one
    out = cascade.animate(
        image, "a red square moving right", method="finetuned", generator=_seed(0), progress=False
    )
    assert out.video.shape == (1, 3, 32, 48, 80)
    torch.testing.assert_close(out.video[0, :, 0], image, atol=1e-6, rtol=0)


def test_animate_defaults_to_the_frame_base_and_extend_to_reconstruction() -> None:
    from imagen_video.cascade.conditional import DEFAULT_METHOD, animate_method

    cascade = _cascade_with_frame_base()
    plain = Cascade.from_config(tiny_cascade(), generator=_seed(0), text_encoder=HashTextEncoder())
    assert (
        animate_method(cascade) == "finetuned" and animate_method(plain) == DEFAULT_METHOD == "reconstruction"
    )
    image = torch.rand(3, 16, 16, generator=_seed(1))
    auto = cascade.animate(image, PROMPT, method=None, generator=_seed(3), progress=False).video
    chosen = cascade.animate(image, PROMPT, method="finetuned", generator=_seed(3), progress=False).video
    torch.testing.assert_close(auto, chosen)
    clip = torch.rand(3, 8, 16, 16, generator=_seed(4))
    auto = cascade.extend(clip, PROMPT, frames=4, method=None, generator=_seed(5), progress=False).video
    chosen = cascade.extend(
        clip, PROMPT, frames=4, method="reconstruction", generator=_seed(5), progress=False
    ).video
    torch.testing.assert_close(auto, chosen)
