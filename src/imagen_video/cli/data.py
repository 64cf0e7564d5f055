"""`imagen-video data ...`: dataset tools. `data synth` writes the synthetic captioned world
(docs/world.md); `data check` says what each stage of a cascade can use of a dataset (docs/training.md).

Each ``data`` action is a sub-subcommand registered by one ``_register_<name>`` function below, so
further actions (e.g. inspecting a manifest) add a function and a line in :func:`register`.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` subcommand and its sub-subcommands."""
    parser = subparsers.add_parser("data", help="dataset tools (synthetic world generator, dataset check)")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    _register_synth(actions)
    _register_check(actions)
    parser.set_defaults(func=run, data_parser=parser)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen ``data`` action; without one, print the ``data`` help (exit 2)."""
    action = getattr(args, "data_func", None)
    if action is None:
        args.data_parser.print_help(sys.stderr)
        return 2
    return action(args)


def _register_synth(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "synth",
        help="write a synthetic captioned video world dataset (manifest.jsonl + lossless .npz)",
        description="Render one-shape clips (and, with --tier2-fraction, two-object and text clips) with "
        "canonical or paraphrased captions into DIR (manifest.jsonl, videos/*.npz, images/*.npz).",
    )
    parser.add_argument("--out", required=True, help="output directory (must be empty unless --overwrite)")
    parser.add_argument("--num", type=int, required=True, help="number of video clips")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    parser.add_argument("--height", type=int, default=24, help="frame height (default 24)")
    parser.add_argument("--width", type=int, default=40, help="frame width (default 40)")
    parser.add_argument(
        "--fps", type=float, default=8.0, help="frame rate written to the manifest (default 8)"
    )
    parser.add_argument("--images", type=int, default=0, help="number of captioned still images (default 0)")
    parser.add_argument(
        "--holdout", help="file of held-out 'color shape motion' lines, never emitted as videos"
    )
    parser.add_argument(
        "--paraphrase-prob",
        type=float,
        default=0.25,
        help="probability of a paraphrased caption (default 0.25)",
    )
    parser.add_argument(
        "--tier2-fraction",
        type=float,
        default=0.0,
        help="probability that a video is a tier-2 scene: two objects ('a red circle and a blue square "
        "moving apart') or rendered text ('the word HELLO scrolling left') (default 0: tier 1 only)",
    )
    parser.add_argument(
        "--tier2-scenes",
        default="two,text",
        help="comma-separated tier-2 kinds to draw from: two, text (default two,text)",
    )
    parser.add_argument(
        "--colors",
        default="",
        help="comma-separated colors of the tier-1 clips and images, e.g. orange (a color outside the "
        "shipped training data, for fine-tuning); default: the six tier-1 colors",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous dataset in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(data_func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """Run ``data synth``: validate the arguments, render, write the dataset."""
    from imagen_video.cli import UserError
    from imagen_video.io_safety import check_dir_output
    from imagen_video.world.spec import load_holdout
    from imagen_video.world.synth import SynthConfig, synthesize

    try:
        check_dir_output(args.out)
        holdout = load_holdout(args.holdout) if args.holdout else ()
        config = SynthConfig(
            num_videos=args.num,
            num_images=args.images,
            frames=args.frames,
            height=args.height,
            width=args.width,
            fps=args.fps,
            paraphrase_prob=args.paraphrase_prob,
            seed=args.seed,
            holdout=tuple(c.as_text() for c in holdout),
            tier2_fraction=args.tier2_fraction,
            tier2_scenes=tuple(k.strip() for k in args.tier2_scenes.split(",") if k.strip()),
            colors=tuple(c.strip() for c in args.colors.split(",") if c.strip()),
        )
        manifest = synthesize(args.out, config, overwrite=args.overwrite, progress=not args.quiet)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise UserError(str(err)) from None
    total = config.num_videos + config.num_images
    print(f"wrote {total} records ({config.num_videos} videos, {config.num_images} images) to {manifest}")
    return 0


def _register_check(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "check",
        help="read a dataset as training would and say what each stage can use, and why not",
        description="Summarise DATA (manifest.jsonl, its directory, or a folder of media with same-named "
        ".txt captions): records, captions, frame counts, frame rates, durations and sizes, then for each "
        "stage of the cascade how many clips and images it can use and why the others are skipped "
        "(see docs/training.md). Exit status 1 when a checked stage has nothing to train on.",
    )
    parser.add_argument("data", metavar="DATA", help="dataset path")
    parser.add_argument(
        "--cascade",
        default="demo",
        help="cascade preset (tiny, demo, paper), cascade directory or CascadeConfig JSON (default demo)",
    )
    parser.add_argument(
        "--stage", action="append", default=[], metavar="S", help="check only this stage; repeatable"
    )
    parser.add_argument(
        "--skip-uncaptioned",
        action="store_true",
        help="count media without a .txt caption as skipped instead of stopping",
    )
    parser.set_defaults(data_func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Run ``data check``: print the summary; 1 when a checked stage can use nothing."""
    from imagen_video.cli import UserError
    from imagen_video.data import DatasetError
    from imagen_video.data.check import check_dataset, format_summary
    from imagen_video.train import resolve_cascade

    try:
        cascade = resolve_cascade(args.cascade)
        stages = [cascade.stage(name) for name in args.stage] if args.stage else list(cascade.stages)
        summary = check_dataset(
            args.data, stages, cascade=args.cascade, skip_uncaptioned=args.skip_uncaptioned
        )
    except KeyError as err:
        raise UserError(err.args[0]) from None
    except (DatasetError, ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    print(format_summary(summary))
    return 1 if any(use.videos + use.images == 0 for use in summary.stages) else 0
