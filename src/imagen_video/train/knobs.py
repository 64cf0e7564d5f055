"""Advice printed before a training run starts.

:func:`schedule_warnings` names settings that make a short run useless: a
warm-up longer than the run (the learning rate never reaches its peak) or an EMA whose half-life
exceeds the run (the saved EMA weights then average mostly early, barely trained weights).
"""

from __future__ import annotations

import math

from imagen_video.train.config import TrainConfig


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
