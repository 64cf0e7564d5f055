"""`imagen-video extend`: continue a clip forward (or backward) by N frames through the cascade.

The clip is read at the cascade's output frame rate (frames skipped when its rate is higher), resized
to the output size, and extended autoregressively (Video Diffusion Models sec. 3.1): each round
conditions a full cascade run on the clip's last frames so far. The output holds the original frames
followed (``--backward``: preceded) by the new ones, at the cascade's frame rate. Guidance is capped
at w = 1 (:data:`imagen_video.cascade.conditional.EXTEND_GUIDANCE_CAP`) where ``--guidance`` is not
given, and the base samples with at least
:data:`~imagen_video.cascade.conditional.EXTEND_BASE_STEPS` steps where ``--steps`` does not set its.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from imagen_video.cli import UserError
from imagen_video.cli.animate import (
    add_conditioning_arguments,
    check_common,
    run_conditional,
)

if TYPE_CHECKING:
    from imagen_video.cascade.runner import Cascade, CascadeOutput

# imagen_video.cascade.conditional.EXTEND_BASE_STEPS, repeated so that building the parser imports no
# torch (tests check they agree).
EXTEND_BASE_STEPS = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `extend` subcommand."""
    parser = subparsers.add_parser(
        "extend",
        help="continue a video clip forward (or backward) following a prompt",
        description="Extend VIDEO by --frames new frames through the whole cascade; the output holds the "
        "original frames followed (or, with --backward, preceded) by the new ones. Stages sample with "
        "classifier-free guidance of at most w = 1 unless --guidance sets theirs, the base with at least "
        f"{EXTEND_BASE_STEPS} steps unless --steps sets its.",
    )
    parser.add_argument("video", help="input video file (.mp4, .webm, .gif, ...) or a folder of frames")
    parser.add_argument("--frames", type=int, default=16, metavar="N", help="new frames to add (default 16)")
    parser.add_argument("--backward", action="store_true", help="add the new frames before the clip")
    parser.add_argument(
        "--anchor",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="guide the super-resolution stages' new frames to their input, which keeps the object's size "
        "across the seam (default: with reconstruction guidance; docs/conditional.md)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        metavar="N",
        help="keep every N-th input frame (default: the skip that brings the clip's frame rate "
        "closest to the cascade's output rate)",
    )
    add_conditioning_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate arguments, read the clip at the cascade's frame rate, extend it and write the video."""
    import sys

    from imagen_video.cascade.directory import CascadeLoadError, read_cascade_json
    from imagen_video.cascade.registry import resolve_model_dir
    from imagen_video.cascade.video_input import frame_stride, read_video
    from imagen_video.cli._options import check_positive

    try:
        outputs = check_common(args, (args.prompt or "").strip() or Path(args.video).stem)
        check_positive("--frames", args.frames)
        check_positive("--stride", args.stride)
        if args.anchor and args.method == "replacement":
            raise ValueError("--anchor needs reconstruction guidance; --method replacement has none")
        if not Path(args.video).exists():
            raise ValueError(f"input video {args.video!r} does not exist")
        top_fps = read_cascade_json(resolve_model_dir(args.model)).config.stages[-1].fps
        source_fps = read_video(args.video, max_frames=1)[1]
        stride = args.stride or frame_stride(source_fps, top_fps)
        clip, fps = read_video(args.video, stride=stride)
    except (ValueError, CascadeLoadError) as err:
        raise UserError(str(err)) from None
    if abs(fps - top_fps) > 0.05 * top_fps:
        print(
            f"imagen-video extend: warning: the clip runs at {fps:g} fps after skipping; "
            f"it is extended and written at the cascade's {top_fps:g} fps",
            file=sys.stderr,
        )

    def sample(cascade: Cascade, options: dict) -> CascadeOutput:
        return cascade.extend(
            clip, args.prompt, frames=args.frames, backward=args.backward, anchor=args.anchor, **options
        )

    return run_conditional(args, "extend", outputs, sample)
