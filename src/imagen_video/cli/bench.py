"""`imagen-video bench unet`: time and measure the video U-Net (train step, guided sampling step, memory).

Thin wrapper over :func:`imagen_video.models.bench.run_unet_benchmark`; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

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


def run(args: argparse.Namespace) -> int:
    """Build the workload from the flags, measure it, print the result as one JSON line."""
    import torch

    from imagen_video.models.bench import UNetBenchSpec, run_unet_benchmark

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device: not a torch device: {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available on this machine")
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
