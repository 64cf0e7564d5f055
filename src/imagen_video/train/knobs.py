"""The training knobs of ``imagen-video train`` and the advice printed before a run starts.

Each option overrides one :class:`~imagen_video.train.config.TrainConfig` field (docs/training.md
documents every field); :func:`schedule_warnings` names settings that make a short run useless: a
warm-up longer than the run (the learning rate never reaches its peak) or an EMA whose half-life
exceeds the run (the saved EMA weights then average mostly early, barely trained weights).
"""

from __future__ import annotations

import argparse
import math

from imagen_video.train.config import TrainConfig

KNOBS: tuple[tuple[str, str], ...] = (
    ("warmup_steps", "linear learning-rate warm-up length in steps"),
    ("ema_decay", "decay of the EMA weights that are saved and sampled"),
    ("checkpoint_every", "write a checkpoint, OUT/stage and OUT/loss.png every N steps"),
    ("keep_checkpoints", "how many of the newest checkpoints to keep"),
    ("preview_every", "write previews every N steps (0: never)"),
    ("log_every", "append a row to OUT/train_log.csv every N steps"),
)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def add_knob_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--warmup-steps``, ``--ema-decay``, ``--checkpoint-every``, ``--keep-checkpoints``,
    ``--preview-every``, ``--preview-prompt`` and ``--log-every``, each showing its default."""
    defaults = TrainConfig()
    for field, text in KNOBS:
        default = getattr(defaults, field)
        kind = float if field == "ema_decay" else _non_negative_int
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
    overrides: dict[str, object] = {field: getattr(args, field) for field, _ in KNOBS}
    overrides["preview_prompts"] = tuple(args.preview_prompt) or None
    return overrides


def ema_half_life(decay: float) -> float:
    """Steps after which an EMA of decay ``d`` weighs a weight by one half: ln(1/2) / ln(d)."""
    return math.inf if decay >= 1.0 else (0.0 if decay <= 0.0 else math.log(0.5) / math.log(decay))


def schedule_warnings(config: TrainConfig) -> list[str]:
    """One line per setting that does not fit the run's length (``max_steps``)."""
    lines = []
    if config.max_steps < config.warmup_steps:
        peak = config.lr * config.max_steps / config.warmup_steps
        lines.append(
            f"max_steps {config.max_steps} < warmup_steps {config.warmup_steps}: the learning rate ends "
            f"at {peak:.3g}, below its peak {config.lr:g}; lower --warmup-steps"
        )
    half_life = ema_half_life(config.ema_decay)
    if half_life > config.max_steps:
        lines.append(
            f"ema_decay {config.ema_decay:g} has a half-life of {half_life:.0f} steps, longer than the run "
            f"({config.max_steps} steps): the saved EMA weights lag the trained ones; lower --ema-decay "
            f"(e.g. {0.5 ** (1 / max(1.0, config.max_steps / 10)):.4g}: a half-life of a tenth of the run)"
        )
    return lines
