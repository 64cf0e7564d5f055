"""`imagen-video bench unet|stage`: time and measure the video U-Net and the cascade's stages.

``unet``: the U-Net on a small workload (:func:`imagen_video.bench.unet.run_unet_benchmark`);
``stage``: one stage of a cascade preset at its published shape, with FLOPs, MFU and the memory model
(:func:`imagen_video.bench.stage.run_stage_bench`). Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imagen_video.cli import UserError


def _ints(text: str) -> tuple[int, ...]:
    """Parse "64,128,256" (or "" for none) into a tuple of ints."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench` with its `unet` sub-subcommand."""
    parser = subparsers.add_parser("bench", help="benchmark the networks (speed, memory, FLOPs)")
    sub = parser.add_subparsers(dest="bench_command", metavar="TARGET", required=True)
    unet = sub.add_parser(
        "unet",
        help="time a video U-Net train step and guided sampling step; print one JSON line",
        description="Defaults are the reference workload: base variant, channels 64,128,256, 2 res blocks, "
        "attention at levels 1,2, 16x24x40, batch 2, 16 text tokens of width 768, CPU fp32. "
        "Each measurement runs in a fresh child process, so peak_rss_mb covers only that work.",
    )
    unet.add_argument(
        "--variant",
        choices=("base", "ssr", "tsr"),
        default="base",
        help="base: temporal attention; ssr/tsr: conditioning video + temporal conv",
    )
    unet.add_argument("--channels", type=_ints, default=(64, 128, 256), help="per-level channels")
    unet.add_argument("--res-blocks", type=int, default=2, help="space-time blocks per level")
    unet.add_argument(
        "--attn-levels",
        type=_ints,
        default=(1, 2),
        help='levels (0 = highest resolution) with spatial and cross attention; "" for none',
    )
    unet.add_argument("--frames", type=int, default=16)
    unet.add_argument("--height", type=int, default=24)
    unet.add_argument("--width", type=int, default=40)
    unet.add_argument("--batch", type=int, default=2)
    unet.add_argument("--text-dim", type=int, default=768)
    unet.add_argument("--text-tokens", type=int, default=16)
    unet.add_argument("--head-dim", type=int, default=64, help="channels per attention head")
    unet.add_argument("--norm-groups", type=int, default=32, help="GroupNorm groups")
    unet.add_argument("--repeats", type=int, default=3, help="timed runs (median) after one warm-up")
    unet.add_argument("--device", default="cpu", help='torch device, e.g. "cpu" or "cuda" (bf16 autocast)')
    unet.add_argument("--norm", choices=("group", "layer"), default="layer")
    unet.add_argument("--skip", choices=("add", "concat"), default="add", help="U-Net skip connections")
    unet.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    unet.add_argument("--checkpointing", action="store_true", help="activation checkpointing per block")
    unet.add_argument("--compile", action="store_true", help="torch.compile the model")
    unet.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    unet.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time with the wall clock, or with process CPU time (use with --threads 1)",
    )
    unet.set_defaults(func=run)
    _register_stage(sub)
    cascade = sub.add_parser(
        "cascade",
        help="FLOPs (and time, from bench stage results) per video: original vs distilled 8-step sampling",
        description="Sums per-stage forward FLOPs (torch.utils.flop_counter on the meta device) times the "
        "forwards of each sampler setting; with --results (JSON lines of `bench stage --mode sample` "
        "for every stage) also seconds per video. Prints one JSON line beside the paper's 618 s / 35 s.",
    )
    cascade.add_argument("--preset", default="paper", help="cascade preset (tiny, demo, paper)")
    cascade.add_argument("--results", type=Path, nargs="*", default=[], help="bench stage JSON files")
    cascade.set_defaults(func=run_cascade)


