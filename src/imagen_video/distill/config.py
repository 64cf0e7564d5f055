"""Distillation settings and the round plan (paper sec. 2.7; docs/math.md secs. 10-12).

Conventions used by every number here:

- Guidance weights are in the paper's eq. 5 convention, ``x_tilde = (1 + w) x(z, c) - w x(z, null)``
  (w = 0: no guidance). Saharia et al.'s ``W = 1 + w``, so Table 1's "constant 6" is w = 5 and
  "oscillate(15, 1)" is w alternating 14 and 0. The default training range ``[0, 15]`` covers both.
- Step counts are sampler steps of one stage (network evaluations per stage and video).
- A progressive round distills a ``2N``-step DDIM teacher into an ``N``-step student; ``start_steps``
  is the teacher's step count of the first round (256 for the base, 128 for SR stages in Table 1).

Loss (both phases, ``loss="snr_trunc"``): ``max(SNR_t, 1) * ||x_student - x_target||^2``, the
truncated-SNR x-space weighting of Salimans & Ho (2022) that Meng et al. (2022) keep for guided
distillation; ``"v_mse"`` (``(1 + SNR_t) ||x_student - x_target||^2``) is the alternative.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, get_args

from imagen_video.serialization import JsonConfig
from imagen_video.train.config import PRECISIONS, Precision

DistillLoss = Literal["snr_trunc", "v_mse"]
Phase = Literal["guidance", "progressive", "all"]
DISTILL_LOSSES: tuple[str, ...] = get_args(DistillLoss)
PHASES: tuple[str, ...] = get_args(Phase)


def _is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


@dataclasses.dataclass(frozen=True)
class DistillConfig(JsonConfig):
    """Hyper-parameters of guidance distillation (stage 1) and progressive distillation (stage 2).

    Each phase / round trains a fresh AdamW (linear warm-up, then linear decay to 0 over the round
    when ``lr_decay``) and an EMA of the student; the EMA weights become the next round's teacher
    and are what the stage folders hold.
    """

    w_min: float = 0.0  # lower end of the training guidance range (eq. 5 convention)
    w_max: float = 15.0  # upper end (eq. 5 convention; Saharia's W up to 16)
    loss: DistillLoss = "snr_trunc"  # "snr_trunc" (Salimans & Ho / Meng et al.) or "v_mse"
    guidance_steps: int = 1000  # optimiser steps of stage 1 (0: only add the zero-init w-embedding)
    start_steps: int = 256  # DDIM teacher steps of the first progressive round (2N)
    target_steps: int = 8  # student steps after the last round (paper: 8 per stage)
    steps_per_round: int = 1000  # optimiser steps of every progressive round
    batch_size: int = 8  # clips per optimiser step
    lr: float = 1e-4  # peak learning rate of every phase
    warmup_steps: int = 50  # linear warm-up at the start of every phase
    lr_decay: bool = True  # linear decay to 0 over each phase (Salimans & Ho 2022)
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # global gradient-norm clip (None: off)
    ema_decay: float = 0.999  # EMA of the student (with the train package's warm-up)
    teacher_threshold: bool = False  # threshold the teacher's x in the DDIM steps (reference: off)
    image_fraction: float | None = None  # joint image-video batches as in training (None: dataset mix)
    checkpoint_every: int = 200  # optimiser steps between checkpoints (and at every phase end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    seed: int = 0  # data order and the distillation noise generator
    precision: Precision = "fp32"  # "bf16": bf16 autocast of the networks on CUDA; math stays float32

    def __post_init__(self) -> None:
        for name in ("w_min", "w_max", "lr", "adam_eps", "weight_decay", "ema_decay"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"DistillConfig.{name}={getattr(self, name)!r} must be finite")
        if not 0.0 <= self.w_min <= self.w_max:
            raise ValueError(
                f"DistillConfig needs 0 <= w_min <= w_max (eq. 5 convention), got {self.w_min}, {self.w_max}"
            )
        if self.loss not in DISTILL_LOSSES:
            raise ValueError(f"DistillConfig.loss={self.loss!r} is not allowed; allowed: {DISTILL_LOSSES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"DistillConfig.precision={self.precision!r}; allowed: {PRECISIONS}")
        for name in ("guidance_steps", "warmup_steps", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        for name in ("target_steps", "steps_per_round", "batch_size", "checkpoint_every", "keep_checkpoints"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("start_steps", self.start_steps, minimum=2)
        ratio = self.start_steps // self.target_steps
        if self.start_steps % self.target_steps or ratio < 2 or not _is_power_of_two(ratio):
            raise ValueError(
                f"DistillConfig: start_steps={self.start_steps} must be target_steps={self.target_steps} "
                "times a power of two >= 2 (each round halves the step count)"
            )
        if not self.lr > 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(
                f"DistillConfig needs lr > 0 and ema_decay in [0, 1), got {self.lr}, {self.ema_decay}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"DistillConfig.grad_clip={self.grad_clip!r} must be > 0 or None")
        if self.image_fraction is not None and not 0.0 <= self.image_fraction <= 1.0:
            raise ValueError(
                f"DistillConfig.image_fraction={self.image_fraction!r} must be in [0, 1] or None"
            )

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of 0-based optimiser step ``step`` of a phase of ``total`` steps."""
        warm = 1.0 if self.warmup_steps == 0 else min(1.0, (step + 1) / self.warmup_steps)
        decay = 1.0 - step / total if self.lr_decay else 1.0
        return self.lr * warm * decay


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"DistillConfig.{name}={value!r} must be an integer >= {minimum}")


