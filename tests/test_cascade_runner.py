"""The cascade runner (paper sec. 2.2, Figure 6): reproducibility, shapes, progress, guidance forwards,
overrides, distilled stages, windowed sampling and upsampling of existing videos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagen_video.cascade import Cascade, CascadeStep, StageOverride
from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cascade.sampling import frame_windows, spatial_tiles, tiled, windowed
from imagen_video.diffusion.config import constant_guidance, no_guidance, oscillating_guidance
from test_cascade_helpers import CountingNetwork, HashTextEncoder, single_thread

PROMPT = ["a red circle moving right"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def _seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


@pytest.fixture(scope="module")
def tiny() -> Cascade:
    return Cascade.from_config(tiny_cascade(), generator=_seed(0), text_encoder=HashTextEncoder())


@pytest.fixture(scope="module")
def reference(tiny: Cascade):  # type: ignore[no-untyped-def]
    return tiny.generate(PROMPT, generator=_seed(1), progress=False)


def _counting(cascade: Cascade) -> dict[str, CountingNetwork]:
    counters = {name: CountingNetwork(model) for name, model in cascade.models.items()}
    return counters


def test_output_shape_range_fps_and_timings(reference) -> None:  # type: ignore[no-untyped-def]
    assert reference.video.shape == (1, 3, 8, 16, 16)
    assert reference.video.dtype == torch.float32
    assert float(reference.video.min()) >= 0.0 and float(reference.video.max()) <= 1.0
    assert reference.fps == 4.0
    assert list(reference.timings) == ["base", "tsr", "ssr"]
    assert all(seconds > 0 for seconds in reference.timings.values())
    assert reference.prompts == PROMPT


def test_save_load_round_trip_reproduces_the_video(tiny: Cascade, reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tiny.save_pretrained(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["base", "cascade.json", "ssr", "tsr"]
    loaded = Cascade.from_pretrained(tmp_path / "c", text_encoder=HashTextEncoder())
    assert loaded.config == tiny.config
    again = loaded.generate(PROMPT, generator=_seed(1), progress=False)
    assert torch.equal(again.video, reference.video)
    other = loaded.generate(PROMPT, generator=_seed(2), progress=False)
    assert (other.video - reference.video).abs().mean() > 1e-3


def test_callback_sees_every_step_of_every_stage_in_order(tiny: Cascade) -> None:
    seen: list[CascadeStep] = []
    tiny.generate(PROMPT, generator=_seed(1), callback=seen.append, progress=False)
    stage_steps = (("base", 4), ("tsr", 3), ("ssr", 2))
    expected = [(name, i, steps) for name, steps in stage_steps for i in range(steps)]
    assert [(s.stage, s.step, s.steps) for s in seen] == expected
    assert [s.done for s in seen] == list(range(1, 10)) and {s.total for s in seen} == {9}
    assert [s.stage_index for s in seen] == [0] * 4 + [1] * 3 + [2] * 2


def test_guidance_is_one_batched_forward_per_step(tiny: Cascade) -> None:
    counters = _counting(tiny)
    cascade = Cascade(tiny.config, counters, text_encoder=HashTextEncoder())
    cascade.generate(["a", "b"], generator=_seed(1), progress=False)  # B = 2 prompts
    # base: oscillating w_high=2 for K=1 step, then w_low=0, 2, 0 -> batch 2B at w > 0, B at w = 0
    assert [c[0] for c in counters["base"].calls] == [4, 2, 4, 2]
    first_drop = counters["base"].calls[0][1]
    assert first_drop.tolist() == [False, False, True, True]  # cond half then uncond half
    assert [c[0] for c in counters["tsr"].calls] == [4, 4, 4]  # constant w = 1
    assert [c[0] for c in counters["ssr"].calls] == [2, 2]  # no guidance: conditional only
    assert all(not c[1].any() for c in counters["ssr"].calls)


def test_overrides_change_steps_sampler_and_guidance(tiny: Cascade) -> None:
    counters = _counting(tiny)
    cascade = Cascade(tiny.config, counters, text_encoder=HashTextEncoder())
    overrides = {
        "base": StageOverride(steps=2, sampler="ddim", guidance=no_guidance()),
        "ssr": StageOverride(steps=3, guidance=constant_guidance(3.0)),
    }
    seen: list[CascadeStep] = []
    cascade.generate(PROMPT, generator=_seed(1), overrides=overrides, callback=seen.append, progress=False)
    assert [c[0] for c in counters["base"].calls] == [1, 1]
    assert [c[0] for c in counters["ssr"].calls] == [2, 2, 2]
    assert [(s.stage, s.steps) for s in seen if s.step == 0] == [("base", 2), ("tsr", 3), ("ssr", 3)]
    with pytest.raises(KeyError, match="stages: base, tsr, ssr"):
        cascade.generate(PROMPT, overrides={"sr9": StageOverride(steps=1)}, progress=False)
    with pytest.raises(ValueError, match="steps=0 must be an integer >= 1"):
        cascade.generate(PROMPT, overrides={"base": StageOverride(steps=0)}, progress=False)


def test_several_videos_per_prompt_and_stage_prefix(tiny: Cascade) -> None:
    out = tiny.generate(
        ["a", "b"], generator=_seed(3), num_videos_per_prompt=2, stages=["base", "tsr"], progress=False
    )
    assert out.video.shape == (4, 3, 8, 8, 8) and out.fps == 4.0
    assert out.prompts == ["a", "a", "b", "b"]
    assert (out.video[0] - out.video[1]).abs().mean() > 1e-3  # same prompt, different noise
    with pytest.raises(ValueError, match="starts at the base stage"):
        tiny.generate(["a"], stages=["tsr", "ssr"], progress=False)
    with pytest.raises(ValueError, match="must be consecutive"):
        tiny.generate(["a"], stages=["base", "ssr"], progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts": ["ok", "  "]}, "prompt 1 is empty"),
        ({"prompts": []}, "non-empty list"),
        ({"prompts": ""}, "prompt 0 is empty"),
        ({"prompts": ["a"], "num_videos_per_prompt": 0}, "num_videos_per_prompt must be an integer >= 1"),
    ],
)
def test_generate_rejects_bad_input(tiny: Cascade, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny.generate(**kwargs, progress=False)


def test_offload_gives_the_same_video(tiny: Cascade, reference) -> None:  # type: ignore[no-untyped-def]
    out = tiny.generate(PROMPT, generator=_seed(1), offload=True, progress=False)
    assert torch.equal(out.video, reference.video)
    assert all(next(m.parameters()).device.type == "cpu" for m in tiny.models.values())


def test_text_encoder_width_must_match(tiny: Cascade) -> None:
    cascade = Cascade(tiny.config, tiny.models, text_encoder=HashTextEncoder(dim=32))
    with pytest.raises(ValueError, match="gives width 32, but the cascade's networks take 384"):
        cascade.generate(PROMPT, progress=False)


def test_guidance_distilled_stage_runs_one_forward_with_w(tiny: Cascade) -> None:
    """A stage with use_guidance_embedding gets ONE forward per step with guidance_w (sec. 2.7)."""
    config = tiny.config
    base = config.stages[0]
    student = base.replace(
        unet=base.unet.replace(use_guidance_embedding=True),
        sampler=base.sampler.replace(name="stochastic", steps=4),
        guidance=oscillating_guidance(6.0, 1.0, 1),
    )
    config = config.replace_stage(student)
    cascade = Cascade.from_config(config, generator=_seed(0), text_encoder=HashTextEncoder())
    counters = _counting(cascade)
    cascade = Cascade(config, counters, text_encoder=HashTextEncoder())
    out = cascade.generate(["a", "b"], generator=_seed(1), stages=["base"], progress=False)
    assert out.video.shape == (2, 3, 4, 8, 8)
    calls = counters["base"].calls
    assert [c[0] for c in calls] == [2, 2, 2, 2]
    assert [c[2].tolist() for c in calls] == [[6.0, 6.0], [1.0, 1.0], [6.0, 6.0], [1.0, 1.0]]
    assert all(not c[1].any() for c in calls)


def test_frame_windows_cover_the_video() -> None:
    assert frame_windows(8, 8) == [0]
    assert frame_windows(5, 8) == [0]
    assert frame_windows(20, 8, align=2) == [0, 6, 12]
    assert frame_windows(19, 8) == [0, 6, 11]
    for total, window, align in [(20, 8, 2), (33, 16, 1), (64, 16, 4)]:
        starts = frame_windows(total, window, align)
        covered = set().union(*(range(s, s + window) for s in starts))
        assert covered == set(range(total)) and all(s % align == 0 for s in starts)
        assert all(b - a < window for a, b in zip(starts, starts[1:], strict=False))  # windows overlap


def test_windowed_denoiser_averages_overlapping_windows() -> None:
    calls: list[slice] = []

    def denoise_window(z: torch.Tensor, logsnr: torch.Tensor, step: int, frames: slice) -> torch.Tensor:
        calls.append(frames)
        assert z.shape[2] == 8
        return torch.full_like(z, float(frames.start))  # each window predicts its start index

    denoise = windowed(denoise_window, total=14, window=8)
    x = denoise(torch.zeros(1, 1, 14, 2, 2), torch.zeros(1), 0)
    assert [(c.start, c.stop) for c in calls] == [(0, 8), (6, 14)]
    per_frame = x[0, 0, :, 0, 0].tolist()
    assert per_frame == [0.0] * 6 + [3.0] * 2 + [6.0] * 6  # frames 6, 7 average windows 0 and 6


def test_spatial_tiles_cover_the_frame_with_overlap() -> None:
    assert spatial_tiles(16, 16, None) == [(slice(0, 16), slice(0, 16))]
    assert spatial_tiles(16, 16, (16, 32)) == [(slice(0, 16), slice(0, 16))]  # larger tile: one
    tiles = spatial_tiles(48, 80, (24, 40))
    assert {(r.stop - r.start, c.stop - c.start) for r, c in tiles} == {(24, 40)}
    covered = torch.zeros(48, 80)
    for rows, cols in tiles:
        covered[rows, cols] += 1
    assert covered.min() >= 1 and covered.max() > 1  # everything covered, tiles overlap


def test_tiled_denoiser_averages_overlapping_tiles() -> None:
    def denoise_region(z: torch.Tensor, logsnr: torch.Tensor, step: int, region) -> torch.Tensor:  # type: ignore[no-untyped-def]
        assert z.shape[-2:] == (4, 4)
        return torch.full_like(z, float(region[2].start))  # each tile predicts its first column

    denoise = tiled(denoise_region, height=4, width=7, tile=(4, 4))
    x = denoise(torch.zeros(1, 1, 2, 4, 7), torch.zeros(1), 0, slice(0, 2))
    assert x[0, 0, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.5, 3.0, 3.0, 3.0]  # column 3 in both tiles


def test_tiles_keep_shapes_and_a_whole_frame_tile_changes_nothing(tiny: Cascade, reference) -> None:  # type: ignore[no-untyped-def]
    whole = tiny.generate(
        PROMPT, generator=_seed(1), progress=False, overrides={"ssr": StageOverride(tile=(16, 16))}
    )
    assert torch.equal(whole.video, reference.video)
    counters = _counting(tiny)
    cascade = Cascade(tiny.config, counters, text_encoder=HashTextEncoder())
    out = cascade.generate(
        PROMPT, generator=_seed(1), progress=False, overrides={"ssr": StageOverride(steps=2, tile=(8, 8))}
    )
    assert out.video.shape == reference.video.shape and torch.isfinite(out.video).all()
    assert len(counters["ssr"].calls) == 2 * 9  # 3 x 3 tiles of 8x8 (overlap 2) per step
    with pytest.raises(ValueError, match="sample_tile"):
        tiny.generate(PROMPT, progress=False, overrides={"ssr": StageOverride(tile=(5, 8))})


class FirstCall(torch.nn.Module):
    """Wraps a stage network and keeps the z_t and log-SNR of its first forward."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.config, self.first = inner, inner.config, None

    def forward(
        self, z_t: torch.Tensor, logsnr: torch.Tensor, *args: object, **kwargs: object
    ) -> torch.Tensor:
        if self.first is None:
            self.first = (z_t.clone(), logsnr.clone())
        return self.inner(z_t, logsnr, *args, **kwargs)


