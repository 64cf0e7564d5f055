"""`imagen-video finetune`: train a LoRA adapter on stages of a trained cascade (docs/finetuning.md).

    imagen-video finetune --model demo --stage base [--stage tsr1 ...] --data DIR --out ADAPTER
                          --lora-rank R [--lora-alpha A] [--target attention|attention+conv|all]
                          [--images-only] [--replay DIR --replay-fraction F] [--max-steps N] [--resume]

Everything but the adapter is frozen; the loop, checkpoints, progress bar and ``--resume`` are
``train``'s. ``ADAPTER`` is the adapter folder that ``generate --lora ADAPTER`` applies. The logic
lives in :func:`imagen_video.finetune.finetune`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagen_video.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` subcommand."""
    parser = subparsers.add_parser(
        "finetune",
        help="train a LoRA adapter on stages of a trained cascade",
        description="Fine-tune stages of a cascade with LoRA adapters (peft) on DATA; the base weights "
        "stay frozen. OUT becomes an adapter folder for `generate --lora OUT`; each stage's run "
        "(checkpoints, train_log.csv) is in OUT/runs/STAGE.",
    )
    parser.add_argument("--model", default="demo", help="cascade directory or shipped cascade (default demo)")
    parser.add_argument("--stage", action="append", required=True, help="stage to adapt; repeatable")
    parser.add_argument(
        "--data", required=True, type=Path, help="dataset: manifest.jsonl, its dir, or a folder"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="adapter folder to write")
    parser.add_argument("--lora-rank", type=int, default=8, metavar="R", help="LoRA rank (default 8)")
    parser.add_argument("--lora-alpha", type=float, metavar="A", help="LoRA alpha (default: the rank)")
    parser.add_argument(
        "--target",
        default="attention+conv",
        help="layers with adapters: attention, attention+conv or all (default attention+conv)",
    )
    parser.add_argument("--images-only", action="store_true", help="train on the still images of DATA only")
    parser.add_argument(
        "--replay", type=Path, metavar="DIR", help="ordinary dataset mixed in against forgetting"
    )
    parser.add_argument(
        "--replay-fraction", type=float, default=None, metavar="F", help="share of replay records in [0, 1)"
    )
    parser.add_argument("--config", type=Path, help="TrainConfig JSON (default: fine-tuning defaults)")
    parser.add_argument("--max-steps", type=int, help="optimiser steps per stage (default 400)")
    parser.add_argument("--batch-size", type=int, help="clips per step (default 8)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 5e-4)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoints")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the options, train the adapter stage by stage, print where it is."""
    from imagen_video.cascade.directory import CascadeLoadError
    from imagen_video.cascade.registry import resolve_model_dir
    from imagen_video.cascade.stage_io import StageLoadError
    from imagen_video.data import DatasetError
    from imagen_video.finetune import LoraSpec, finetune, finetune_train_config
    from imagen_video.finetune.adapter import require_peft
    from imagen_video.train import TrainSetupError, load_train_config

    overrides = {"max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr}
    try:
        if (args.replay is None) != (args.replay_fraction is None):
            raise ValueError("give --replay DIR and --replay-fraction F together")
        spec = LoraSpec(
            rank=args.lora_rank,
            alpha=args.lora_alpha,
            target=args.target,
            images_only=args.images_only,
            replay=str(args.replay) if args.replay is not None else None,
            replay_fraction=args.replay_fraction or 0.0,
        )
        train_cfg = (
            load_train_config(args.config, **overrides) if args.config else finetune_train_config(**overrides)
        )
        model_dir = resolve_model_dir(args.model)
        require_peft()
        results = finetune(
            model_dir,
            args.stage,
            args.data,
            args.out,
            spec,
            train_cfg,
            resume=args.resume,
            device=args.device,
            progress=not args.no_progress,
        )
    except KeyError as err:
        raise UserError(str(err.args[0])) from None
    except (
        ValueError,
        FileNotFoundError,
        CascadeLoadError,
        StageLoadError,
        DatasetError,
        TrainSetupError,
    ) as err:
        raise UserError(str(err)) from None
    for stage, result in zip(args.stage, results, strict=False):
        state = "stopped by signal (continue with --resume)" if result.interrupted else "done"
        print(f"stage {stage}: step {result.step}, {state}; run {result.stage_dir.parent}")
    print(f"adapter {args.out} (apply with: imagen-video generate --lora {args.out} PROMPT)")
    return 0
