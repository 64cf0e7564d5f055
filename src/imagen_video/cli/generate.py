"""`imagen-video generate`: text in, video file out, through the cascade (paper sec. 2.2, Figure 6).

Arguments are validated before any network is loaded; outputs are written atomically, so a bad
argument, an error or Ctrl-C never leaves a partial file at the requested path.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagen_video.cli import UserError

if TYPE_CHECKING:
    from imagen_video.cascade.directory import CascadeManifest
    from imagen_video.cascade.runner import Cascade, CascadeOutput
    from imagen_video.cascade.sampling import StageOverride
    from imagen_video.text import TextEncoder

GUIDANCE_HELP = (
    "guidance weight, eq. 5 convention (0 = none): W, STAGE=W, oscillate:HIGH,LOW[,K] or "
    "STAGE=oscillate:HIGH,LOW[,K] (K initial steps at HIGH, paper sec. 2.6.2); without STAGE= it "
    "applies to every stage; repeatable"
)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with `upsample`: model, seed, per-stage sampling overrides, output and device."""
    parser.add_argument(
        "-o",
        "--output",
        help="output file (.mp4 .gif .webp; an existing file is replaced atomically, once the new one "
        "is complete) or PNG frame folder (new, empty, or holding only frames of an earlier run)",
    )
    parser.add_argument(
        "--model",
        help="cascade directory, or a shipped cascade: demo, demo-distilled (default: the shipped default)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument(
        "--steps",
        action="append",
        default=[],
        metavar="[STAGE=]N",
        help="sampler steps of a stage (or of every stage); repeatable",
    )
    parser.add_argument(
        "--sampler",
        action="append",
        default=[],
        metavar="[STAGE=]NAME",
        help="sampler of a stage: ancestral, ddim or stochastic; repeatable",
    )
    parser.add_argument("--guidance", action="append", default=[], metavar="SPEC", help=GUIDANCE_HELP)
    parser.add_argument(
        "--t-start",
        action="append",
        default=[],
        metavar="[STAGE=]T",
        help="start an SR stage's sampler at time T in (0, 1] from its upsampled input, "
        "noised (SDEdit); 1 = from pure noise as in the paper; repeatable",
    )
    parser.add_argument(
        "--start-from",
        action="append",
        default=[],
        metavar="[STAGE=]FRAMES",
        help="what a truncated start noises: the upsampled input (repeated frames for a temporal "
        "SR stage) or its frames linearly interpolated in time; upsampled or interpolated; repeatable",
    )
    parser.add_argument(
        "--tile",
        action="append",
        default=[],
        metavar="[STAGE=]HxW",
        help="sample a stage in overlapping HxW spatial tiles to bound memory (best for "
        "a fully convolutional top stage); repeatable",
    )
    parser.add_argument(
        "--format",
        choices=("mp4", "gif", "webp", "png", "grid"),
        help="output format (default: from the -o suffix, else mp4); png: a folder of frames; grid: one "
        "PNG contact sheet of every video (a row each, up to 16 frames, labelled; also for -o X.png)",
    )
    parser.add_argument("--scale", type=int, default=1, help="integer nearest-neighbour upscale on export")
    parser.add_argument(
        "--text-cache",
        metavar="DIR",
        help="take the prompts' embeddings from a cache built by `imagen-video encode-text` with the "
        "cascade's encoder, instead of loading the encoder (every prompt must be in it)",
    )
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="DIR[:SCALE]",
        help="merge a LoRA adapter (`imagen-video finetune`) into its stages, scaled (default 1); repeatable",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default: auto: CUDA, then MPS, then CPU)",
    )
    parser.add_argument(
        "--offload", action="store_true", help="keep only the running stage on the device (bounds GPU memory)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip checking each weights file against its recorded sha256 (a trusted large model loads "
        "faster; dtype and NaN checks still run)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `generate` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="generate videos from text prompts with a cascade",
        description="Generate a video from a text prompt through the cascade of video diffusion "
        "models (base, then temporal and spatial super-resolution stages).",
    )
    parser.add_argument("prompt", nargs="?", help="the text prompt (or use --prompts FILE)")
    parser.add_argument(
        "--prompts",
        metavar="FILE",
        help='one prompt per line, or JSONL (FILE.jsonl: {"prompt", "seed"?, "num_videos"?, "id"?} '
        "per line); writes the -o directory with manifest.jsonl; runs sharded under torchrun (docs/scale.md)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --prompts: make only the videos missing from the -o directory's manifest "
        "(re-running into the same directory does the same; this flag also requires the manifest)",
    )
    parser.add_argument("--num-videos", type=int, default=1, metavar="K", help="videos per prompt")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        metavar="N",
        help="prompts sampled together through each stage (default 8)",
    )
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate every argument, load the cascade, generate in batches, write one output per video."""
    import torch

    from imagen_video.cascade.jobs import per_video_generators
    from imagen_video.cli._grid import grid_sheet
    from imagen_video.cli._options import check_positive, resolve_device
    from imagen_video.cli._outputs import plan_outputs, timing_report
    from imagen_video.io_safety import check_file_output, check_outputs
    from imagen_video.limits import check_counts, check_generate_fits, check_seed
    from imagen_video.text import TextEncoderUnavailable

    if args.prompts is not None and not _wants_grid(args):
        from imagen_video.cli._generate_job import run_prompts_job

        return run_prompts_job(args)
    started = time.perf_counter()
    try:
        prompts = _prompts(args)
        check_positive("--num-videos", args.num_videos)
        check_positive("--batch-size", args.batch_size)
        check_positive("--seed", args.seed, allow_zero=True)
        check_seed(args.seed)
        check_counts(args.num_videos, args.scale)
        check_positive("--scale", args.scale)
        check_positive("--threads", args.threads)
        grid = grid_sheet(args.output, args.format, prompts)
        if grid is None:
            batch = args.prompts is not None
            plan = plan_outputs(args.output, args.format, prompts, args.num_videos, batch=batch)
        args.device = resolve_device(args.device)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model_dir, manifest, _, overrides = load_plan(args)
    try:
        check_generate_fits(
            model_dir,
            manifest.config,
            overrides,
            num_prompts=len(prompts),
            batch_size=args.batch_size,
            num_videos=args.num_videos,
            scale=args.scale,
            offload=args.offload,
            device=args.device,
        )
        if grid is None:
            check_outputs(plan.paths, plan.format)
        else:
            check_file_output(grid.path)
    except ValueError as err:
        raise UserError(str(err)) from None
    texts = [prompt for _, prompt in prompts]
    encoder = text_cache_encoder(args, manifest, texts)
    cascade = load_cascade(
        model_dir, args.device, encoder, manifest, verify=not args.no_verify, lora=args.lora
    )
    seed = resolve_seed(args.seed)
    batches = math.ceil(len(prompts) / args.batch_size)
    for first in range(0, len(prompts), args.batch_size):
        chunk = [prompt for _, prompt in prompts[first : first + args.batch_size]]
        generator = per_video_generators(seed, range(first, first + len(chunk)), args.num_videos)
        try:
            with warnings_as_lines("generate"):
                output = cascade.generate(
                    chunk,
                    generator=generator,
                    num_videos_per_prompt=args.num_videos,
                    overrides=overrides,
                    offload=args.offload,
                    progress=not args.quiet,
                )
        except (ValueError, TextEncoderUnavailable) as err:  # e.g. an override a stage rejects
            raise UserError(str(err)) from None
        if grid is not None:
            grid.add(output)
        else:
            paths = plan.paths[first * args.num_videos : (first + len(chunk)) * args.num_videos]
            for path in write_outputs(output, paths, plan.format, args.scale):
                print(f"wrote {path}")
        batch = (first // args.batch_size + 1, batches)
        print(timing_report(output, time.perf_counter() - started, batch))
    if grid is not None:
        print(f"wrote {grid.write(args.scale)}")
    print(describe(output, seed, model_dir))
    return 0


def _wants_grid(args: argparse.Namespace) -> bool:
    """True for ``--format grid`` or ``-o X.png``: one contact sheet of every video (``cli/_grid.py``)."""
    return args.format == "grid" or (args.output is not None and Path(args.output).suffix.lower() == ".png")


def _prompts(args: argparse.Namespace) -> list[tuple[int | None, str]]:
    from imagen_video.prompts import clean_prompt, read_prompt_file

    if args.prompts is not None:
        if args.prompt is not None:
            raise ValueError("give either a PROMPT or --prompts FILE, not both")
        if str(args.prompts).endswith(".jsonl"):  # only a grid sheet gets here (see _wants_grid)
            raise ValueError(
                "a grid sheet takes a plain-text prompt file; --prompts FILE.jsonl writes a directory"
            )
        return list(read_prompt_file(args.prompts))
    if args.prompt is None:
        raise ValueError("no prompt given; pass PROMPT or --prompts FILE")
    return [(None, clean_prompt(args.prompt))]


def load_plan(
    args: argparse.Namespace, *, upsample: bool = False
) -> tuple[Path, CascadeManifest, list[str], dict[str, StageOverride]]:
    """Read the cascade's ``cascade.json`` once (no weights): the manifest to pass along, the stages
    to run (every stage; for `upsample` the SR stages of ``--stages``) and the per-stage overrides
    parsed against them."""
    from imagen_video.cascade.directory import CascadeLoadError, read_cascade_json
    from imagen_video.cascade.registry import SHIPPED_CASCADES, resolve_model_dir
    from imagen_video.cascade.runner import select_stages
    from imagen_video.cli._options import parse_overrides, parse_stage_list

    model_dir = resolve_model_dir(args.model)
    if (args.model is None or args.model in SHIPPED_CASCADES) and not model_dir.is_dir():
        raise UserError(f"the shipped cascade is not installed at {model_dir}")
    try:
        manifest = read_cascade_json(model_dir)
        config = manifest.config
        names = parse_stage_list(args.stages, config) if upsample else None
        stages = [stage.name for stage in select_stages(config, names, from_base=not upsample)]
        overrides = parse_overrides(
            config,
            steps=args.steps,
            samplers=args.sampler,
            guidance=args.guidance,
            tiles=args.tile,
            starts=args.t_start,
            start_from=args.start_from,
            stages=stages,
        )
    except KeyError as err:
        raise UserError(str(err.args[0])) from None
    except (CascadeLoadError, ValueError) as err:
        raise UserError(str(err)) from None
    return model_dir, manifest, stages, overrides


def load_cascade(
    model_dir: Path,
    device: str,
    text_encoder: TextEncoder | None = None,
    manifest: CascadeManifest | None = None,
    *,
    verify: bool = True,
    lora: Sequence[str] = (),
) -> Cascade:
    """``Cascade.from_pretrained`` (given the ``cascade.json`` :func:`load_plan` read), with load
    errors (naming the stage) as one-line user errors; ``verify=False`` skips the weights' sha256;
    ``lora``: ``--lora DIR[:SCALE]`` adapters merged into their stages (docs/finetuning.md)."""
    from imagen_video.cascade.directory import CascadeLoadError
    from imagen_video.cascade.runner import Cascade
    from imagen_video.finetune.adapter import AdapterError
    from imagen_video.finetune.lora_option import load_with_adapters

    def load() -> Cascade:
        return Cascade.from_pretrained(
            model_dir, device=device, text_encoder=text_encoder, manifest=manifest, verify=verify
        )

    try:
        return load_with_adapters(load, model_dir, lora)
    except (CascadeLoadError, AdapterError) as err:
        raise UserError(str(err)) from None


def text_cache_encoder(
    args: argparse.Namespace, manifest: CascadeManifest, prompts: list[str]
) -> TextEncoder | None:
    """``--text-cache``: the text encoder of the cascade whose ``cascade.json`` is ``manifest``,
    served from an embedding cache (sec. 2.2; the paper's T5-XXL embeddings can be computed once,
    elsewhere), or None without the option."""
    if args.text_cache is None:
        return None
    from imagen_video.cli._options import open_text_cache

    try:
        return open_text_cache(args.text_cache, manifest, prompts, device=args.device)
    except (OSError, ValueError) as err:
        raise UserError(str(err).strip("'\"")) from None


def resolve_seed(seed: int | None) -> int:
    """The given seed, or a fresh one from the OS (printed, so the run can be repeated)."""
    import secrets

    return seed if seed is not None else secrets.randbelow(2**31)


@contextlib.contextmanager
def warnings_as_lines(command: str) -> Iterator[None]:
    """Print each warning raised inside as one ``imagen-video COMMAND: warning: ...`` line on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for item in caught:
                print(f"imagen-video {command}: warning: {item.message}", file=sys.stderr)


def write_outputs(output: CascadeOutput, paths: list[Path], fmt: str, scale: int) -> list[Path]:
    """Write video i of ``output`` to ``paths[i]`` (atomically) at the cascade's fps."""
    from imagen_video.cascade.export import write_video

    return [
        write_video(video, path, output.fps, format=fmt, scale=scale)
        for video, path in zip(output.video, paths, strict=True)
    ]


def describe(output: CascadeOutput, seed: int, model_dir: Path) -> str:
    """One line: the video shape and fps, the seed and the cascade used."""
    _, _, frames, height, width = output.video.shape
    return f"{frames} frames of {height}x{width} at {output.fps:g} fps; seed {seed}; cascade {model_dir}"
