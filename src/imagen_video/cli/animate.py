"""`imagen-video animate`: image-to-video (and first/last-frame generation) through the cascade.

The image is the first frame of a video that follows the prompt; ``--last-frame`` also fixes the
last. Every stage is conditioned on the known frames at its own resolution, by replacement or
reconstruction guidance (Video Diffusion Models sec. 3.1, eq. 7; see docs/conditional.md).
Arguments and inputs are checked before any network is loaded; the output is written atomically.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from imagen_video.cli import UserError
from imagen_video.cli.generate import (
    add_sampling_arguments,
    describe,
    load_cascade,
    load_plan,
    resolve_seed,
    text_cache_encoder,
    warnings_as_lines,
    write_outputs,
)

if TYPE_CHECKING:
    from imagen_video.cascade.runner import Cascade, CascadeOutput


# The library's METHODS, DEFAULT_METHOD, DEFAULT_RECONSTRUCTION_WEIGHT and EXTEND_RECONSTRUCTION_WEIGHT
# (imagen_video.cascade.conditioning and .conditional), repeated so that building the parser imports
# no torch (tests check they agree).
METHOD_CHOICES = ("replacement", "reconstruction", "finetuned")
DEFAULT_METHOD = "reconstruction"
ANIMATE_DEFAULT_HELP = "finetuned where the cascade has a frame-conditioned base, else reconstruction"
DEFAULT_RECONSTRUCTION_WEIGHT = 2.0
EXTEND_RECONSTRUCTION_WEIGHT = 4.0


def add_conditioning_arguments(parser: argparse.ArgumentParser, default_help: str = DEFAULT_METHOD) -> None:
    """Options shared by `animate` and `extend`: prompt, method, w_r, keeping the input frames.
    ``--method`` defaults to None (the library's choice, described by ``default_help``)."""
    parser.add_argument("--prompt", help="the text prompt (required)")
    parser.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default=None,
        help=f"how the known frames condition each stage (default {default_help}; docs/conditional.md)",
    )
    parser.add_argument(
        "--guidance-weight",
        type=float,
        default=None,
        metavar="W_R",
        help=f"reconstruction guidance weight w_r (default {DEFAULT_RECONSTRUCTION_WEIGHT:g}; "
        f"extend: {EXTEND_RECONSTRUCTION_WEIGHT:g})",
    )
    parser.add_argument(
        "--no-keep-input",
        dest="keep_input",
        action="store_false",
        help="let the model redraw the known frames instead of keeping the input's",
    )
    add_sampling_arguments(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `animate` subcommand."""
    parser = subparsers.add_parser(
        "animate",
        help="image-to-video: animate an image (optionally to a given last frame) with a prompt",
        description="Generate a video whose first frame is IMAGE (and last frame --last-frame) and that "
        "follows the prompt, through the whole cascade.",
    )
    parser.add_argument("image", help="the first frame (.png, .jpg, .webp, ...)")
    parser.add_argument("--last-frame", metavar="IMAGE", help="also fix the video's last frame")
    add_conditioning_arguments(parser, ANIMATE_DEFAULT_HELP)
    parser.set_defaults(func=run)


def check_common(args: argparse.Namespace, label: str) -> tuple[object, object]:
    """Validate the shared options (prompt, numbers, device, output path); the prompt is cleaned in
    place. Returns ``(grid sheet or None, output plan or None)``, one of them set."""
    from imagen_video.cli._grid import grid_sheet
    from imagen_video.cli._options import check_positive, resolve_device
    from imagen_video.cli._outputs import plan_outputs
    from imagen_video.io_safety import check_file_output, check_outputs
    from imagen_video.limits import check_counts, check_seed
    from imagen_video.prompts import clean_prompt

    if args.prompt is None:
        raise ValueError("no prompt given; pass --prompt TEXT")
    args.prompt = clean_prompt(args.prompt)
    for name in ("--scale", "--threads"):
        check_positive(name, getattr(args, name[2:]))
    check_positive("--seed", args.seed, allow_zero=True)
    check_seed(args.seed)
    check_counts(1, args.scale)
    if args.guidance_weight is not None and args.guidance_weight < 0:
        raise ValueError(f"--guidance-weight must be >= 0, got {args.guidance_weight:g}")
    args.device = resolve_device(args.device)
    grid = grid_sheet(args.output, args.format, [(None, label)])
    plan = plan_outputs(args.output, args.format, [(None, label)], 1, batch=False) if grid is None else None
    if plan is not None:
        check_outputs(plan.paths, plan.format)
    else:
        check_file_output(grid.path)
    return grid, plan


def run_conditional(
    args: argparse.Namespace,
    command: str,
    outputs: tuple[object, object],
    sample: Callable[[Cascade, dict], CascadeOutput],
) -> int:
    """Load the cascade, call ``sample(cascade, options)`` under a seeded generator, write the video
    (or the grid sheet) that :func:`check_common` planned."""
    import torch

    from imagen_video.cli._outputs import timing_report
    from imagen_video.text import TextEncoderUnavailable

    started = time.perf_counter()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model_dir, manifest, _, overrides = load_plan(args)
    encoder = text_cache_encoder(args, manifest, [args.prompt])
    cascade = load_cascade(
        model_dir, args.device, encoder, manifest, verify=not args.no_verify, lora=args.lora
    )
    seed = resolve_seed(args.seed)
    options = {
        "method": args.method,
        "keep_input": args.keep_input,
        "generator": torch.Generator().manual_seed(seed),
        "overrides": overrides,
        "offload": args.offload,
        "progress": not args.quiet,
    }
    if args.guidance_weight is not None:
        options["weight"] = args.guidance_weight
    try:
        with warnings_as_lines(command):
            output = sample(cascade, options)
    except (ValueError, TextEncoderUnavailable) as err:
        raise UserError(str(err)) from None
    grid, plan = outputs
    if grid is not None:
        grid.add(output)  # type: ignore[attr-defined]
        print(f"wrote {grid.write(args.scale)}")  # type: ignore[attr-defined]
    else:
        for path in write_outputs(output, plan.paths, plan.format, args.scale):  # type: ignore[attr-defined]
            print(f"wrote {path}")
    print(timing_report(output, time.perf_counter() - started))
    print(describe(output, seed, model_dir))
    return 0


def run(args: argparse.Namespace) -> int:
    """Validate arguments, read the image(s), animate them and write the video."""
    from imagen_video.cascade.conditional import read_image

    try:
        outputs = check_common(args, (args.prompt or "").strip() or Path(args.image).stem)
        image = read_image(args.image)
        last = read_image(args.last_frame) if args.last_frame is not None else None
    except ValueError as err:
        raise UserError(str(err)) from None

    def sample(cascade: Cascade, options: dict) -> CascadeOutput:
        return cascade.animate(image, args.prompt, last_frame=last, **options)

    return run_conditional(args, "animate", outputs, sample)
