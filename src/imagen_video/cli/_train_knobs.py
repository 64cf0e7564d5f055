"""The training knobs of ``imagen-video train``: one option per :class:`~imagen_video.train.TrainConfig`
field that short runs need to change (docs/training.md documents every field).

The defaults shown in ``--help`` are written here, so that building the parser imports no torch; a
test checks them against ``TrainConfig``'s own.
"""

from __future__ import annotations

import argparse

from imagen_video.cli._types import non_negative_int

KNOBS: tuple[tuple[str, object, str], ...] = (
    ("warmup_steps", 1000, "linear learning-rate warm-up length in steps"),
    ("ema_decay", 0.9999, "decay of the EMA weights that are saved and sampled"),
    ("checkpoint_every", 1000, "write a checkpoint, OUT/stage and OUT/loss.png every N steps"),
    ("keep_checkpoints", 3, "how many of the newest checkpoints to keep"),
    ("preview_every", None, "write previews every N steps; 0: never"),
    ("log_every", 10, "append a row to OUT/train_log.csv every N steps"),
)
"""(TrainConfig field, its default, help text)."""


def add_knob_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--warmup-steps``, ``--ema-decay``, ``--checkpoint-every``, ``--keep-checkpoints``,
    ``--preview-every``, ``--preview-prompt`` and ``--log-every``, each showing its default."""
    for field, default, text in KNOBS:
        kind = float if field == "ema_decay" else non_negative_int
        shown = "with every checkpoint" if default is None else default
        parser.add_argument(
            f"--{field.replace('_', '-')}", type=kind, default=None, help=f"{text} (default {shown})"
        )
    parser.add_argument(
        "--preview-prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="a preview prompt; repeatable (default: captions of the first dataset clips)",
    )


def knob_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The TrainConfig fields given on the command line (None for those left out)."""
    overrides: dict[str, object] = {field: getattr(args, field) for field, _, _ in KNOBS}
    overrides["preview_prompts"] = tuple(args.preview_prompt) or None
    return overrides
