"""Upper bounds checked before any work starts (docs/reliability.md): seed, sampler steps, and an
estimate of the memory a ``generate`` call needs compared with what the device has.

The memory estimate is a pure function of the cascade config and the call's options, so a request
that cannot fit (``--num-videos 100000``, ``--scale 4096``) is refused in a second, naming the
figure and the flag that would make it fit, instead of failing after minutes or attempting a
terabyte allocation. It is deliberately coarse (an upper-end estimate of the largest tensors, not a
profile): its purpose is to catch requests that are off by orders of magnitude.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from imagen_video.cascade.config import CascadeConfig, StageConfig
from imagen_video.cascade.sampling import StageOverride

MAX_SEED = 2**64
"""Seeds are unsigned 64-bit integers (``torch.Generator.manual_seed``)."""
MAX_STEPS = 100_000
"""Sampler steps per stage; the paper samples with at most a few hundred (sec. 2.7: 256 -> 8)."""
MAX_VIDEOS_PER_PROMPT = 10_000
"""``--num-videos`` bound, checked before the output names are planned."""
MAX_SCALE = 256
"""``--scale`` bound (an integer nearest-neighbour upscale on export)."""
FLOAT_BYTES = 4
ACTIVATIONS_PER_CHANNEL = 12
"""Full-resolution feature maps alive at once in one U-Net forward, per channel of the first level
(residual blocks, normalisation, attention projections and the skip kept for the decoder)."""
VIDEO_COPIES = 8
"""Video-sized float tensors a sampler step keeps (z_t, x_hat, eps, the upsampled and noised input,
the guided pair's conditional and unconditional outputs)."""


@dataclasses.dataclass(frozen=True)
class StageMemory:
    """Estimated peak bytes of one stage of a ``generate`` call."""

    stage: str
    weights: int
    activations: int

    @property
    def total(self) -> int:
        """Weights plus activations."""
        return self.weights + self.activations


def check_seed(seed: int | None) -> None:
    """ValueError unless ``seed`` is None or in [0, 2**64)."""
    if seed is not None and not 0 <= seed < MAX_SEED:
        raise ValueError(f"--seed must be in [0, 2**64), got {seed}")


def check_counts(num_videos: int, scale: int) -> None:
    """ValueError when ``--num-videos`` or ``--scale`` exceed their bounds (before any planning)."""
    if num_videos > MAX_VIDEOS_PER_PROMPT:
        raise ValueError(f"--num-videos must be at most {MAX_VIDEOS_PER_PROMPT}, got {num_videos}")
    if scale > MAX_SCALE:
        raise ValueError(f"--scale must be at most {MAX_SCALE}, got {scale}")


def check_steps(steps: Mapping[str, int | None]) -> None:
    """ValueError naming the stage when a stage's sampler steps exceed :data:`MAX_STEPS`."""
    for stage, count in steps.items():
        if count is not None and count > MAX_STEPS:
            raise ValueError(f"--steps {stage}={count}: at most {MAX_STEPS} sampler steps per stage")


def weight_bytes(model_dir: str | os.PathLike[str], stage: StageConfig) -> int:
    """Bytes of a stage's weights once loaded in float32, from its weights file's size (a file stored
    in float16 / bfloat16 doubles); 0 when the file is missing (the loader then says so)."""
    import torch

    from imagen_video.cascade.stage_io import WEIGHTS_FILE, recorded_weights

    path = Path(model_dir) / stage.name / WEIGHTS_FILE
    if not path.is_file():
        return 0
    _, dtypes = recorded_weights(path.parent, stage.name)
    element = dtypes[0].itemsize if len(dtypes) == 1 else torch.float32.itemsize
    return path.stat().st_size * FLOAT_BYTES // element


def stage_activation_bytes(stage: StageConfig, samples: int, tile: tuple[int, int] | None) -> int:
    """Bytes of a stage's largest tensors for ``samples`` videos: the guided (2x) batch of one U-Net
    forward at the tile (or full) size, plus the sampler's full-size video tensors."""
    frames, height, width = stage.shape
    tile_h, tile_w = tile if tile is not None else (height, width)
    first_level = stage.unet.levels[0].channels
    forward = 2 * samples * frames * tile_h * tile_w * first_level * ACTIVATIONS_PER_CHANNEL
    video = samples * frames * height * width * stage.unet.in_channels * VIDEO_COPIES
    return (forward + video) * FLOAT_BYTES


def estimate_generate_memory(
    config: CascadeConfig,
    *,
    samples: int,
    tiles: Mapping[str, tuple[int, int] | None],
    offload: bool,
    weights: Mapping[str, int],
) -> list[StageMemory]:
    """Peak bytes per stage of generating ``samples`` videos together (batch x videos per prompt).

    ``weights``: each stage's weight bytes (:func:`weight_bytes`); every stage stays on the device
    unless ``offload`` (then only the running one). ``tiles``: a stage's ``--tile`` (or its config's).
    """
    resident = 0 if offload else sum(weights[s.name] for s in config.stages)
    out = []
    for stage in config.stages:
        held = weights[stage.name] if offload else resident
        tile = tiles.get(stage.name, stage.sample_tile)
        out.append(StageMemory(stage.name, held, stage_activation_bytes(stage, samples, tile)))
    return out


def export_bytes(config: CascadeConfig, scale: int) -> int:
    """Bytes to write one video: its float frames, and the uint8 frames upscaled by ``scale``."""
    frames, height, width = config.output_shape
    return frames * height * width * 3 * (FLOAT_BYTES + 2 * scale * scale)


def available_bytes(device: str) -> int | None:
    """Free memory of ``device``: CUDA free memory, else the host's available RAM (None if unknown)."""
    import torch

    target = torch.device(device)
    if target.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(target)[0])
    if target.type != "cpu":
        return None
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"


