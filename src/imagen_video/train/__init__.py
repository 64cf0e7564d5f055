"""Training of one cascade stage (paper secs. 2.2, 2.5, 2.6; docs/math.md secs. 3, 8, 9).

- :func:`train_step`: one optimiser step (conditioning dropout, SR conditioning upsampling + noise
  augmentation, diffusion loss, gradient accumulation and clipping, bf16 autocast on CUDA);
- :func:`train_stage`: the loop (AdamW with warm-up, EMA, previews, CSV log, progress bar), crash-safe
  checkpoints with exact resume, torchrun data parallelism (DDP / FSDP), ``out_dir/stage`` upkeep;
- :class:`TrainConfig`: its hyper-parameters; :class:`EMA`; checkpoint directory helpers.

Importing this package imports torch but loads no weights.
"""

from imagen_video.train.checkpoint import find_latest_checkpoint, read_checkpoint, write_checkpoint
from imagen_video.train.config import (
    TrainConfig,
    TrainSetupError,
    load_train_config,
    lr_at,
    resolve_cascade,
    tiny_train_config,
)
from imagen_video.train.ema import EMA
from imagen_video.train.loop import TrainResult, train_stage
from imagen_video.train.step import stage_loss, train_step

__all__ = [
    "EMA",
    "TrainConfig",
    "TrainResult",
    "TrainSetupError",
    "find_latest_checkpoint",
    "load_train_config",
    "lr_at",
    "read_checkpoint",
    "resolve_cascade",
    "stage_loss",
    "tiny_train_config",
    "train_stage",
    "train_step",
    "write_checkpoint",
]
