"""`imagen-video cascade`: build and inspect cascade directories (docs/CONTRIBUTING.md, "Cascade directory").

- ``assemble DIR [STAGE_DIR ...]``: write ``cascade.json`` over trained stage folders (copying the given
  folders, e.g. ``runs/base/stage``, into ``DIR/<stage name>/``); the stage order follows the shapes;
- ``init DIR --preset NAME``: a randomly initialised cascade from a preset (tests, smoke runs);
- ``show DIR``: the stages, their shapes, frame rates, parameters and default sampler settings;
- ``merge-lora CASCADE ADAPTER[:SCALE] --out NEW``: a cascade with LoRA adapters merged into its
  weights, which loads without peft (docs/finetuning.md).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from imagen_video.cli import UserError

if TYPE_CHECKING:
    from imagen_video.cascade.config import CascadeConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `cascade` subcommand with `assemble`, `init` and `show`."""
    parser = subparsers.add_parser(
        "cascade", help="assemble, init (randomly initialised) or show cascade directories"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    assemble = actions.add_parser("assemble", help="write cascade.json over trained stage folders")
    assemble.add_argument("directory", help="the cascade directory (created if missing)")
    assemble.add_argument(
        "stage_dirs",
        nargs="*",
        metavar="STAGE_DIR",
        help="stage folders to copy in (default: the stage folders already in DIRECTORY)",
    )
    assemble.add_argument(
        "--preset",
        default=None,
        help="preset or CascadeConfig JSON (the --cascade the stages were trained with) giving the defaults "
        "of --name, --text-encoder, --text-max-length (default: the preset whose stage networks the stage "
        "folders hold)",
    )
    assemble.add_argument("--name", help="cascade name")
    assemble.add_argument("--text-encoder", help="load_text_encoder name, e.g. embedded or t5:<dir>")
    assemble.add_argument("--text-max-length", type=int, help="prompt token length")
    assemble.add_argument("--order", help="comma-separated stage names (default: inferred from shapes)")
    assemble.add_argument(
        "--frame-base",
        metavar="STAGE_DIR",
        help="a frame-conditioned base (train --cascade with frame_conditioning) to copy in as base_frames/, "
        "for animate/extend --method finetuned",
    )
    assemble.add_argument(
        "--no-text-check",
        action="store_true",
        help="do not load the text encoder to check its width and record its identity",
    )

    init = actions.add_parser("init", help="write a randomly initialised cascade from a preset")
    init.add_argument("directory")
    init.add_argument("--preset", default="tiny", help="tiny, demo or paper (default: tiny)")
    init.add_argument("--seed", type=int, default=0, help="initialisation seed")
    init.add_argument("--text-encoder", help="override the preset's text encoder name")

    show = actions.add_parser("show", help="describe a cascade directory (or a shipped one: demo)")
    show.add_argument("directory")

    merge = actions.add_parser("merge-lora", help="write a cascade with LoRA adapters merged in")
    merge.add_argument("directory", help="the base cascade directory (or a shipped name, e.g. demo)")
    merge.add_argument("adapters", nargs="+", metavar="ADAPTER[:SCALE]", help="adapter folders")
    merge.add_argument("--out", required=True, help="the new cascade directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action; library errors become one-line user errors."""
    from imagen_video.cascade.directory import CascadeLoadError
    from imagen_video.cascade.stage_io import StageLoadError

    action = {"assemble": _assemble, "init": _init, "show": _show, "merge-lora": _merge_lora}[args.action]
    try:
        return action(args)
    except KeyError as err:
        raise UserError(str(err.args[0])) from None
    except (CascadeLoadError, StageLoadError, ValueError, OSError) as err:
        raise UserError(str(err)) from None


def _assemble(args: argparse.Namespace) -> int:
    from imagen_video.cascade.directory import assemble_cascade
    from imagen_video.train import resolve_cascade

    preset = resolve_cascade(args.preset) if args.preset else _preset_of_stages(args)
    encoder_name = args.text_encoder or preset.text_encoder
    max_length = args.text_max_length or preset.text_max_length
    identity = text_dim = None
    if not args.no_text_check:
        from imagen_video.text import load_text_encoder

        encoder = load_text_encoder(encoder_name, max_length=max_length)
        identity, text_dim = encoder.identity, encoder.dim
    config = assemble_cascade(
        args.directory,
        name=args.name or preset.name,
        text_encoder=encoder_name,
        text_max_length=max_length,
        stage_dirs=args.stage_dirs or None,
        order=[n.strip() for n in args.order.split(",")] if args.order else None,
        text_encoder_identity=identity,
        text_dim=text_dim,
        frame_base=args.frame_base,
    )
    print(
        f"wrote {args.directory}/cascade.json: {' -> '.join(config.stage_names)} "
        f"{'(+ frame-conditioned base) ' if args.frame_base else ''}"
        f"(text encoder {encoder_name}{', identity ' + identity if identity else ''})"
    )
    return 0


def _preset_of_stages(args: argparse.Namespace) -> CascadeConfig:
    """The preset whose stages hold the networks of the stage folders being assembled (their text
    token length is the one they were trained with); ValueError when none matches."""
    from pathlib import Path

    from imagen_video.cascade.directory import stage_folders
    from imagen_video.cascade.presets import CASCADE_PRESETS
    from imagen_video.cascade.stage_io import read_stage_config

    folders = [Path(d) for d in args.stage_dirs] or stage_folders(args.directory)
    stages = [read_stage_config(folder) for folder in folders]
    for make in CASCADE_PRESETS.values():
        preset = make()
        known = {s.name: s.trained_network() for s in preset.stages}
        if stages and all(known.get(s.name) == s.trained_network() for s in stages):
            return preset
    if args.text_max_length is None or args.text_encoder is None:
        raise ValueError(
            "the stage folders match no preset's stages, so their text encoder and token length are "
            "unknown: give --preset (the --cascade they were trained with) or --text-encoder and "
            "--text-max-length"
        )
    return CASCADE_PRESETS["demo"]()


def _init(args: argparse.Namespace) -> int:
    import torch

    from imagen_video.cascade.presets import get_cascade_preset
    from imagen_video.cascade.runner import Cascade

    config = get_cascade_preset(args.preset)
    if args.text_encoder:
        config = config.replace(text_encoder=args.text_encoder)
    cascade = Cascade.from_config(config, generator=torch.Generator().manual_seed(args.seed))
    cascade.save_pretrained(args.directory)
    print(f"wrote a randomly initialised {args.preset!r} cascade to {args.directory}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from imagen_video.cascade.directory import read_cascade_json, resolve_stage_config
    from imagen_video.cascade.frame_base import FRAME_BASE_DIR
    from imagen_video.cascade.registry import resolve_model_dir

    args.directory = resolve_model_dir(args.directory)
    manifest = read_cascade_json(args.directory)
    config = manifest.config
    print(
        f"cascade {config.name!r}: text encoder {config.text_encoder} (max {config.text_max_length} tokens)"
        + (f", identity {manifest.text_encoder_identity}" if manifest.text_encoder_identity else "")
    )
    for stage in config.stages:
        stage = resolve_stage_config(args.directory, stage)
        guidance = stage.guidance
        weight = (
            f"w={guidance.w:g}"
            if guidance.mode == "constant"
            else f"oscillate {guidance.w_high:g}/{guidance.w_low:g} after {guidance.constant_steps}"
        )
        shape = f"{stage.frames}x{stage.height}x{stage.width} @ {stage.fps:g} fps"
        aug = f", aug log-SNR {stage.aug_logsnr:.2f}" if stage.is_super_resolution else ""
        if stage.sampler.t_start < 1.0:
            frames = " (interpolated)" if stage.sampler.start_from == "interpolated" else ""
            aug += f", start t={stage.sampler.t_start:g} from the input{frames}"
        print(
            f"  {stage.name:<8} {stage.kind:<4} {shape}  {stage.sampler.name} {stage.sampler.steps} steps, "
            f"guidance {weight}, threshold {stage.threshold.mode}{aug}"
        )
    if (Path(args.directory) / FRAME_BASE_DIR).is_dir():
        print(f"  frame-conditioned base in {FRAME_BASE_DIR}/ (animate / extend --method finetuned)")
    return 0


def _merge_lora(args: argparse.Namespace) -> int:
    from imagen_video.finetune.lora_option import merge_into_cascade

    written = merge_into_cascade(args.directory, args.adapters, args.out)
    print(f"wrote {written}: {args.directory} with {', '.join(args.adapters)} merged")
    return 0
