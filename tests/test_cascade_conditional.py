"""Cascade.animate / Cascade.extend on a tiny random cascade: the known frames survive the cascade,
extension rounds and placement, input conversion (size, grayscale, alpha) and bad input."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imagen_video.cascade import Cascade, CascadeStep, conditional
from imagen_video.cascade.conditional import (
    EXTEND_BASE_STEPS,
    EXTEND_RECONSTRUCTION_WEIGHT,
    anchors,
    capped_guidance,
    extension_context,
    read_image,
    to_rgb,
)
from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cascade.sampling import StageOverride
from imagen_video.diffusion.config import constant_guidance, oscillating_guidance
from test_cascade_helpers import HashTextEncoder, single_thread

PROMPT = "a red circle moving right"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def _seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


@pytest.fixture(scope="module")
def tiny() -> Cascade:
    """Top stage: 8 frames of 16x16 at 4 fps; 2 top frames per base frame."""
    return Cascade.from_config(tiny_cascade(), generator=_seed(0), text_encoder=HashTextEncoder())


def _image(seed: int, height: int = 16, width: int = 16) -> torch.Tensor:
    return torch.rand(3, height, width, generator=_seed(seed))


@pytest.mark.parametrize("method", ["replacement", "reconstruction"])
def test_animate_keeps_first_and_last_frame(tiny: Cascade, method: str) -> None:
    first, last = _image(1), _image(2)
    out = tiny.animate(first, PROMPT, last_frame=last, method=method, generator=_seed(3), progress=False)
    assert out.video.shape == (1, 3, 8, 16, 16) and out.fps == 4.0 and out.prompts == [PROMPT]
    torch.testing.assert_close(out.video[0, :, 0], first, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.video[0, :, -1], last, atol=1e-6, rtol=0)
    assert set(out.timings) == {"base", "tsr", "ssr"}


def test_without_keep_input_the_model_redraws_the_known_frame(tiny: Cascade) -> None:
    image = _image(1)
    kept = tiny.animate(image, PROMPT, generator=_seed(3), progress=False).video
    free = tiny.animate(image, PROMPT, keep_input=False, generator=_seed(3), progress=False).video
    torch.testing.assert_close(kept[0, :, 0], image, atol=1e-6, rtol=0)
    assert float((free[0, :, 0] - image).abs().max()) > 1e-3


def test_animate_batches_one_prompt_per_image(tiny: Cascade) -> None:
    images = torch.stack([_image(1), _image(2)])
    out = tiny.animate(
        images, ["a red circle moving right", "a blue square"], generator=_seed(0), progress=False
    )
    assert out.video.shape == (2, 3, 8, 16, 16)
    torch.testing.assert_close(out.video[:, :, 0], images, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="got 3 prompts for 2 inputs"):
        tiny.animate(images, ["a", "b", "c"], progress=False)
    with pytest.raises(ValueError, match="prompt 0 is missing or empty"):
        tiny.animate(images, "  ", progress=False)


def test_other_sizes_are_resized_with_one_warning(tiny: Cascade) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tiny.animate(_image(1, 20, 30), PROMPT, generator=_seed(0), progress=False)
    assert [str(w.message) for w in caught] == ["input of 30x20 resized to the cascade's 16x16"]
    assert out.video.shape == (1, 3, 8, 16, 16)


def test_grayscale_and_alpha_inputs_become_rgb() -> None:
    gray = torch.rand(1, 1, 2, 4, 4, generator=_seed(0))
    assert torch.equal(to_rgb(gray), gray.expand(1, 3, 2, 4, 4))
    rgba = torch.rand(1, 4, 2, 4, 4, generator=_seed(1))
    torch.testing.assert_close(to_rgb(rgba), rgba[:, :3] * rgba[:, 3:])
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        to_rgb(torch.zeros(1, 2, 2, 4, 4))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros(3, 16, 16, dtype=torch.uint8), "float tensor in \\[0, 1\\], got torch.uint8"),
        (torch.full((3, 16, 16), 2.0), "must lie in \\[0, 1\\]"),
        (torch.zeros(16, 16), "must have 3 or 4 dimensions"),
    ],
)
def test_animate_rejects_bad_images(tiny: Cascade, image: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny.animate(image, PROMPT, progress=False)


def test_read_image_converts_grayscale_and_composites_alpha_over_black(tmp_path: Path) -> None:
    Image.fromarray(np.full((3, 5), 128, np.uint8), "L").save(tmp_path / "gray.png")
    rgba = np.zeros((3, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 51  # red at 20% opacity
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (3, 3, 5) and torch.allclose(gray, torch.full_like(gray, 128 / 255))
    alpha = read_image(tmp_path / "alpha.png")
    torch.testing.assert_close(alpha[0], torch.full((3, 5), 200 / 255 * 51 / 255))
    assert float(alpha[1:].abs().max()) == 0.0
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        read_image(tmp_path / "bad.png")


@pytest.mark.parametrize(
    ("clip", "new", "expected"),
    [
        (16, 16, (13, 16)),
        (32, 16, (13, 16)),
        (32, 5, (21, 5)),
        (40, 100, (13, 16)),
        (9, 30, (9, 20)),
        (30, 1, (25, 1)),
    ],
)
def test_extension_context_ends_the_known_frames_on_a_base_frame(
    clip: int, new: int, expected: tuple[int, int]
) -> None:
    known, kept = extension_context(clip, new, window=32, base_factor=4)
    assert (known, kept) == expected
    assert (known - 1) % 4 == 0  # the newest known frame is base frame (known - 1) / 4
    assert known + kept - 1 <= 28  # nothing past the window's last base frame is kept


@pytest.mark.parametrize(
    ("clip", "new", "expected"), [(16, 16, (16, 16)), (9, 30, (8, 24)), (30, 1, (28, 1)), (40, 100, (16, 16))]
)
def test_extension_context_backward_starts_the_known_frames_on_a_base_frame(
    clip: int, new: int, expected: tuple[int, int]
) -> None:
    known, kept = extension_context(clip, new, window=32, base_factor=4, backward=True)
    assert (known, kept) == expected
    assert (32 - known) % 4 == 0  # the oldest known frame is a base frame


def test_extension_needs_two_base_frames() -> None:
    with pytest.raises(ValueError, match="the clip has 4 frames; extending needs at least 5"):
        extension_context(4, 4, window=32, base_factor=4)
    with pytest.raises(ValueError, match="the clip has 7 frames; extending needs at least 8"):
        extension_context(7, 4, window=32, base_factor=4, backward=True)
    with pytest.raises(ValueError, match="a base stage of at least two frames"):
        extension_context(16, 4, window=4, base_factor=4)


def _clip(frames: int) -> torch.Tensor:
    return torch.rand(3, frames, 16, 16, generator=_seed(5))


def test_extend_forward_in_rounds_keeps_the_clip_first(tiny: Cascade) -> None:
    steps: list[CascadeStep] = []
    clip = _clip(6)
    out = tiny.extend(clip, PROMPT, frames=5, generator=_seed(0), callback=steps.append, progress=False)
    assert out.video.shape == (1, 3, 11, 16, 16) and out.fps == 4.0
    torch.testing.assert_close(out.video[0, :, :6], clip, atol=1e-6, rtol=0)
    rounds = sum(1 for s in steps if s.stage_index == 0 and s.step == 0)
    assert rounds == 2  # 3 known + 4 new frames of the 8-frame window, then 5 known + 1


def _conditioning(tiny: Cascade, monkeypatch: pytest.MonkeyPatch, **options: object) -> dict:
    """Per stage (T, H, W): the shape of the ``low`` input its conditioning gets in one extension round
    of ``tiny`` (None where the stage is not anchored) and its ``w_r``."""
    seen: dict = {}
    wrapper = conditional.conditioned_denoiser

    def spy(denoise, known, mask, method, **kwargs):  # type: ignore[no-untyped-def]
        low = kwargs.get("low")
        seen[tuple(known.shape[2:])] = (None if low is None else tuple(low.shape), kwargs["weight"])
        return wrapper(denoise, known, mask, method, **kwargs)

    monkeypatch.setattr(conditional, "conditioned_denoiser", spy)
    tiny.extend(_clip(4), PROMPT, frames=4, generator=_seed(0), progress=False, **options)
    return seen


def _inputs_guided_to(tiny: Cascade, monkeypatch: pytest.MonkeyPatch, **options: object) -> dict:
    return {stage: low for stage, (low, _) in _conditioning(tiny, monkeypatch, **options).items()}


def test_extend_anchors_the_sr_stages_to_their_input_with_reconstruction_guidance(
    tiny: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, tsr, ssr = (4, 8, 8), (8, 8, 8), (8, 16, 16)  # each stage's (T, H, W)
    shapes = {base: None, tsr: (1, 3, 4, 8, 8), ssr: (1, 3, 8, 8, 8)}  # its input's shape
    unanchored = dict.fromkeys(shapes)
    assert _inputs_guided_to(tiny, monkeypatch) == shapes
    assert _inputs_guided_to(tiny, monkeypatch, method="replacement") == unanchored
    assert _inputs_guided_to(tiny, monkeypatch, anchor=False) == unanchored
    assert _inputs_guided_to(tiny, monkeypatch, backward=True) == shapes
    assert _inputs_guided_to(tiny, monkeypatch, backward=True, anchor=False) == unanchored
    with pytest.raises(ValueError, match="'replacement' method has none"):
        tiny.extend(_clip(4), PROMPT, frames=4, method="replacement", anchor=True, progress=False)
    assert anchors("reconstruction") and not anchors("finetuned") and not anchors("replacement")


def test_extend_guides_with_its_own_reconstruction_weight_unless_given(
    tiny: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = {w for _, w in _conditioning(tiny, monkeypatch).values()}
    assert weights == {EXTEND_RECONSTRUCTION_WEIGHT} and EXTEND_RECONSTRUCTION_WEIGHT != 2.0
    assert {w for _, w in _conditioning(tiny, monkeypatch, weight=2.0).values()} == {2.0}


def test_extend_backward_puts_the_new_frames_first(tiny: Cascade) -> None:
    clip = _clip(4)
    out = tiny.extend(
        clip, PROMPT, frames=4, backward=True, method="reconstruction", generator=_seed(0), progress=False
    )
    assert out.video.shape == (1, 3, 8, 16, 16)
    torch.testing.assert_close(out.video[0, :, 4:], clip, atol=1e-6, rtol=0)
    assert float((out.video[0, :, :4] - clip).abs().max()) > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames": 0}, "frames must be an integer >= 1"),
        ({"method": "inpaint"}, "allowed: replacement, reconstruction"),
    ],
)
def test_extend_rejects_bad_options(tiny: Cascade, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny.extend(_clip(4), PROMPT, progress=False, **kwargs)


def test_extend_rejects_a_clip_shorter_than_the_base_needs(tiny: Cascade) -> None:
    with pytest.raises(ValueError, match="the clip has 2 frames; extending needs at least 3"):
        tiny.extend(_clip(2), PROMPT, progress=False)
    with pytest.raises(ValueError, match="the clip has 3 frames; extending needs at least 4"):
        tiny.extend(_clip(3), PROMPT, backward=True, progress=False)


def test_capped_guidance_keeps_weak_schedules_and_caps_strong_ones_to_constant() -> None:
    assert capped_guidance(oscillating_guidance(4.0, 1.0, 2), 1.0) == constant_guidance(1.0)
    assert capped_guidance(constant_guidance(3.0), 1.0) == constant_guidance(1.0)
    for weak in (constant_guidance(0.0), constant_guidance(1.0), oscillating_guidance(1.0, 0.5, 2)):
        assert capped_guidance(weak, 1.0) == weak


def _stages_used(tiny: Cascade, monkeypatch: pytest.MonkeyPatch, **options: object) -> dict:
    """Each stage's config, by name, in one extension round of ``tiny`` with ``options``."""
    seen: dict = {}
    run_stages = tiny._run_stages

    def spy(run, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update({stage.name: stage for stage in run})
        return run_stages(run, *args, **kwargs)

    monkeypatch.setattr(tiny, "_run_stages", spy)
    tiny.extend(_clip(6), PROMPT, frames=2, generator=_seed(0), progress=False, **options)
    return seen


def _guidance_used(tiny: Cascade, monkeypatch: pytest.MonkeyPatch, **options: object) -> dict:
    return {name: stage.guidance for name, stage in _stages_used(tiny, monkeypatch, **options).items()}


def test_extend_samples_the_base_with_at_least_its_base_steps(
    tiny: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = {stage.name: stage.sampler.steps for stage in tiny.config.stages}
    assert own["base"] < EXTEND_BASE_STEPS
    used = {name: stage.sampler.steps for name, stage in _stages_used(tiny, monkeypatch).items()}
    assert used == {**own, "base": EXTEND_BASE_STEPS}  # the SR stages keep theirs
    chosen = _stages_used(tiny, monkeypatch, overrides={"base": StageOverride(steps=3)})
    assert chosen["base"].sampler.steps == 3
    assert _stages_used(tiny, monkeypatch, base_steps=None)["base"].sampler.steps == own["base"]
    assert _stages_used(tiny, monkeypatch, base_steps=1)["base"].sampler.steps == own["base"]


def test_extend_caps_guidance_unless_the_caller_sets_it(
    tiny: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _guidance_used(tiny, monkeypatch)
    assert default == {
        "base": constant_guidance(1.0),
        "tsr": constant_guidance(1.0),
        "ssr": constant_guidance(0.0),
    }
    chosen = _guidance_used(
        tiny, monkeypatch, overrides={"base": StageOverride(guidance=constant_guidance(3.0))}
    )
    assert chosen["base"] == constant_guidance(3.0) and chosen["tsr"] == constant_guidance(1.0)
    own = _guidance_used(tiny, monkeypatch, guidance_cap=None)
    assert own == {stage.name: stage.guidance for stage in tiny.config.stages}
