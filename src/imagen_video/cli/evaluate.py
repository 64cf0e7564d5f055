"""`imagen-video evaluate`: frame FID, FVD, CLIP score, CLIP R-Precision and in-domain metrics.

Paper sec. 3 and Table 1 (docs/math.md sec. 13). Videos come from a cascade (``--model DIR``,
one run per ``--seeds`` value, cached under ``--out`` for resumption) or from directories of videos
(``--videos DIR [DIR ...]``, one run per directory, one video per prompt in sorted name order).
Writes ``results.json`` and ``results.md`` to ``--out``. All feature networks are local files.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate generated videos: FID, FVD, CLIP score, CLIP R-Precision, in-domain metrics",
        description="Compute the paper's metrics (sec. 3, Table 1) on videos sampled from a cascade or read "
        "from directories; writes results.json and results.md.",
    )
    parser.add_argument(
        "--prompts", required=True, help="text file, one prompt per line (one video per prompt)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", help="cascade directory to sample from, or a shipped cascade: demo, demo-distilled"
    )
    source.add_argument("--videos", nargs="+", metavar="DIR", help="video directories, one run each")
    parser.add_argument(
        "--reference", metavar="DIR", help="reference (ground-truth) videos: FID/FVD, ground-truth row"
    )
    parser.add_argument("--metrics", default="clip,rprec", help="comma-separated: fid,fvd,clip,rprec,world")
    parser.add_argument("--inception-weights", metavar="PATH", help="TorchScript Inception for FID")
    parser.add_argument(
        "--i3d-weights", metavar="PATH", help="I3D TorchScript or InceptionI3d state dict for FVD"
    )
    parser.add_argument(
        "--i3d-features",
        default="logits",
        choices=("logits", "pool"),
        help="state-dict I3D features: 400-d logits (reference FVD, default) or 1024-d pool",
    )
    parser.add_argument(
        "--fvd-frames", type=int, metavar="N", help="use the first N frames of each clip for FVD"
    )
    parser.add_argument("--clip-model", metavar="PATH", help="CLIP directory, or a hub name in the HF cache")
    parser.add_argument("--world-clip", metavar="DIR", help="in-domain CLIP of the world (default: shipped)")
    parser.add_argument(
        "--num-distractors", type=int, default=99, help="R-Precision distractors (default 99)"
    )
    parser.add_argument(
        "--distractor-seed", type=int, default=0, help="seed of the distractor draw (default 0)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="--model only: sampling seeds, one run each (default 0)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="videos per batch (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--out", default="evaluation", help="output directory (default ./evaluation)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``: build the metrics, gather the runs, compute, write the tables."""
    from pathlib import Path

    import torch

    from imagen_video.cascade.registry import resolve_model_dir
    from imagen_video.cascade.sharded import join_job, leave_job
    from imagen_video.cli import UserError
    from imagen_video.metrics import MetricsConfig, build_metrics
    from imagen_video.metrics.evaluate import (
        RunSource,
        check_reference_given,
        evaluate_runs,
        sample_runs,
        write_report,
    )
    from imagen_video.metrics.sharded import can_shard, evaluate_sharded
    from imagen_video.metrics.videos import list_video_entries, load_video_dir
    from imagen_video.prompts import read_prompt_file
    from imagen_video.world.metric import register_world_metric

    register_world_metric()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.seeds is not None and args.model is None:
        raise UserError("--seeds applies to --model only; with --videos every directory is one run")
    try:
        config = MetricsConfig(
            metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()),
            inception_weights=args.inception_weights,
            i3d_weights=args.i3d_weights,
            i3d_features=args.i3d_features,
            fvd_frames=args.fvd_frames,
            clip_model=args.clip_model,
            num_distractors=args.num_distractors,
            distractor_seed=args.distractor_seed,
            world_clip=args.world_clip,
            batch_size=args.batch_size,
            device=device,
        )
        prompts = [prompt for _, prompt in read_prompt_file(args.prompts)]
        if args.reference:
            list_video_entries(args.reference)  # a missing or empty reference fails before any work
        shard = join_job(device)  # one process, or every rank under torchrun (docs/scale.md)
        metrics = build_metrics(config)  # fail before any sampling
        check_reference_given(metrics, args.reference is not None)
        if shard.is_main:
            _check_reference_weights(args, config.metrics)
        if args.model is not None:
            sources = sample_runs(
                resolve_model_dir(args.model),
                prompts,
                args.seeds or [0],
                Path(args.out) / "videos",
                batch_size=args.batch_size,
                device=device,
                progress=not args.quiet,
                shard=shard,
            )
        else:
            sources = [RunSource(Path(d).name, Path(d), {"videos": str(d)}) for d in args.videos]
        if shard.distributed and can_shard(metrics):  # every rank extracts features, rank 0 computes
            report = evaluate_sharded(
                sources, prompts, config, metrics, shard, reference=args.reference, progress=not args.quiet
            )
        elif shard.is_main:  # one process, or metrics without a feature step: rank 0 alone
            runs = [source.load(len(prompts)) for source in sources]
            reference = load_video_dir(args.reference) if args.reference else None
            report = evaluate_runs(
                runs, prompts, config, reference=reference, metrics=metrics, progress=not args.quiet
            )
        else:
            report = None
        if report is None:  # the other ranks of a torchrun job
            leave_job(shard, wait=False)
            return 0
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise UserError(str(err)) from None
    report.update(
        prompts_file=str(args.prompts),
        reference=args.reference,
        source={"model": args.model} if args.model else {"videos": args.videos},
    )
    json_path, md_path = write_report(report, args.out)
    print(md_path.read_text(encoding="utf-8"), end="")
    print(f"wrote {json_path} and {md_path}")
    leave_job(shard, wait=False)
    return 0


def _check_reference_weights(args: argparse.Namespace, metrics: tuple[str, ...]) -> None:
    """Say on stderr whether the FID / FVD network files are the published reference ones."""
    import sys

    from imagen_video.metrics.networks import file_sha256
    from imagen_video.metrics.reference_weights import check_reference

    for metric, path in (("fid", args.inception_weights), ("fvd", args.i3d_weights)):
        if metric in metrics and path is not None:
            line = check_reference(metric, path, file_sha256(path))
            print(f"imagen-video evaluate: {line}", file=sys.stderr)
