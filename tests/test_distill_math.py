"""Distillation targets, losses, students and plans on tiny U-Nets (paper sec. 2.7; docs/math.md
secs. 10-12). No data, no text encoder: text tokens are random tensors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cascade.sampling import TextCondition, make_stage_denoiser
from imagen_video.diffusion.config import constant_guidance, no_threshold, oscillating_guidance
from imagen_video.diffusion.parameterization import q_sample, to_x
from imagen_video.diffusion.schedule import logsnr_from_t, snr_trunc_weight, t_from_logsnr
from imagen_video.distill import (
    DistillConfig,
    StageInputs,
    distillation_plan,
    distilled_stage_config,
    guidance_distillation_loss,
    guided_teacher_x,
    make_guidance_student,
    network_raw,
    paper_distill_config,
    prepare_inputs,
    progressive_distillation_loss,
    progressive_target,
    rescale_guidance,
    trainable_copy,
)
from imagen_video.models import VideoUNet
from imagen_video.samplers import ddim_coefficients
from imagen_video.text.base import TextEmbeddings

TEXT_DIM, TEXT_LEN = 16, 6
CASCADE = tiny_cascade(text_encoder="test", text_dim=TEXT_DIM)
BASE = CASCADE.stage("base").replace(threshold=no_threshold())


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions are fastest (and not oversubscribed) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(batch: int = 4, seed: int = 0) -> StageInputs:
    """A base-stage batch: videos in [-1, 1] (B, 3, 4, 8, 8) and random text (B, L, D)."""
    g = _gen(seed)
    x = torch.rand(batch, 3, 4, 8, 8, generator=g) * 2 - 1
    tokens = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=g)
    mask = torch.ones(batch, TEXT_LEN, dtype=torch.bool)
    mask[:, 4:] = False
    return StageInputs(x, tokens, mask)


def _teacher(seed: int = 1) -> VideoUNet:
    return VideoUNet(BASE.unet, generator=_gen(seed)).eval().requires_grad_(False)


def _w_teacher() -> tuple[object, VideoUNet]:
    """A guidance-conditioned network whose w-embedding is not zero (so w matters)."""
    stage, model = make_guidance_student(_teacher(), BASE, generator=_gen(2))
    with torch.no_grad():
        for p in model.guidance_embed.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=_gen(3)))
    return stage, model.eval().requires_grad_(False)


def test_student_ddim_step_lands_on_teacher_two_steps_through_training_target() -> None:
    """docs/math.md sec. 10: from z_t, one DDIM step t -> t'' with the training x_target equals two
    DDIM steps t -> t' -> t'' of the cascade's own (guidance-conditioned) denoiser, at every i incl. 1."""
    stage, teacher = _w_teacher()
    n_student, batch, w = 4, 8, 3.0
    inputs = _inputs(batch)
    generator = _gen(5)
    target = progressive_target(
        teacher, inputs, stage, torch.full((batch,), w), n_student=n_student, generator=generator
    )
    assert target.x_target.dtype == torch.float64
    z = target.z_t.float()
    for b in range(batch):
        l_t, l_t1, l_t2 = (float(v[b]) for v in (target.logsnr_t, target.logsnr_t1, target.logsnr_t2))
        zb = z[b : b + 1]
        sub = TextCondition(
            inputs.tokens[b : b + 1], inputs.mask[b : b + 1], torch.zeros(1, dtype=torch.bool)
        )
        denoise = make_stage_denoiser(teacher, stage.replace(guidance=constant_guidance(w)), sub, None, None)
        c_z, c_x = ddim_coefficients(l_t, l_t1)
        z1 = c_z * zb + c_x * denoise(zb, torch.tensor([l_t]), 0)
        c_z, c_x = ddim_coefficients(l_t1, l_t2)
        z2 = c_z * z1 + c_x * denoise(z1, torch.tensor([l_t1]), 1)  # the teacher's z_t''
        c_z, c_x = ddim_coefficients(l_t, l_t2)
        student = c_z * target.z_t[b : b + 1] + c_x * target.x_target[b : b + 1]  # one student step
        torch.testing.assert_close(student.float(), z2, atol=2e-5, rtol=0)
    schedule = stage.diffusion.schedule
    i = t_from_logsnr(target.logsnr_t, schedule) * n_student  # t = i / N on the student grid
    torch.testing.assert_close(i, i.round(), atol=1e-6, rtol=0)
    assert set(i.round().int().tolist()) <= {1, 2, 3, 4}
    torch.testing.assert_close(
        t_from_logsnr(target.logsnr_t1, schedule) * n_student, i - 0.5, atol=1e-6, rtol=0
    )
    assert float(target.logsnr_t2.max()) == pytest.approx(20.0, abs=1e-3)  # an i = 1 sample (t'' = 0)


def test_guided_teacher_is_eq5_of_one_batched_forward() -> None:
    """Paper eq. 5 with per-sample w: (1 + w) x(z, c) - w x(z, null), cond and null in one 2B forward."""
    teacher, inputs = _teacher(), _inputs()
    logsnr = torch.tensor([-3.0, 0.0, 2.0, 5.0])
    z = q_sample(inputs.x, logsnr, torch.randn(inputs.x.shape, generator=_gen(7)))
    w = torch.tensor([0.0, 1.0, 4.0, 14.0])
    guided = guided_teacher_x(teacher, z, logsnr, inputs, w, prediction="v")
    x_c = to_x(
        network_raw(teacher, z, logsnr, inputs, drop_text=torch.zeros(4, dtype=torch.bool)), z, logsnr, "v"
    )
    x_u = to_x(
        network_raw(teacher, z, logsnr, inputs, drop_text=torch.ones(4, dtype=torch.bool)), z, logsnr, "v"
    )
    expected = (1 + w.view(-1, 1, 1, 1, 1)) * x_c - w.view(-1, 1, 1, 1, 1) * x_u
    torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(x_c, x_u, atol=1e-3)  # the null tokens matter, so w matters


def test_guidance_student_starts_as_teacher_and_loss_is_closed_form() -> None:
    """A fresh student equals the teacher's conditional model at every w, so its loss is
    max(SNR, 1) * w^2 * ||x_c - x_u||^2: zero at w = 0 and quadrupling from w = 1 to w = 2."""
    teacher, inputs = _teacher(), _inputs()
    stage, student = make_guidance_student(teacher, BASE, generator=_gen(2))
    logsnr = torch.tensor([-1.0, 0.5, 1.0, 3.0])
    z = torch.randn(inputs.x.shape, generator=_gen(8))
    cond = network_raw(teacher, z, logsnr, inputs)
    for w in (0.0, 7.5):
        out = network_raw(student, z, logsnr, inputs, guidance_w=torch.full((4,), w))
        torch.testing.assert_close(out, cond, atol=0, rtol=0)
    losses = {}
    for w in (0.0, 1.0, 2.0):
        ws = torch.full((4,), w)
        losses[w] = guidance_distillation_loss(student, teacher, inputs, stage, ws, generator=_gen(9))
    assert torch.all(losses[0.0].abs() < 1e-10)
    torch.testing.assert_close(losses[2.0], 4 * losses[1.0], rtol=1e-4, atol=0)
    assert torch.all(losses[1.0] > 0)


def test_guidance_distillation_moves_student_toward_guided_teacher() -> None:
    """Stage 1 trained briefly on one fixed example (fixed seed): the loss against the guided teacher
    falls steadily, and the student's x moves from the teacher's conditional x toward the guided x."""
    teacher, inputs = _teacher(), _inputs(batch=4)
    stage, student = make_guidance_student(teacher, BASE, generator=_gen(2))
    student.null_tokens.requires_grad_(False)
    w = torch.tensor([1.0, 3.0, 6.0, 10.0])
    draws = _gen(11)  # the loss's documented draws: t ~ U(0, 1) (B,), then eps
    logsnr = logsnr_from_t(torch.rand(4, generator=draws), stage.diffusion.schedule).float()
    z = q_sample(inputs.x, logsnr, torch.randn(inputs.x.shape, generator=draws))
    guided = guided_teacher_x(teacher, z, logsnr, inputs, w, prediction="v")

    def distance_to_guided() -> float:
        with torch.no_grad():
            x = to_x(network_raw(student, z, logsnr, inputs, guidance_w=w), z, logsnr, "v")
        return float((x - guided).square().mean())

    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=1e-2)
    distance_before, losses = distance_to_guided(), []
    for _ in range(20):
        loss = guidance_distillation_loss(student, teacher, inputs, stage, w, generator=_gen(11)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    distance_after = distance_to_guided()
    print(
        f"guidance distillation loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
        f"distance to guided x {distance_before:.4f} -> {distance_after:.4f}"
    )
    assert losses[-1] < 0.5 * losses[0]
    assert all(b < a for a, b in zip(losses[::4], losses[4::4], strict=False))
    assert distance_after < 0.6 * distance_before  # measured 0.436 -> 0.222 (layer-norm U-Net)


def test_progressive_loss_is_truncated_snr_x_error() -> None:
    """L = max(SNR_t, 1) * mean((x_student - x_target)^2) per sample (math sec. 10)."""
    stage, teacher = _w_teacher()
    inputs, w = _inputs(), torch.tensor([0.0, 2.0, 5.0, 14.0])
    target = progressive_target(teacher, inputs, stage, w, n_student=8, generator=_gen(4))
    student = trainable_copy(teacher)
    loss = progressive_distillation_loss(student, target, inputs, stage)
    raw = network_raw(student, target.z_t.float(), target.logsnr_t.float(), inputs, guidance_w=w)
    x_student = to_x(raw, target.z_t.float(), target.logsnr_t.float(), "v")
    err = (x_student - target.x_target.float()).square().flatten(1).mean(1)
    torch.testing.assert_close(loss, snr_trunc_weight(target.logsnr_t.float()) * err, rtol=1e-5, atol=1e-8)
    with torch.no_grad():  # the copy is exact: same outputs as its teacher
        torch.testing.assert_close(
            raw,
            network_raw(teacher, target.z_t.float(), target.logsnr_t.float(), inputs, guidance_w=w),
            atol=0,
            rtol=0,
        )


def test_prepare_inputs_conditions_sr_stages_like_training() -> None:
    """SR conditioning: the low-resolution clip upsampled to the clip's shape, noise-augmented at
    t_a ~ U(0, aug_t_max) (sec. 2.5); with aug_t_max = 0 it is the upsampled clip up to sigma_0."""
    tsr = CASCADE.stage("tsr")
    batch = {"video": torch.rand(2, 3, 8, 8, 8) * 2 - 1, "cond_video": torch.rand(2, 3, 4, 8, 8) * 2 - 1}
    text = TextEmbeddings(
        torch.randn(2, TEXT_LEN, TEXT_DIM), torch.ones(2, TEXT_LEN, dtype=torch.bool), [False] * 2
    )
    inputs = prepare_inputs(batch, text, tsr, device=torch.device("cpu"), generator=_gen(0))
    assert inputs.cond_video.shape == (2, 3, 8, 8, 8) and inputs.aug_logsnr.shape == (2,)
    floor = float(logsnr_from_t(torch.tensor(tsr.diffusion.aug_t_max), tsr.diffusion.schedule))
    assert torch.all(inputs.aug_logsnr >= floor - 1e-4)
    clean = tsr.replace(diffusion=tsr.diffusion.replace(aug_t_max=0.0))
    inputs = prepare_inputs(batch, text, clean, device=torch.device("cpu"), generator=_gen(0))
    repeated = batch["cond_video"].repeat_interleave(2, dim=2)  # "repeat" temporal upsampling
    torch.testing.assert_close(inputs.cond_video, repeated, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="cond_video"):
        prepare_inputs({"video": batch["video"]}, text, tsr, device=torch.device("cpu"), generator=_gen(0))


def test_plan_halves_steps_to_target() -> None:
    """256 -> 8 for the base and 128 -> 8 for SR stages (Table 1), each round halving N."""
    base = distillation_plan(paper_distill_config("base"), "all")
    assert [r.phase for r in base] == ["guidance"] + ["progressive"] * 5
    assert [(r.teacher_steps, r.student_steps) for r in base[1:]] == [
        (256, 128),
        (128, 64),
        (64, 32),
        (32, 16),
        (16, 8),
    ]
    sr = distillation_plan(paper_distill_config("ssr"), "progressive")
    assert [(r.teacher_steps, r.student_steps) for r in sr] == [(128, 64), (64, 32), (32, 16), (16, 8)]
    assert [r.name for r in sr][-1] == "round4_8steps"
    assert distillation_plan(paper_distill_config("tsr"), "guidance")[0].name == "guidance"
    with pytest.raises(ValueError, match="power of two"):
        DistillConfig(start_steps=96, target_steps=8)
    with pytest.raises(ValueError, match="w_min <= w_max"):
        DistillConfig(w_min=5.0, w_max=1.0)
    with pytest.raises(ValueError, match="allowed"):
        distillation_plan(DistillConfig(), "both")


def test_lr_schedule_warms_up_and_decays_linearly() -> None:
    config = DistillConfig(lr=1e-3, warmup_steps=4)
    assert [round(config.lr_at(s, 8) / 1e-3, 6) for s in (0, 3, 4, 7)] == [0.25, 0.625, 0.5, 0.125]
    assert DistillConfig(lr=1e-3, warmup_steps=0, lr_decay=False).lr_at(5, 8) == 1e-3


def test_distilled_stage_defaults_to_stochastic_sampler_with_rescaled_guidance() -> None:
    """Distilled stages sample with the stochastic N-step sampler (math sec. 12); oscillating guidance's
    K initial high steps scale with the step count (paper: 32 of 256 -> 1 of 8)."""
    paper_osc = oscillating_guidance(14.0, 0.0, 32)
    assert rescale_guidance(paper_osc, 256, 8).constant_steps == 1
    assert rescale_guidance(oscillating_guidance(4.0, 1.0, 4), 32, 16).constant_steps == 2
    assert rescale_guidance(oscillating_guidance(4.0, 1.0, 0), 32, 8).constant_steps == 0
    assert rescale_guidance(constant_guidance(5.0), 256, 8) == constant_guidance(5.0)
    stage, _ = make_guidance_student(_teacher(), BASE.replace(guidance=paper_osc), generator=_gen(0))
    distilled = distilled_stage_config(stage, 8, 256)
    assert (distilled.sampler.name, distilled.sampler.steps) == ("stochastic", 8)
    assert distilled.guidance == oscillating_guidance(14.0, 0.0, 1)
    with pytest.raises(ValueError, match="already guidance-distilled"):
        make_guidance_student(_teacher(), stage)
    with pytest.raises(ValueError, match="guidance-conditioned"):
        distilled_stage_config(BASE, 8, 256)