def test_truncated_start_begins_at_t_start_from_the_noised_upsampled_input(tiny: Cascade) -> None:
    from imagen_video.cascade.sampling import upsample_input
    from imagen_video.diffusion import alpha_sigma, logsnr_from_t

    ssr = FirstCall(tiny.models["ssr"])
    cascade = Cascade(tiny.config, {**tiny.models, "ssr": ssr}, text_encoder=HashTextEncoder())
    previous = cascade.generate(PROMPT, generator=_seed(5), stages=["base", "tsr"], progress=False).video
    out = cascade.generate(
        PROMPT,
        generator=_seed(5),
        progress=False,
        overrides={"ssr": StageOverride(steps=3, t_start=0.25, aug_logsnr=20.0)},
    )
    assert out.video.shape == (1, 3, 8, 16, 16)
    z_first, logsnr_first = ssr.first
    schedule = tiny.config.stage("ssr").diffusion.schedule
    logsnr = logsnr_from_t(torch.tensor([0.25], dtype=torch.float64), schedule)
    assert float(logsnr_first[0]) == pytest.approx(float(logsnr[0]), abs=1e-5)
    alpha, sigma = (float(v) for v in alpha_sigma(logsnr))
    up = upsample_input(tiny.config.stage("ssr"), previous * 2.0 - 1.0)
    noise = (z_first[:1] - alpha * up) / sigma  # what remains is the stage's unit Gaussian draw
    assert abs(float(noise.mean())) < 0.2 and float(noise.std()) == pytest.approx(1.0, abs=0.2)
    assert float((z_first[:1] - up).abs().mean()) < float((z_first[:1] - torch.randn_like(up)).abs().mean())
    with pytest.raises(ValueError, match="a base stage starts from pure noise"):
        tiny.generate(PROMPT, progress=False, overrides={"base": StageOverride(t_start=0.5)})


