"""Training hyper-parameters of one cascade stage (paper sec. 2.2: every stage trains independently).

:class:`TrainConfig` holds only optimisation and bookkeeping settings; what the stage *is* (its U-Net,
diffusion and shapes) lives in ``imagen_video.cascade.config.StageConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from imagen_video.serialization import JsonConfig
from imagen_video.train.fsdp import OPTIMIZERS

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DATA_ORDER_FIELDS: tuple[str, ...] = ("seed", "batch_size", "grad_accum", "image_fraction")
"""TrainConfig fields that define which samples each step sees (a resume that changes them warns)."""


class TrainSetupError(ValueError):
    """A run cannot start as asked (e.g. an output directory of another run, a mismatched checkpoint)."""


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Optimiser, EMA, schedule and bookkeeping settings for ``train_stage``.

    The optimiser is AdamW (or 8-bit AdamW, ``optimizer``) with a linear learning-rate warm-up,
    followed by a constant rate. One optimiser step consumes ``grad_accum`` micro-batches of
    ``batch_size`` clips on every rank, so the effective batch is ``batch_size * grad_accum * world_size``.
    """

    batch_size: int = 8
    """Clips per micro-batch on each rank."""
    grad_accum: int = 1
    """Micro-batches whose gradients are summed (averaged) before one optimiser step."""
    lr: float = 1e-4
    """Peak learning rate, reached at the end of the warm-up."""
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    """Decoupled (AdamW) weight decay."""
    warmup_steps: int = 1000
    """Linear warm-up length in optimiser steps: lr(step) = lr * min(1, (step + 1) / warmup_steps)."""
    grad_clip: float | None = 1.0
    """Clip the global gradient L2 norm to this value (None: no clipping)."""
    ema_decay: float = 0.9999
    """Final EMA decay of the weights used for sampling."""
    ema_warmup: bool = True
    """Use decay min(ema_decay, (1 + n) / (10 + n)) after n updates, so early EMA tracks the weights."""
    max_steps: int = 10_000
    """Total optimiser steps of the run (a resumed run continues up to the same total)."""
    checkpoint_every: int = 1000
    """Write a checkpoint (and refresh ``out_dir/stage``) every N optimiser steps."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep on disk."""
    preview_every: int | None = None
    """Sample previews from the EMA weights every N steps (``previews/step_N/grid.png`` and one GIF
    per prompt); None: with every checkpoint; 0: never."""
    preview_prompts: tuple[str, ...] = ()
    """Prompts of the previews; empty: the captions of the first ``num_previews`` dataset items."""
    num_previews: int = 2
    """Number of previews when ``preview_prompts`` is empty."""
    preview_sampling_steps: int = 8
    """DDIM steps of a preview sample (docs/math.md sec. 5)."""
    log_every: int = 10
    """Append a row to ``train_log.csv`` every N steps (mean loss over those steps)."""
    seed: int = 0
    """Seeds the model initialisation, the data order and the training noise generator."""
    num_workers: int = 0
    """DataLoader worker processes per rank."""
    precision: Precision = "fp32"
    """"fp32", or "bf16" (bf16 autocast of the network forward, on CUDA only; math stays float32)."""
    image_fraction: float | None = None
    """Joint training (paper sec. 2.6): fraction of micro-batch slots drawn from image items; None
    keeps the dataset's own image/video mix. Ignored for stages that do not use images."""
    fsdp: bool = False
    """Shard parameters with FSDP instead of replicating them with DistributedDataParallel (one process:
    a one-rank group, so ``cpu_offload`` applies on one device too)."""
    cpu_offload: bool = False
    """With ``fsdp``: keep the sharded parameters, gradients and optimizer state in host memory
    (FSDP2's ``CPUOffloadPolicy``; docs/performance.md, "Paper scale")."""
    optimizer: str = "adamw"
    """"adamw" (torch, fp32 state) or "adamw8bit" (torchao's 8-bit AdamW: one byte per state value plus
    a scale per 256-value block; the ``scale`` extra). A run resumes only with the optimizer it saved."""
    activation_checkpointing: bool = False
    """Recompute each space-time block's forward in the backward pass (the U-Net's
    ``gradient_checkpointing``): activation memory of about one block's input per block instead of all
    its intermediates, for about a third more compute (docs/performance.md, "Paper scale")."""
    skip_uncaptioned: bool = False
    """In a captioned media folder, leave media without a ``.txt`` caption out (counted) instead of
    stopping with an error."""

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "grad_accum",
            "max_steps",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "num_previews",
            "preview_sampling_steps",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("warmup_steps", "preview_every", "num_workers", "seed"):
            value = getattr(self, name)
            if name == "preview_every" and value is None:
                continue
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 0, got {value!r}")
        if self.seed >= 2**62:  # seeds of every rank's generator (seed + 1_000_003 * (rank + 1)) stay < 2**64
            raise ValueError(f"TrainConfig.seed must be < 2**62, got {self.seed!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ValueError(f"TrainConfig.adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        if not self.adam_eps > 0 or self.weight_decay < 0:
            raise ValueError(
                "TrainConfig.adam_eps must be > 0 and weight_decay >= 0, got "
                f"{self.adam_eps!r}, {self.weight_decay!r}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.cpu_offload and not self.fsdp:
            raise ValueError("TrainConfig.cpu_offload needs fsdp (--cpu-offload needs --fsdp)")
        if self.image_fraction is not None and not 0.0 <= self.image_fraction <= 1.0:
            raise ValueError(
                f"TrainConfig.image_fraction must be in [0, 1] or None, got {self.image_fraction!r}"
            )


def preview_interval(config: TrainConfig) -> int:
    """Steps between previews: ``preview_every``, or ``checkpoint_every`` when it is None (0: never)."""
    return config.checkpoint_every if config.preview_every is None else config.preview_every


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up to ``config.lr``, then constant."""
    if config.warmup_steps == 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / config.warmup_steps)


def tiny_train_config() -> TrainConfig:
    """A preset for tests and smoke runs: small batches, a short warm-up, frequent checkpoints."""
    return TrainConfig(
        batch_size=2,
        lr=1e-3,
        warmup_steps=10,
        ema_decay=0.99,
        max_steps=50,
        checkpoint_every=10,
        log_every=1,
        num_previews=1,
        preview_sampling_steps=4,
    )


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """TrainConfig from a JSON file (or the defaults), with the non-None ``overrides`` applied."""
    config = read_train_config(path) if path is not None else TrainConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config


def read_train_config(path: str | Path) -> TrainConfig:
    """A TrainConfig JSON file; ValueError with one line naming the file and the field when it is not
    valid JSON, not an object, or a field is unknown, of the wrong type or out of range."""
    import json

    from imagen_video.serialization import MALFORMED_ERRORS

    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--config {str(source)!r} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {str(source)!r} must hold a JSON object, got {type(data).__name__}")
    try:
        return TrainConfig.from_dict(data)
    except MALFORMED_ERRORS as err:
        raise ValueError(f"--config {str(source)!r}: {err}") from None


def resolve_cascade(spec: str) -> Any:
    """A ``CascadeConfig`` from a preset name ("tiny", "demo", "paper"), a cascade directory, its
    ``cascade.json``, or a plain CascadeConfig JSON file (docs/CONTRIBUTING.md, "Cascade directory")."""
    from imagen_video.cascade.directory import read_cascade_config
    from imagen_video.cascade.presets import get_cascade_preset

    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"cascade config file does not exist: {path}")
        return read_cascade_config(path)
    return get_cascade_preset(spec)
