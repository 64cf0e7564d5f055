"""`imagen-video distill`: guidance + progressive distillation of one cascade stage (paper sec. 2.7),
and assembling original / mixed / fully distilled cascades (Table 1).

    imagen-video distill --model CASCADE_DIR --stage STAGE --data DATA --out RUN
                         [--phase guidance|progressive|all] [--start-steps N] [--target-steps 8]
                         [--steps-per-round K] [--guidance-steps K] [--w-range 0,15] [--resume]
                         [--max-steps N] [--batch-size B] [--lr X] [--config distill.json]
                         [--t-start T]
    imagen-video distill --model CASCADE_DIR --assemble NEW_DIR --use STAGE=RUN [--use STAGE=RUN ...]

Guidance weights use the eq. 5 convention (w = 0: none; Saharia's W = 1 + w). ``RUN/stage`` is the
distilled stage folder (stochastic sampler, ``--target-steps`` steps, over the time range
``[0, t_start]`` of the stage's sampler, or ``--t-start``). The logic lives in
:func:`imagen_video.distill.distill_stage` and :func:`imagen_video.distill.assemble_distilled_cascade`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imagen_video.cli import UserError
from imagen_video.cli._types import non_negative_int, positive_int

_EPILOG = """\
examples:
  # distill the base (256 -> 8 steps) and an SR stage (128 -> 8) of a cascade
  imagen-video distill --model cascades/demo --stage base --data data/world --out runs/d-base
  imagen-video distill --model cascades/demo --stage ssr1 --data data/world --out runs/d-ssr1
  # Table 1's mixed cascade (original base + distilled SR) and the fully distilled one
  imagen-video distill --model cascades/demo --assemble cascades/demo-mixed --use ssr1=runs/d-ssr1
  imagen-video distill --model cascades/demo --assemble cascades/demo-fast \\
      --use base=runs/d-base --use ssr1=runs/d-ssr1
  # each assembled directory runs with `generate` like any cascade
"""


def _w_range(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected two numbers 'W_MIN,W_MAX' (e.g. 0,15), got {text!r}"
        ) from None
    return low, high


def _model_dir(text: str) -> Path:
    from imagen_video.cascade.registry import resolve_model_dir

    return resolve_model_dir(text)


def _replacement(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected STAGE=DIR (e.g. ssr1=runs/d-ssr1), got {text!r}")
    return name, Path(path)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``distill`` subcommand."""
    parser = subparsers.add_parser(
        "distill",
        help="distill a cascade stage to few sampling steps (guidance + progressive distillation)",
        description="Distill stage STAGE of the cascade directory CASCADE_DIR on DATA into OUT: guidance "
        "distillation (one forward per step for w in --w-range), then progressive rounds halving the DDIM "
        "steps from --start-steps to --target-steps. Resumable (--resume). OUT/stage is the distilled "
        "stage folder. With --assemble, write a cascade directory that swaps distilled stages in.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        type=_model_dir,
        metavar="CASCADE_DIR",
        help="cascade directory, or a shipped cascade: demo, demo-distilled",
    )
    parser.add_argument("--stage", help="stage to distill (e.g. base, tsr1, ssr1)")
    parser.add_argument("--data", type=Path, help="dataset: manifest.jsonl, its dir, or a folder")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory")
    parser.add_argument("--phase", choices=("guidance", "progressive", "all"), default="all")
    parser.add_argument(
        "--start-steps", type=positive_int, help="DDIM teacher steps of round 1 (256 base, 128 SR)"
    )
    parser.add_argument("--target-steps", type=positive_int, help="student steps after the last round (8)")
    parser.add_argument("--steps-per-round", type=positive_int, help="optimiser steps per progressive round")
    parser.add_argument(
        "--guidance-steps", type=non_negative_int, help="optimiser steps of guidance distillation"
    )
    parser.add_argument(
        "--w-range", type=_w_range, help="training guidance range W_MIN,W_MAX (eq. 5; default 0,15)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint of the phase"
    )
    parser.add_argument(
        "--max-steps", type=non_negative_int, help="stop (with a checkpoint) after N total steps"
    )
    parser.add_argument("--batch-size", type=positive_int, help="clips per optimiser step")
    parser.add_argument("--lr", type=float, help="peak learning rate of every round")
    parser.add_argument(
        "--t-start",
        type=float,
        help="time the distilled sampler starts at (default: the stage's sampler.t_start; SR stages "
        "below 1 start from their noised input)",
    )
    parser.add_argument("--config", type=Path, help="DistillConfig JSON (flags override it)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast on CUDA")
    parser.add_argument("--text-cache", type=Path, help="embedding cache dir (default OUT/text_cache)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--assemble", type=Path, metavar="NEW_DIR", help="write a cascade with --use stages")
    parser.add_argument(
        "--use",
        type=_replacement,
        action="append",
        default=[],
        metavar="STAGE=DIR",
        help="with --assemble: take STAGE from DIR (a run dir or stage folder); repeatable",
    )
    parser.add_argument("--name", help="with --assemble: name of the new cascade")
    parser.add_argument(
        "--weights-dtype",
        choices=("fp16", "bf16"),
        help="with --assemble: store the weights in half precision (half the size; loaded as float32)",
    )
    parser.set_defaults(func=run)