def test_interpolated_start_noises_linearly_interpolated_frames(tiny: Cascade) -> None:
    """``start_from="interpolated"``: the same draws, but the start blends the input frames in time
    instead of repeating them, so z_t0 differs by exactly alpha_t0 (interpolated - repeated)."""
    from imagen_video.cascade.sampling import upsample_input
    from imagen_video.diffusion import alpha_sigma, logsnr_from_t
    from imagen_video.models import interpolate_frames

    tsr = FirstCall(tiny.models["tsr"])
    cascade = Cascade(tiny.config, {**tiny.models, "tsr": tsr}, text_encoder=HashTextEncoder())
    previous = cascade.generate(PROMPT, generator=_seed(5), stages=["base"], progress=False).video
    firsts = []
    for start_from in ("upsampled", "interpolated"):
        stage = tiny.config.stage("tsr")
        stage = stage.replace(sampler=stage.sampler.replace(steps=2, t_start=0.2, start_from=start_from))
        cascade.config = tiny.config.replace(
            stages=tuple(stage if s.name == "tsr" else s for s in tiny.config.stages)
        )
        tsr.first = None
        cascade.generate(PROMPT, generator=_seed(5), stages=["base", "tsr"], progress=False)
        firsts.append(tsr.first[0][:1])  # the conditional half of the guided batch
    stage = tiny.config.stage("tsr")
    repeated = upsample_input(stage, previous * 2.0 - 1.0)
    factor = stage.temporal_factor
    assert factor > 1
    interpolated = interpolate_frames(repeated[:, :, ::factor], factor)
    alpha, _ = alpha_sigma(logsnr_from_t(torch.tensor([0.2], dtype=torch.float64), stage.diffusion.schedule))
    torch.testing.assert_close(
        firsts[1] - firsts[0], float(alpha) * (interpolated - repeated), atol=1e-5, rtol=0
    )
    assert float((interpolated - repeated).abs().max()) > 1e-3


