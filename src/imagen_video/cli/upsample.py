"""`imagen-video upsample`: run a cascade's super-resolution stages on an existing video.

Paper sec. 2.2: the SR models are general purpose video super-resolution models that apply to real
videos. The input is decoded, frame-skipped toward the first SR stage's input frame rate, center-cropped
to its aspect ratio and resized to its input H x W; each stage samples in windows of its frame count.
Text-conditioned with ``--prompt``, null-conditioned (the learned null tokens) otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from imagen_video.cli import UserError
from imagen_video.cli.generate import (
    add_sampling_arguments,
    load_cascade,
    load_plan,
    resolve_seed,
    text_cache_encoder,
    warnings_as_lines,
    write_outputs,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `upsample` subcommand."""
    parser = subparsers.add_parser(
        "upsample",
        help="super-resolve an existing video with a cascade's SR stages",
        description="Run the temporal and spatial super-resolution stages of a cascade on a video file "
        "(or a folder of frames).",
    )
    parser.add_argument("video", help="input video file (.mp4, .webm, .gif, ...) or a folder of frames")
    parser.add_argument("--prompt", help="text conditioning (default: none, null-conditioned)")
    parser.add_argument("--stages", help="comma-separated consecutive SR stages to run (default: all)")
    parser.add_argument(
        "--stride",
        type=int,
        metavar="N",
        help="keep every N-th input frame (default: the skip that brings the frame rate "
        "closest to the first stage's input rate)",
    )
    parser.add_argument(
        "--max-frames", type=int, metavar="N", help="use at most N input frames (after skipping)"
    )
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate arguments, read the video, run the SR stages and write the result."""
    import torch

    from imagen_video.cascade.video_input import frame_stride, read_video
    from imagen_video.cli._grid import grid_sheet
    from imagen_video.cli._options import check_positive, resolve_device
    from imagen_video.cli._outputs import plan_outputs, timing_report
    from imagen_video.io_safety import check_file_output, check_outputs
    from imagen_video.prompts import clean_prompt
    from imagen_video.text import TextEncoderUnavailable

    started = time.perf_counter()
    try:
        if not Path(args.video).exists():
            raise ValueError(f"input video {args.video!r} does not exist")
        prompt = clean_prompt(args.prompt) if args.prompt is not None else None
        for name in ("--stride", "--max-frames", "--scale", "--threads"):
            check_positive(name, getattr(args, name[2:].replace("-", "_")))
        check_positive("--seed", args.seed, allow_zero=True)
        label = prompt or Path(args.video).stem
        grid = grid_sheet(args.output, args.format, [(None, label)])
        if grid is None:
            plan = plan_outputs(args.output, args.format, [(None, label)], 1, batch=False)
            check_outputs(plan.paths, plan.format)
        else:
            check_file_output(grid.path)
        args.device = resolve_device(args.device)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model_dir, manifest, stages, overrides = load_plan(args, upsample=True)
    config = manifest.config
    try:
        previous = config.stages[config.index(stages[0]) - 1]
        stride = args.stride or frame_stride(_source_fps(args.video), previous.fps)
        video, fps = read_video(args.video, max_frames=args.max_frames, stride=stride)
    except ValueError as err:
        raise UserError(str(err)) from None
    texts = [prompt] if prompt is not None else []
    encoder = text_cache_encoder(args, manifest, texts)
    cascade = load_cascade(
        model_dir, args.device, encoder, manifest, verify=not args.no_verify, lora=args.lora
    )
    seed = resolve_seed(args.seed)
    try:
        with warnings_as_lines("upsample"):
            output = cascade.upsample(
                video[None],
                fps=fps,
                prompt=prompt,
                stages=stages,
                generator=torch.Generator().manual_seed(seed),
                overrides=overrides,
                offload=args.offload,
                progress=not args.quiet,
            )
    except (ValueError, TextEncoderUnavailable) as err:
        raise UserError(str(err)) from None
    if grid is not None:
        grid.add(output)
        print(f"wrote {grid.write(args.scale)}")
    else:
        for path in write_outputs(output, plan.paths, plan.format, args.scale):
            print(f"wrote {path}")
    _, _, frames, height, width = output.video.shape
    print(
        f"{video.shape[1]} input frames (stride {stride}) -> {frames} frames of {height}x{width} "
        f"at {output.fps:g} fps; seed {seed}; cascade {model_dir}"
    )
    print(timing_report(output, time.perf_counter() - started))
    return 0


def _source_fps(path: str) -> float:
    """Frame rate of the input (read_video at stride 1 of one frame)."""
    from imagen_video.cascade.video_input import read_video

    return read_video(path, max_frames=1)[1]
