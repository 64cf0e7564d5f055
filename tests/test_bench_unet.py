"""The U-Net benchmark harness and its `imagen-video bench unet` command (tiny workloads)."""

from __future__ import annotations

import json

import pytest

from imagen_video.bench.unet import UNetBenchSpec, measure, run_unet_benchmark
from imagen_video.cli import build_parser, main

TINY = {
    "channels": (16, 32),
    "attn_levels": (1,),
    "res_blocks": 1,
    "frames": 2,
    "height": 8,
    "width": 8,
    "batch": 1,
    "text_dim": 16,
    "text_tokens": 3,
    "head_dim": 16,
    "norm_groups": 8,
    "repeats": 1,
    "threads": 1,
}


def test_spec_defaults_are_the_reference_workload_and_validate() -> None:
    spec = UNetBenchSpec()
    assert (spec.variant, spec.channels, spec.res_blocks) == ("base", (64, 128, 256), 2)
    assert spec.attn_levels == (1, 2)
    assert (spec.frames, spec.height, spec.width, spec.batch) == (16, 24, 40, 2)
    assert (spec.text_dim, spec.text_tokens, spec.device) == (768, 16, "cpu")
    config = spec.unet_config()
    assert [lvl.spatial_attention for lvl in config.levels] == [False, True, True]
    assert UNetBenchSpec(variant="tsr").unet_config().cond_channels == 3
    with pytest.raises(ValueError, match=r"one of \('base', 'ssr', 'tsr'\)"):
        UNetBenchSpec(variant="xl")


@pytest.mark.parametrize("variant", ["base", "ssr"])
def test_measure_guided_reports_time_and_flops(variant: str) -> None:
    one = measure(UNetBenchSpec(**TINY, variant=variant), "guided")
    assert one["guided_sample_step_s"] > 0 and one["params"] > 0 and one["peak_rss_mb"] > 0
    two = measure(UNetBenchSpec(**{**TINY, "batch": 2}, variant=variant), "guided")
    # Every layer is per-sample, so the forward FLOPs are exactly linear in the batch.
    assert two["fwd_gflop"] == pytest.approx(2 * one["fwd_gflop"], rel=1e-9)


def test_measure_train_step() -> None:
    result = measure(UNetBenchSpec(**TINY), "train")
    assert result["train_step_s"] > 0 and result["optimizer"] == "AdamW"


def test_cli_parses_flags() -> None:
    args = build_parser().parse_args(
        ["bench", "unet", "--variant", "tsr", "--channels", "16,32", "--attn-levels", "", "--frames", "5"]
    )
    assert (args.variant, args.channels, args.attn_levels, args.frames) == ("tsr", (16, 32), (), 5)
    assert callable(args.func)


def test_cli_rejects_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "unet", "--channels", "16,32", "--attn-levels", "5"]) == 2
    assert "out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "unet", "--channels", "a,b"])


@pytest.mark.slow
def test_cli_end_to_end_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "bench",
        "unet",
        "--channels",
        "16,32",
        "--attn-levels",
        "1",
        "--res-blocks",
        "1",
        "--frames",
        "2",
        "--height",
        "8",
        "--width",
        "8",
        "--batch",
        "1",
        "--text-dim",
        "16",
        "--text-tokens",
        "3",
        "--head-dim",
        "16",
        "--norm-groups",
        "8",
        "--repeats",
        "1",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip())
    for key in ("params", "train_step_s", "guided_sample_step_s", "peak_rss_mb", "fwd_gflop"):
        assert result[key] > 0


@pytest.mark.slow
def test_run_unet_benchmark_children() -> None:
    result = run_unet_benchmark(UNetBenchSpec(**TINY))
    assert result["peak_rss_mb"] == max(result["train_peak_rss_mb"], result["guided_peak_rss_mb"])
