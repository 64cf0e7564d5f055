"""`imagen-video train`: train one stage of a cascade (paper sec. 2.2), resumable and torchrun-ready.

    imagen-video train --stage base --data DATA --out runs/base [--cascade demo] [--config train.json]
                       [--resume] [--max-steps N] [--batch-size N] [--lr X] [--t-max T]
                       [--text-cache DIR] [--fsdp [--cpu-offload]] [--checkpointing]
                       [--optimizer adamw|adamw8bit]
    torchrun --nproc_per_node 2 -m imagen_video.cli train ...   (data-parallel, same arguments)

Bad input (unknown stage, missing data path, empty dataset, caption file without media) fails before
any model is built. ``out/stage/`` always holds the latest EMA weights in the cascade's stage-folder
format. The logic lives in :func:`imagen_video.train.train_stage`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagen_video.cli import UserError
from imagen_video.cli._train_knobs import add_knob_arguments
from imagen_video.cli._types import positive_int

OPTIMIZER_CHOICES = ("adamw", "adamw8bit")
"""``--optimizer`` values (imagen_video.train.fsdp.OPTIMIZERS, named here so ``--help`` imports no torch)."""

if TYPE_CHECKING:
    from imagen_video.cascade.config import StageConfig
    from imagen_video.train import TrainConfig, TrainResult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train one stage of a cascade on a video-text dataset",
        description="Train the cascade stage STAGE on DATA (manifest.jsonl dir/file or a captioned media "
        "folder). Checkpoints go to OUT/checkpoints (every checkpoint_every steps and on SIGTERM/SIGINT); "
        "OUT/stage holds the EMA weights in stage-folder format. Runs under torchrun as well.",
    )
    parser.add_argument("--stage", required=True, help="stage name in the cascade (e.g. base, tsr1, ssr1)")
    parser.add_argument(
        "--data", required=True, type=Path, help="dataset: manifest.jsonl, its dir, or a folder"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="run directory")
    parser.add_argument(
        "--cascade",
        default="demo",
        help="cascade preset (tiny, demo, paper) or CascadeConfig JSON file (default demo)",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="TrainConfig JSON (default: built-in defaults)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="STAGE_DIR",
        help="start a new run from a stage folder's weights (e.g. a shipped stage; "
        "pass its cascade as --cascade)",
    )
    parser.add_argument(
        "--max-steps", type=positive_int, default=None, help="total optimiser steps (default 10000)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="clips per micro-batch on each device (default 8)",
    )
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-4)")
    add_knob_arguments(parser)
    parser.add_argument(
        "--skip-uncaptioned",
        action="store_true",
        help="leave media without a .txt caption out (counted) instead of stopping",
    )
    parser.add_argument(
        "--t-max",
        type=float,
        default=None,
        help="draw training times t ~ U(0, T) instead of U(0, 1): for an SR stage sampled from its "
        "noised input at t_start <= T (DiffusionConfig.t_max)",
    )
    parser.add_argument(
        "--text-cache", type=Path, default=None, help="embedding cache dir (default OUT/text_cache)"
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda:<local rank> if available)"
    )
    parser.add_argument(
        "--fsdp",
        action="store_true",
        help="shard parameters with FSDP2 per block (across torchrun ranks; one rank in one process)",
    )
    parser.add_argument(
        "--cpu-offload",
        action="store_true",
        help="keep sharded parameters, gradients and optimizer state in host memory (needs --fsdp)",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZER_CHOICES,
        default=None,
        help="adamw (default) or adamw8bit: torchao's 8-bit AdamW, a quarter of the optimizer memory "
        "(pip install 'imagen-video[scale]')",
    )
    parser.add_argument(
        "--checkpointing",
        action="store_true",
        help="recompute each block in the backward pass (activation checkpointing: less memory, "
        "more compute)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--weights-digest",
        action="store_true",
        help="print a sha256 of each rank's final weights (replicas must agree)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resolve the stage and configs, train, and print where the results are; exit 128 + the signal
    number when a signal stopped the run (after its checkpoint was written)."""
    from imagen_video.cascade.stage_io import StageLoadError
    from imagen_video.cli._train_knobs import knob_overrides
    from imagen_video.data import DatasetError
    from imagen_video.io_safety import check_dir_output
    from imagen_video.train import TrainSetupError, load_train_config, resolve_cascade, train_stage
    from imagen_video.train.fsdp import eight_bit_adamw

    try:
        check_dir_output(args.out)
        cascade = resolve_cascade(args.cascade)
        stage = cascade.stage(args.stage)
        if args.t_max is not None:
            stage = stage.replace(diffusion=stage.diffusion.replace(t_max=args.t_max))
        overrides = {"max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr}
        overrides.update(knob_overrides(args), skip_uncaptioned=args.skip_uncaptioned or None)
        flags = {
            "fsdp": args.fsdp,
            "activation_checkpointing": args.checkpointing,
            "cpu_offload": args.cpu_offload,
        }
        overrides.update({k: True for k, on in flags.items() if on}, optimizer=args.optimizer)
        train_cfg = load_train_config(args.config, **overrides)
        if train_cfg.optimizer == "adamw8bit":
            eight_bit_adamw()  # before the dataset and the model: the package must be installed
    except KeyError as err:
        raise UserError(err.args[0]) from None
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise UserError(str(err)) from None
    if int(os.environ.get("RANK", "0")) == 0:
        _advise(args, stage, train_cfg)
    try:
        result = train_stage(
            stage,
            train_cfg,
            args.data,
            args.out,
            resume=args.resume,
            text_encoder=cascade.text_encoder,
            text_max_length=cascade.text_max_length,
            text_cache=args.text_cache,
            device=args.device,
            progress=not args.no_progress,
            weights_digest=args.weights_digest,
            init_from=args.init_from,
        )
    except (DatasetError, TrainSetupError, StageLoadError) as err:
        raise UserError(str(err)) from None
    _report(args, result)
    return 128 + result.stop_signal if result.stop_signal is not None else 0  # 143 SIGTERM, 130 SIGINT


def _advise(args: argparse.Namespace, stage: StageConfig, config: TrainConfig) -> None:
    """Print the dataset summary for the stage (as ``data check``) and the schedule warnings."""
    from imagen_video.data import DatasetError
    from imagen_video.data.check import check_dataset, format_summary
    from imagen_video.train.knobs import schedule_warnings

    try:
        summary = check_dataset(
            args.data, [stage], cascade=args.cascade, skip_uncaptioned=config.skip_uncaptioned
        )
    except DatasetError:
        return  # train_stage reports the dataset's problem
    print(format_summary(summary), flush=True)
    for line in schedule_warnings(config):
        print(f"imagen-video train: warning: {line}", file=sys.stderr)


def _report(args: argparse.Namespace, result: TrainResult) -> None:
    """Print the per-rank weight digest (if asked) and, on rank 0, where the run ended."""
    rank = int(os.environ.get("RANK", "0"))
    if args.weights_digest:
        print(f"rank {rank} weights sha256 {result.weights_digest}", flush=True)
    if rank != 0:
        return
    if result.interrupted:
        print(
            f"stopped by signal at step {result.step}; checkpoint {result.checkpoint}; "
            f"continue with --resume",
            file=sys.stderr,
        )
    print(
        f"stage {args.stage}: step {result.step} (started at {result.start_step}); "
        f"skipped files {result.skipped_files}; stage folder {result.stage_dir}"
    )
