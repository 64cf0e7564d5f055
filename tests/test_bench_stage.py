"""`imagen-video bench stage` and `bench cascade`: scaling, FLOPs, MFU and the JSON line (tiny shapes)."""

from __future__ import annotations

import json

import pytest
import torch

from imagen_video.bench import cascade as cc
from imagen_video.bench.devices import mfu, peak_bf16_tflops
from imagen_video.bench.stage import (
    StageBenchSpec,
    forward_flops,
    run_stage_bench,
    sample_regions,
    scale_unet,
    step_shape,
    train_flops,
)
from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.cli import main
from imagen_video.diffusion.config import constant_guidance, oscillating_guidance
from imagen_video.diffusion.guidance import GuidanceSchedule
from imagen_video.models import VideoUNet
from imagen_video.models.presets import paper_unets, tiny_unet

TINY = {"preset": "tiny", "stage": "base", "repeats": 1, "warmup": 0}


def test_width_scale_multiplies_the_channels_in_head_multiples() -> None:
    base = dict((n, c) for n, c, _ in paper_unets())["base"]
    scaled = scale_unet(base, 0.02)
    assert [level.channels for level in scaled.levels] == [16, 24, 48, 80]
    assert scaled.head_dim == 8 and scaled.text.dim == base.text.dim
    assert [level.res_blocks for level in scaled.levels] == [3, 3, 3, 3]
    assert scale_unet(base, 1.0) == base
    half = scale_unet(base, 0.5)
    assert [level.channels for level in half.levels] == [320, 640, 1280, 1920] and half.head_dim == 32


def test_spec_rejects_inconsistent_options() -> None:
    with pytest.raises(ValueError, match="cpu_offload needs fsdp"):
        StageBenchSpec(cpu_offload=True)
    with pytest.raises(ValueError, match="mode 'train' only"):
        StageBenchSpec(mode="sample", fsdp=True)
    with pytest.raises(ValueError, match=r"width_scale must be in \(0, 1\]"):
        StageBenchSpec(width_scale=0.0)
    with pytest.raises(ValueError, match="needs a cuda device"):
        StageBenchSpec(fsdp=True, cpu_offload=True)


def test_device_table_and_mfu() -> None:
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("NVIDIA H200") == 989.0
    assert peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_bf16_tflops("cpu") is None
    assert mfu(989e12, 2.0, 989.0) == pytest.approx(0.5)
    assert mfu(1e12, 1.0, None) is None


def test_flops_are_linear_in_batch_and_backward_costs_twice_the_forward() -> None:
    config = tiny_unet("ssr")
    one, two = (train_flops(config, (4, 16, 16), b, 5) for b in (1, 2))
    assert two == 2 * one
    forward = forward_flops(config, (4, 16, 16), 1, 5)
    assert 2.9 < one / forward < 3.1  # forward + backward (input and weight gradients)


def test_tiles_split_the_sampling_regions() -> None:
    stage = get_cascade_preset("paper").stage("ssr3")
    assert sample_regions(stage) == (1, (128, 768, 1280))
    regions, shape = sample_regions(stage.replace(sample_tile=(192, 320)))
    assert shape == (128, 192, 320) and regions == 5 * 5  # starts every 144 rows and 240 columns


@pytest.mark.parametrize("mode", ["train", "sample"])
def test_run_reports_the_json_fields(mode: str) -> None:
    result = run_stage_bench(StageBenchSpec(**TINY, mode=mode, batch=2))
    assert result["mfu"] is None and result["device"] == "cpu" and result["peak_bf16_tflops"] is None
    assert result["samples_per_s"] == pytest.approx(2 / result["step_s"])
    assert result["achieved_tflops"] == pytest.approx(result["flops_per_step"] / result["step_s"] / 1e12)
    assert result["params"] == VideoUNet(get_cascade_preset("tiny").stage("base").unet).num_parameters()
    assert result["predicted"]["total_gib"] > 0 and result["peak_rss_mb"] >= result["rss_before_mb"]
    stage = get_cascade_preset("tiny").stage("base")
    shape = (stage.frames, stage.height, stage.width)
    if mode == "train":
        assert result["flops_per_step"] == train_flops(stage.unet, shape, 2, 16)
        assert result["predicted_fsdp_gpus_80gib"] == 1
    else:  # the tiny base is guided at its first step: one forward at batch 2B
        assert result["flops_per_step"] == forward_flops(stage.unet, shape, 4, 16)
        assert result["single_step_s"] > 0