def _distill_config(args: argparse.Namespace, kind: str) -> Any:
    """The DistillConfig: paper defaults for the stage kind, then --config, then the flags."""
    from imagen_video.distill import DistillConfig, paper_distill_config

    if args.config is not None:
        config = DistillConfig.from_json(args.config.read_text(encoding="utf-8"))
    else:
        config = paper_distill_config(kind)
    changes = {
        "start_steps": args.start_steps,
        "target_steps": args.target_steps,
        "steps_per_round": args.steps_per_round,
        "guidance_steps": args.guidance_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "precision": args.precision,
    }
    if args.w_range is not None:
        changes["w_min"], changes["w_max"] = args.w_range
    return config.replace(**{k: v for k, v in changes.items() if v is not None})


def _assemble(args: argparse.Namespace) -> int:
    from imagen_video.distill import assemble_distilled_cascade

    if not args.use:
        raise UserError("--assemble needs at least one --use STAGE=DIR")
    if any(v is not None for v in (args.stage, args.data, args.out, args.t_start)):
        raise UserError(
            "--assemble takes --model, --use, --name and --weights-dtype only "
            "(not --stage/--data/--out/--t-start)"
        )
    replacements = dict(args.use)
    if len(replacements) != len(args.use):
        raise UserError(f"a stage is given twice in --use: {[n for n, _ in args.use]}")
    config = assemble_distilled_cascade(
        args.assemble, args.model, replacements, name=args.name, weights_dtype=args.weights_dtype
    )
    for stage in config.stages:
        source = "distilled" if stage.name in replacements else "original"
        print(f"{stage.name}: {source}, {stage.sampler.name} sampler, {stage.sampler.steps} steps")
    print(f"cascade {config.name!r} written to {args.assemble}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from imagen_video.distill import distill_stage, load_cascade_stage

    missing = [
        flag
        for flag, value in (("--stage", args.stage), ("--data", args.data), ("--out", args.out))
        if value is None
    ]
    if missing:
        raise UserError(f"the following arguments are required: {', '.join(missing)}")
    if args.weights_dtype is not None or args.use or args.name is not None:
        raise UserError("--weights-dtype, --use and --name go with --assemble")
    cascade, stage, model = load_cascade_stage(args.model, args.stage)
    if args.t_start is not None:
        try:
            stage = stage.replace(sampler=stage.sampler.replace(t_start=args.t_start))
        except ValueError as error:
            raise UserError(f"--t-start {args.t_start}: {error}") from None
    config = _distill_config(args, stage.kind)
    result = distill_stage(
        stage,
        model,
        args.data,
        args.out,
        config,
        phase=args.phase,
        resume=args.resume,
        max_steps=args.max_steps,
        text_encoder=cascade.text_encoder,
        text_max_length=cascade.text_max_length,
        text_cache=args.text_cache,
        device=args.device,
        progress=not args.no_progress,
    )
    for summary in result.rounds:
        print(
            f"{summary['name']}: {summary['steps_logged']} steps, loss {summary['loss_first']} -> "
            f"{summary['loss_last']} (mean {summary['loss_mean']})"
        )
    if not result.completed:
        print(f"stopped at step {result.global_step}; checkpoint {result.checkpoint}; continue with --resume")
        return 0
    command = f"imagen-video distill --model {args.model} --assemble NEW_DIR --use {args.stage}={args.out}"
    print(f"stage {args.stage}: distilled stage folder {result.stage_dir}; use it with `{command}`")
    return 0


def run(args: argparse.Namespace) -> int:
    """Distill a stage, or assemble a cascade with distilled stages (--assemble)."""
    from imagen_video.cascade import CascadeLoadError, StageLoadError
    from imagen_video.data import DatasetError

    try:
        return _assemble(args) if args.assemble is not None else _distill(args)
    except KeyError as err:
        raise UserError(err.args[0]) from None
    except (ValueError, FileNotFoundError, CascadeLoadError, StageLoadError, DatasetError) as err:
        raise UserError(str(err)) from None
