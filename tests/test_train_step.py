"""``train_step`` / ``stage_loss``: conditioning dropout (sec. 2.6.1), SR conditioning upsampling and noise
augmentation (sec. 2.5, docs/math.md sec. 8), gradient accumulation and clipping."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.diffusion.parameterization import q_sample
from imagen_video.diffusion.schedule import logsnr_from_t
from imagen_video.models import VideoUNet, upsample_video
from imagen_video.text.base import TextEmbeddings
from imagen_video.train.step import autocast, stage_loss, train_step

TINY = get_cascade_preset("tiny")


def _text(batch: int, seed: int = 0, length: int = 16, dim: int = 384) -> TextEmbeddings:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask[:, :5] = True
    return TextEmbeddings(torch.randn(batch, length, dim, generator=generator), mask, [False] * batch)


def _batch(stage, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {
        "video": torch.rand(batch, 3, *stage.shape, generator=generator) * 2 - 1,
        "image_mode": torch.tensor([False, True] * (batch // 2)),
    }
    if stage.kind != "base":
        out["cond_video"] = torch.rand(batch, 3, *stage.cond_shape, generator=generator) * 2 - 1
    return out


class Recorder(nn.Module):
    """A stand-in network: returns ``scale * z_t`` and records what the training step passed in."""

    def __init__(self, shift: float = 0.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.shift = shift  # nan poisons the output
        self.calls: list[dict] = []

    def forward(
        self,
        z_t,
        logsnr,
        text_tokens,
        text_mask,
        *,
        drop_text=None,
        cond_video=None,
        aug_logsnr=None,
        image_mode=None,
        guidance_w=None,
    ):
        self.calls.append(
            {
                "z_t": z_t,
                "logsnr": logsnr,
                "text_tokens": text_tokens,
                "drop_text": drop_text,
                "cond_video": cond_video,
                "aug_logsnr": aug_logsnr,
                "image_mode": image_mode,
            }
        )
        return self.scale * z_t + self.shift


@pytest.fixture(scope="module")
def base_model() -> VideoUNet:
    torch.set_num_threads(1)
    return VideoUNet(TINY.stage("base").unet, generator=torch.Generator().manual_seed(0))


def test_sr_conditioning_is_upsampled_then_noise_augmented_with_the_sampling_definitions() -> None:
    stage = TINY.stage("tsr")  # 4x8x8 -> 8x8x8, temporal "repeat"
    batch, model = _batch(stage, 4), Recorder()
    stage_loss(model, batch, _text(4), stage, generator=torch.Generator().manual_seed(3))
    seen = model.calls[0]
    # replay the documented draw order: dropout mask, aug level t_a ~ U(0, aug_t_max), aug noise eps'
    replay = torch.Generator().manual_seed(3)
    drop = torch.rand(4, generator=replay) < stage.diffusion.p_uncond
    t_a = stage.diffusion.aug_t_max * torch.rand(4, generator=replay)
    aug_logsnr = logsnr_from_t(t_a, stage.diffusion.schedule)
    eps_aug = torch.randn(4, 3, *stage.shape, generator=replay)
    upsampled = upsample_video(batch["cond_video"], size=stage.shape, temporal="repeat")
    assert torch.equal(seen["drop_text"], drop)
    torch.testing.assert_close(seen["aug_logsnr"], aug_logsnr)
    torch.testing.assert_close(seen["cond_video"], q_sample(upsampled, aug_logsnr, eps_aug))
    assert torch.equal(seen["image_mode"], batch["image_mode"])
    assert bool(
        (
            seen["aug_logsnr"]
            >= logsnr_from_t(torch.tensor(stage.diffusion.aug_t_max), stage.diffusion.schedule)
        ).all()
    )


def test_base_stage_passes_no_conditioning_video() -> None:
    model = Recorder()
    stage_loss(
        model,
        _batch(TINY.stage("base"), 2),
        _text(2),
        TINY.stage("base"),
        generator=torch.Generator().manual_seed(0),
    )
    assert model.calls[0]["cond_video"] is None and model.calls[0]["aug_logsnr"] is None
    with pytest.raises(ValueError, match="needs batch\\['cond_video'\\]"):
        stage_loss(
            model,
            _batch(TINY.stage("base"), 2),
            _text(2),
            TINY.stage("ssr"),
            generator=torch.Generator().manual_seed(0),
        )
    with pytest.raises(ValueError, match="3 prompts but the batch holds 2"):
        stage_loss(
            model,
            _batch(TINY.stage("base"), 2),
            _text(3),
            TINY.stage("base"),
            generator=torch.Generator().manual_seed(0),
        )


@pytest.mark.parametrize("p_uncond", [0.0, 1.0])
def test_conditioning_dropout_controls_whether_text_matters(base_model, p_uncond) -> None:
    stage = TINY.stage("base")
    stage = stage.replace(diffusion=stage.diffusion.replace(p_uncond=p_uncond))
    batch = _batch(stage, 2)
    losses = [
        stage_loss(base_model, batch, _text(2, seed=s), stage, generator=torch.Generator().manual_seed(5))
        for s in (1, 2)
    ]
    if p_uncond == 1.0:  # every sample uses the learned null tokens: the prompt cannot matter
        assert torch.equal(losses[0], losses[1])
    else:
        assert not torch.allclose(losses[0], losses[1])


def test_gradient_accumulation_averages_micro_batch_gradients(base_model) -> None:
    stage = TINY.stage("base")
    micro = [_batch(stage, 2, seed=1), _batch(stage, 2, seed=2)]
    texts = [_text(2, seed=1), _text(2, seed=2)]
    model, reference = copy.deepcopy(base_model), copy.deepcopy(base_model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: weights stay, gradients remain
    out = train_step(
        model, micro, texts, stage, optimizer=optimizer, generator=torch.Generator().manual_seed(9)
    )
    replay = torch.Generator().manual_seed(9)
    losses = [
        stage_loss(reference, b, t, stage, generator=replay).mean() for b, t in zip(micro, texts, strict=True)
    ]
    ((losses[0] + losses[1]) / 2).backward()
    assert out["loss"] == pytest.approx(float((losses[0] + losses[1]).detach() / 2), rel=1e-6)
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_gradient_clipping_reports_the_norm_before_clipping(base_model) -> None:
    stage = TINY.stage("base")
    model = copy.deepcopy(base_model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    batch, text = _batch(stage, 2), _text(2)
    free = train_step(
        model, batch, text, stage, optimizer=optimizer, generator=torch.Generator().manual_seed(4)
    )
    clip = free["grad_norm"] / 4
    clipped = train_step(
        model,
        batch,
        text,
        stage,
        optimizer=optimizer,
        grad_clip=clip,
        generator=torch.Generator().manual_seed(4),
    )
    assert clipped["grad_norm"] == pytest.approx(free["grad_norm"], rel=1e-6)  # same draws, same gradient
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert float(after) == pytest.approx(clip, rel=1e-4)


def test_non_finite_loss_skips_the_update() -> None:
    model = Recorder(shift=math.nan)
    before = model.scale.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    out = train_step(
        model,
        _batch(TINY.stage("base"), 2),
        _text(2),
        TINY.stage("base"),
        optimizer=optimizer,
        generator=torch.Generator().manual_seed(0),
        grad_clip=1.0,
    )
    assert out["skipped"] and not math.isfinite(out["loss"])
    assert torch.equal(model.scale.detach(), before)
    assert not optimizer.state  # AdamW never stepped


def test_train_step_updates_weights_and_lowers_loss_on_a_fixed_batch(base_model) -> None:
    stage = TINY.stage("base")
    model = copy.deepcopy(base_model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch, text = _batch(stage, 4), _text(4)

    def fixed_loss() -> float:  # same t and noise every time
        with torch.no_grad():
            return float(
                stage_loss(model, batch, text, stage, generator=torch.Generator().manual_seed(1)).mean()
            )

    start = fixed_loss()
    for step in range(8):
        train_step(
            model, batch, text, stage, optimizer=optimizer, generator=torch.Generator().manual_seed(step)
        )
    assert fixed_loss() < 0.9 * start


def test_autocast_is_bf16_on_cuda_only() -> None:
    with autocast(torch.device("cpu"), "bf16"):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        autocast(torch.device("cpu"), "fp16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda_keeps_the_loss_float32() -> None:
    stage = TINY.stage("base")
    model = VideoUNet(stage.unet, generator=torch.Generator().manual_seed(0)).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator(device="cuda").manual_seed(0)
    loss = stage_loss(model, _batch(stage, 2), _text(2), stage, generator=generator, precision="bf16")
    assert loss.dtype == torch.float32 and bool(torch.isfinite(loss).all())
    out = train_step(
        model,
        _batch(stage, 2),
        _text(2),
        stage,
        optimizer=optimizer,
        generator=generator,
        precision="bf16",
        grad_clip=1.0,
    )
    assert not out["skipped"]