def fit_advice(
    stages: list[StageMemory],
    available: int,
    *,
    batch_size: int,
    num_videos: int,
    offload: bool,
    export: int,
) -> str | None:
    """None when the largest stage and one export fit in ``available`` bytes; else one line naming the
    figure and the flag that would make it fit (``--batch-size``, ``--tile``, ``--offload``,
    ``--num-videos`` or ``--scale``)."""
    worst = max(stages, key=lambda s: s.total)
    if worst.total <= available and export <= available:
        return None
    if export > available:
        return f"writing one video needs about {_gib(export)}, {_gib(available)} is free; lower --scale"
    need = f"stage {worst.stage} needs about {_gib(worst.total)} for this call, {_gib(available)} is free"
    per_video = worst.activations / (batch_size * num_videos)
    fitting = int((available - worst.weights) // per_video) if available > worst.weights else 0
    if fitting >= num_videos and batch_size > 1:
        return f"{need}; use --batch-size {max(1, fitting // num_videos)}"
    if fitting >= 1 and num_videos > 1:
        smaller = "--batch-size 1 and " if batch_size > 1 else ""
        return f"{need}; use {smaller}at most --num-videos {fitting}"
    if not offload and worst.weights > available / 2:
        return f"{need}; use --offload (keep only the running stage on the device)"
    return f"{need}; sample it in tiles with --tile {worst.stage}=HxW"


def check_generate_fits(
    model_dir: str | os.PathLike[str],
    config: CascadeConfig,
    overrides: Mapping[str, StageOverride],
    *,
    num_prompts: int,
    batch_size: int,
    num_videos: int,
    scale: int,
    offload: bool,
    device: str,
) -> None:
    """Before any model loads: the sampler steps are bounded and the largest batch of the call fits
    the device's free memory (ValueError with one line naming the figure and the flag otherwise)."""
    check_steps({name: override.steps for name, override in overrides.items()})
    available = available_bytes(device)
    if available is None:
        return
    prompts_together = min(batch_size, num_prompts)
    stages = estimate_generate_memory(
        config,
        samples=prompts_together * num_videos,
        tiles={name: o.tile for name, o in overrides.items() if o.tile is not None},
        offload=offload,
        weights={stage.name: weight_bytes(model_dir, stage) for stage in config.stages},
    )
    advice = fit_advice(
        stages,
        available,
        batch_size=prompts_together,
        num_videos=num_videos,
        offload=offload,
        export=export_bytes(config, scale),
    )
    if advice is not None:
        raise ValueError(advice)