def test_cli_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "stage", "--preset", "tiny", "--stage", "tsr", "--repeats", "1", "--warmup", "0"]
    assert main([*argv, "--fsdp", "--checkpointing"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["settings"]["fsdp"] and result["settings"]["checkpointing"] and result["stage"] == "tsr"


def test_cli_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "stage", "--preset", "tiny", "--stage", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "stage", "--cpu-offload"]) == 2
    assert "cpu_offload needs fsdp" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "stage", "--device", "cuda:0"]) == 2


def test_forwards_per_step_follow_the_guidance_weights() -> None:
    assert cc.forwards_per_step(constant_guidance(5.0), 3) == [2, 2, 2]
    osc = oscillating_guidance(4.0, 0.0, 2)  # w alternates 4, 0 for the first 2 steps, then 0
    weights = GuidanceSchedule(osc).weights(4)
    assert cc.forwards_per_step(osc, 4) == [2 if w else 1 for w in weights] and 0.0 in weights


def test_cascade_totals_sum_steps_forwards_and_times() -> None:
    cascade = get_cascade_preset("tiny")
    flops = {s.name: 10 ** (i + 1) for i, s in enumerate(cascade.stages)}
    times = {s.name: {"step_s": 2.0, "single_step_s": 1.0} for s in cascade.stages}
    totals = cc.cascade_totals("tiny", times, flops)
    original = sum(
        flops[s.name] * sum(cc.forwards_per_step(s.guidance, s.sampler.steps)) for s in cascade.stages
    )
    assert totals["original_flops"] == original
    assert totals["distilled_flops"] == 8 * sum(flops.values())
    assert totals["flop_ratio"] == pytest.approx(original / (8 * sum(flops.values())))
    seconds = sum(
        sum(cc.forwards_per_step(s.guidance, s.sampler.steps)) for s in cascade.stages
    )  # 2 s or 1 s
    assert totals["original_s"] == pytest.approx(seconds)
    assert totals["distilled_s"] == pytest.approx(8 * len(cascade.stages))
    assert totals["paper"] == {"original_s": 618.0, "distilled_s": 35.0, "flop_ratio": 36.0}
    assert "original_s" not in cc.cascade_totals("tiny", {}, flops)


def test_read_step_times_takes_sample_lines(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    rows = [
        {"stage": "base", "mode": "train", "step_s": 9.0},
        {"stage": "base", "mode": "sample", "step_s": 2.0, "single_step_s": 1.0},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert cc.read_step_times([path]) == {"base": {"step_s": 2.0, "single_step_s": 1.0}}


def test_train_steps_of_the_top_stage_use_its_crops() -> None:
    stage = get_cascade_preset("paper").stage("ssr3")
    assert step_shape(stage, "train") == (128, 192, 320)
    assert step_shape(stage, "sample") == (128, 768, 1280)


def test_predict_only_runs_no_step() -> None:
    result = run_stage_bench(StageBenchSpec(**TINY, predict_only=True))
    assert result["step_s"] is None and result["mfu"] is None and result["samples_per_s"] is None
    assert result["flops_per_step"] > 0 and result["predicted"]["total_gib"] > 0


def test_max_batch_fills_the_capacity_with_activations() -> None:
    from imagen_video.bench.memory import train_memory
    from imagen_video.bench.stage import max_batch

    estimate = train_memory(1000, 100, batch=2)  # 16000 fixed bytes + 100 per sample
    assert max_batch(estimate, 2, 16_000 + 550) == 5
    assert max_batch(estimate, 2, 15_000) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("options", [{}, {"fsdp": True, "checkpointing": True}])
def test_cuda_train_step_reports_gpu_memory(options: dict) -> None:
    result = run_stage_bench(StageBenchSpec(**TINY, device="cuda", **options))
    assert result["peak_gpu_gib"] > 0 and result["step_s"] > 0
    assert (result["mfu"] is None) == (result["peak_bf16_tflops"] is None)


def test_cascade_cli(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "cascade", "--preset", "tiny"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["flop_ratio"] == pytest.approx(totals["original_flops"] / totals["distilled_flops"])
    assert "original_s" not in totals
    assert main(["bench", "cascade", "--preset", "tiny", "--results", str(tmp_path / "none.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("not json\n")
    assert main(["bench", "cascade", "--preset", "tiny", "--results", str(bad)]) == 2
    assert "not bench stage output" in capsys.readouterr().err