def test_upsample_runs_windows_null_conditioned(tiny: Cascade) -> None:
    encoder = HashTextEncoder()
    counters = _counting(tiny)
    cascade = Cascade(tiny.config, counters, text_encoder=encoder)
    video = torch.rand(1, 3, 6, 12, 20)  # 6 frames at 3:5, center-cropped to 1:1 and resized to 8x8
    fast = {"tsr": StageOverride(steps=2), "ssr": StageOverride(steps=1)}
    out = cascade.upsample(video, fps=2.0, generator=_seed(4), overrides=fast, progress=False)
    assert out.video.shape == (1, 3, 12, 16, 16) and out.fps == 4.0
    assert encoder.calls == []  # no prompt: the text encoder is never used
    # tsr: 12 frames in windows of 8 at starts 0, 4 -> 2 forwards per step, every sample null
    assert len(counters["tsr"].calls) == 2 * 2 and all(c[1].all() for c in counters["tsr"].calls)
    assert [c[0] for c in counters["tsr"].calls] == [1] * 4  # guidance skipped without text
    assert len(counters["ssr"].calls) == 1 * 2
    with_text = cascade.upsample(
        video, prompt="a red circle", generator=_seed(4), overrides=fast, progress=False
    )
    assert with_text.fps == 4.0  # default input rate: the base stage's 2 fps
    assert encoder.calls == [["a red circle"]]
    assert not torch.equal(with_text.video, out.video)


def test_upsample_rejects_the_base_stage(tiny: Cascade) -> None:
    with pytest.raises(ValueError, match="super-resolution stages only"):
        tiny.upsample(torch.rand(1, 3, 4, 8, 8), fps=2.0, stages=["base", "tsr"], progress=False)