@dataclasses.dataclass(frozen=True)
class Round(JsonConfig):
    """One phase of the plan: guidance distillation, or one halving of the DDIM step count."""

    phase: str  # "guidance" or "progressive"
    index: int  # 0 for guidance, 1, 2, ... for progressive rounds
    train_steps: int  # optimiser steps of this round
    teacher_steps: int | None = None  # progressive: the 2N-step DDIM teacher
    student_steps: int | None = None  # progressive: N

    @property
    def name(self) -> str:
        """Folder name of the round's output stage, e.g. ``guidance`` or ``round1_128steps``."""
        if self.phase == "guidance":
            return "guidance"
        return f"round{self.index}_{self.student_steps}steps"


def distillation_plan(config: DistillConfig, phase: str) -> tuple[Round, ...]:
    """The rounds of ``phase`` ("guidance", "progressive" or "all"): e.g. 256 -> 128 -> ... -> 8.

    Progressive rounds halve the step count from ``start_steps`` down to ``target_steps``
    (docs/math.md sec. 10); the guidance round comes first (sec. 11).
    """
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not allowed; allowed: {', '.join(PHASES)}")
    rounds: list[Round] = []
    if phase in ("guidance", "all"):
        rounds.append(Round("guidance", 0, config.guidance_steps))
    if phase in ("progressive", "all"):
        teacher, index = config.start_steps, 1
        while teacher > config.target_steps:
            rounds.append(Round("progressive", index, config.steps_per_round, teacher, teacher // 2))
            teacher, index = teacher // 2, index + 1
    return tuple(rounds)


def paper_distill_config(kind: str) -> DistillConfig:
    """Table 1's schedule: 256 -> 8 steps for the base, 128 -> 8 for TSR / SSR stages (sec. 3.4)."""
    if kind not in ("base", "tsr", "ssr"):
        raise ValueError(f"stage kind {kind!r} is not allowed; allowed: base, tsr, ssr")
    return DistillConfig(start_steps=256 if kind == "base" else 128, target_steps=8)


def tiny_distill_config() -> DistillConfig:
    """Tests and smoke runs: two-step phases, 8 -> 2 steps, small batches, checkpoint every step."""
    return DistillConfig(
        guidance_steps=2,
        start_steps=8,
        target_steps=2,
        steps_per_round=2,
        batch_size=2,
        lr=1e-3,
        warmup_steps=0,
        checkpoint_every=1,
        keep_checkpoints=3,
        ema_decay=0.9,
    )