def _tile(text: str) -> tuple[int, int]:
    """Parse "HxW" (e.g. 192x320) into (h, w)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected HxW with positive integers, e.g. 192x320, got {text!r}")
    return int(parts[0]), int(parts[1])


def _register_stage(sub: argparse._SubParsersAction) -> None:
    """Add `bench stage`."""
    stage = sub.add_parser(
        "stage",
        help="measure one cascade stage at its published shape (time, FLOPs, MFU, memory); one JSON line",
        description="Train step (forward, v-loss, backward, clipping, optimizer step) or sampling step "
        "(the stage's guided denoiser, and a distilled single forward) of STAGE at its output shape. "
        "FLOPs by torch.utils.flop_counter; MFU against the device's dense bf16 peak (null if unknown); "
        "the memory model's prediction is printed beside the measured peak. bf16 on CUDA.",
    )
    stage.add_argument("--preset", default="paper", help="cascade preset (tiny, demo, paper)")
    stage.add_argument(
        "--stage", default="base", help="stage name (paper: base, tsr1, ssr1, ssr2, tsr2, tsr3, ssr3)"
    )
    stage.add_argument("--mode", choices=("train", "sample"), default="train")
    stage.add_argument(
        "--batch", type=int, default=1, help="samples per step (sampling: before guidance doubles it)"
    )
    stage.add_argument("--device", default="cpu", help='torch device, e.g. "cpu" or "cuda"')
    stage.add_argument(
        "--width-scale", type=float, default=1.0, help="multiply every channel count (1.0: preset)"
    )
    stage.add_argument("--fsdp", action="store_true", help="FSDP2 per block (one rank unless under torchrun)")
    stage.add_argument("--checkpointing", action="store_true", help="activation checkpointing per block")
    stage.add_argument("--compile", action="store_true", help="torch.compile the network")
    stage.add_argument(
        "--cpu-offload", action="store_true", help="FSDP2 CPUOffloadPolicy (needs --fsdp, cuda)"
    )
    stage.add_argument("--optimizer", choices=("adamw", "adamw8bit"), default="adamw")
    stage.add_argument("--tile", type=_tile, default=None, help="sampling: spatial tiles HxW of the denoiser")
    stage.add_argument("--repeats", type=int, default=3, help="timed steps (median) after --warmup")
    stage.add_argument("--warmup", type=int, default=1)
    stage.add_argument(
        "--predict-only",
        action="store_true",
        help="run no step: params, FLOPs and the memory model for a CUDA device (bf16), e.g. to plan GPUs",
    )
    stage.set_defaults(func=run_stage)


def run_stage(args: argparse.Namespace) -> int:
    """Measure one stage as the flags say and print the result as one JSON line."""
    import torch

    from imagen_video.bench.stage import StageBenchSpec, run_stage_bench

    _check_device(args.device)
    try:
        spec = StageBenchSpec(
            preset=args.preset,
            stage=args.stage,
            mode=args.mode,
            batch=args.batch,
            device=args.device,
            width_scale=args.width_scale,
            fsdp=args.fsdp,
            checkpointing=args.checkpointing,
            compile=args.compile,
            cpu_offload=args.cpu_offload,
            optimizer=args.optimizer,
            tile=args.tile,
            repeats=args.repeats,
            warmup=args.warmup,
            predict_only=args.predict_only,
        )
        spec.stage_config()
    except (ValueError, KeyError) as err:
        raise UserError(str(err.args[0] if isinstance(err, KeyError) else err)) from None
    try:
        result = run_stage_bench(spec)
    except ImportError as err:
        raise UserError(str(err)) from None
    except torch.OutOfMemoryError as err:
        raise UserError(f"out of device memory: {str(err).splitlines()[0]}") from None
    print(json.dumps(result))
    return 0


def run_cascade(args: argparse.Namespace) -> int:
    """Print the cascade totals of ``--preset`` (with times when ``--results`` cover every stage)."""
    from imagen_video.bench.cascade import cascade_totals, read_step_times

    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        raise UserError(f"--results: no such file: {', '.join(missing)}")
    try:
        times = read_step_times(args.results) if args.results else None
        print(json.dumps(cascade_totals(args.preset, times)))
    except (KeyError, json.JSONDecodeError) as err:
        raise UserError(f"--results: not bench stage output ({err})") from None
    except ValueError as err:
        raise UserError(str(err)) from None
    return 0


def _check_device(device: str) -> None:
    """UserError unless ``device`` names a torch device that exists here."""
    import torch

    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device: not a torch device: {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")


def run(args: argparse.Namespace) -> int:
    """Build the workload from the flags, measure it, print the result as one JSON line."""
    from imagen_video.bench.unet import UNetBenchSpec, run_unet_benchmark

    _check_device(args.device)
    try:
        spec = UNetBenchSpec(
            variant=args.variant,
            channels=args.channels,
            res_blocks=args.res_blocks,
            attn_levels=args.attn_levels,
            frames=args.frames,
            height=args.height,
            width=args.width,
            batch=args.batch,
            text_dim=args.text_dim,
            text_tokens=args.text_tokens,
            head_dim=args.head_dim,
            norm_groups=args.norm_groups,
            repeats=args.repeats,
            device=args.device,
            norm=args.norm,
            skip=args.skip,
            channels_last=args.channels_last,
            gradient_checkpointing=args.checkpointing,
            compile=args.compile,
            threads=args.threads,
            clock=args.clock,
        )
        spec.unet_config()
    except ValueError as err:
        raise UserError(str(err)) from None
    print(json.dumps(run_unet_benchmark(spec)))
    return 0
