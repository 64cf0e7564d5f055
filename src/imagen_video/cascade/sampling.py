"""Sampling one stage of the cascade (paper secs. 2.2-2.7; docs/math.md secs. 3b, 6-8, 12).

A stage takes the text embeddings and (for SR stages) the previous stage's output, upsamples that
input to its own shape (bilinear in space, frame repetition / blank frames in time, sec. 2.3),
noise-augments it at the stage's fixed ``aug_logsnr`` (sec. 2.5), and runs its sampler from
``z_1 ~ N(0, I)`` with a denoiser that applies classifier-free guidance as ONE batched cond + uncond
forward (eq. 5, sec. 2.6.1; a guidance-distilled network instead takes ``guidance_w`` in a single
pass, sec. 2.7) and thresholds x_hat (sec. 2.6.2).

Inputs longer than the stage's frame count are sampled in overlapping windows of that count: at
every step each window is denoised with its own slice of the conditioning video and the x_hat
predictions are averaged where windows overlap, so the sampler runs once over the whole video and
the windows stay consistent (a MultiDiffusion-style fusion; the paper samples fixed-length blocks).
A stage with ``sample_tile`` (h, w) is sampled the same way in overlapping spatial tiles, which bounds
the memory of the highest-resolution stage; for a fully convolutional stage (sec. 2.3, trained on
crops) a tile sees what a training crop saw.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import torch

from imagen_video.cascade.config import StageConfig
from imagen_video.diffusion._random import Generators
from imagen_video.diffusion.augment import noise_augment
from imagen_video.diffusion.config import GuidanceConfig, ThresholdConfig, no_guidance
from imagen_video.diffusion.guidance import Denoise, GuidanceSchedule, guided_denoiser, threshold
from imagen_video.diffusion.parameterization import to_x
from imagen_video.diffusion.schedule import alpha_sigma, logsnr_from_t
from imagen_video.models import interpolate_frames, upsample_video
from imagen_video.samplers import Callback, initial_noise, run_sampler


@dataclasses.dataclass(frozen=True)
class StageOverride:
    """Per-call changes to a stage's sampling settings; None keeps the stage's default."""

    steps: int | None = None  # sampler steps (paper: 256 base / 128 SR; 8 distilled)
    sampler: str | None = None  # "ancestral", "ddim" or "stochastic"
    guidance: GuidanceConfig | None = None  # constant or oscillating schedule (sec. 2.6.2)
    threshold: ThresholdConfig | None = None  # none / static / dynamic (sec. 2.6.2)
    aug_logsnr: float | None = None  # sampling-time noise-augmentation level (sec. 2.5)
    tile: tuple[int, int] | None = None  # (h, w) spatial tiles at sampling time (memory bound)
    t_start: float | None = None  # SR stages: start from the noised upsampled input at this t (SDEdit)
    start_from: str | None = None  # "upsampled" or "interpolated" frames as that start (TSR stages)

    def apply(self, stage: StageConfig) -> StageConfig:
        """``stage`` with these overrides applied (validated by the configs)."""
        sampler = stage.sampler
        if self.sampler is not None:
            sampler = sampler.replace(name=self.sampler)
        if self.steps is not None:
            sampler = sampler.replace(steps=self.steps)
        if self.t_start is not None:
            sampler = sampler.replace(t_start=self.t_start)
        if self.start_from is not None:
            sampler = sampler.replace(start_from=self.start_from)
        return stage.replace(
            sampler=sampler,
            guidance=self.guidance if self.guidance is not None else stage.guidance,
            threshold=self.threshold if self.threshold is not None else stage.threshold,
            aug_logsnr=self.aug_logsnr if self.aug_logsnr is not None else stage.aug_logsnr,
            sample_tile=self.tile if self.tile is not None else stage.sample_tile,
        )


@dataclasses.dataclass(frozen=True)
class TextCondition:
    """Text conditioning of a batch: tokens (N, L, D), mask (N, L) bool and ``null`` (N,) bool, True
    where the sample is unconditional (the network's learned null tokens replace its text)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    null: torch.Tensor

    @classmethod
    def unconditional(cls, batch: int, dim: int, device: torch.device | str) -> TextCondition:
        """A null-conditioned batch (no prompt): every sample uses the learned null tokens."""
        return cls(
            tokens=torch.zeros(batch, 1, dim, device=device),
            mask=torch.zeros(batch, 1, dtype=torch.bool, device=device),
            null=torch.ones(batch, dtype=torch.bool, device=device),
        )

    def repeat_interleave(self, repeats: int) -> TextCondition:
        """Each sample repeated ``repeats`` times in a row (several videos per prompt)."""
        tensors = (self.tokens, self.mask, self.null)
        return TextCondition(*(t.repeat_interleave(repeats, dim=0) for t in tensors))

    @property
    def all_null(self) -> bool:
        """True when no sample has text (guidance then has nothing to amplify)."""
        return bool(self.null.all())


NetworkCall = Callable[..., torch.Tensor]


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """Autocast the network to ``dtype`` (e.g. bf16 on GPUs); sampler arithmetic stays float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def frame_windows(total: int, window: int, align: int = 1) -> list[int]:
    """Start frames of overlapping windows of ``window`` frames covering ``total`` frames.

    Consecutive windows overlap by about a quarter window; starts are multiples of ``align`` (a TSR
    stage's temporal factor, so each window begins on an input frame) and the last window ends at
    ``total``. A video no longer than one window is one window of ``total`` frames.
    """
    if total <= window:
        return [0]
    stride = max(align, ((window - max(1, window // 4)) // align) * align)
    starts = list(range(0, total - window + 1, stride))
    if starts[-1] != total - window:
        starts.append(total - window)
    return starts


def windowed(
    denoise_window: Callable[[torch.Tensor, torch.Tensor, int, slice], torch.Tensor],
    total: int,
    window: int,
    align: int = 1,
) -> Denoise:
    """A denoiser over ``total`` frames from one over ``window`` frames: x_hat is averaged over the
    overlapping windows of :func:`frame_windows` (``denoise_window(z, logsnr, step, frames)``)."""
    starts = frame_windows(total, window, align)
    if len(starts) == 1:
        return lambda z, logsnr, step: denoise_window(z, logsnr, step, slice(0, total))

    def denoise(z_t: torch.Tensor, logsnr_t: torch.Tensor, step: int) -> torch.Tensor:
        x_sum = torch.zeros_like(z_t)  # (N, C, T, H, W)
        count = torch.zeros(total, dtype=z_t.dtype, device=z_t.device)  # (T,)
        for start in starts:
            frames = slice(start, start + window)
            x_sum[:, :, frames] += denoise_window(z_t[:, :, frames], logsnr_t, step, frames)
            count[frames] += 1
        return x_sum / count.view(1, 1, -1, 1, 1)

    return denoise


Region = tuple[slice, slice, slice]
"""(frames, rows, columns) of a window or tile of the stage's output."""


def spatial_tiles(height: int, width: int, tile: tuple[int, int] | None) -> list[tuple[slice, slice]]:
    """(rows, columns) of overlapping ``tile`` (h, w) tiles covering ``height`` x ``width``, placed
    like :func:`frame_windows` (about a quarter tile of overlap); one tile for ``None``."""
    if tile is None:
        return [(slice(0, height), slice(0, width))]
    rows = [slice(r, r + min(tile[0], height)) for r in frame_windows(height, tile[0])]
    cols = [slice(c, c + min(tile[1], width)) for c in frame_windows(width, tile[1])]
    return [(r, c) for r in rows for c in cols]


def tiled(
    denoise_region: Callable[[torch.Tensor, torch.Tensor, int, Region], torch.Tensor],
    height: int,
    width: int,
    tile: tuple[int, int] | None,
) -> Callable[[torch.Tensor, torch.Tensor, int, slice], torch.Tensor]:
    """A frame-window denoiser from one over spatial tiles: x_hat averaged where tiles overlap."""
    tiles = spatial_tiles(height, width, tile)
    if len(tiles) == 1:
        return lambda z, logsnr, step, frames: denoise_region(z, logsnr, step, (frames, *tiles[0]))

    def denoise(z: torch.Tensor, logsnr: torch.Tensor, step: int, frames: slice) -> torch.Tensor:
        x_sum = torch.zeros_like(z)  # (N, C, T_window, H, W)
        count = torch.zeros(height, width, dtype=z.dtype, device=z.device)
        for rows, cols in tiles:
            x_sum[..., rows, cols] += denoise_region(z[..., rows, cols], logsnr, step, (frames, rows, cols))
            count[rows, cols] += 1
        return x_sum / count

    return denoise


def make_stage_denoiser(
    model: NetworkCall,
    stage: StageConfig,
    text: TextCondition,
    cond_video: torch.Tensor | None,
    aug_logsnr: torch.Tensor | None,
    autocast_dtype: torch.dtype | None = None,
) -> Denoise:
    """``denoise(z_t, logsnr_t, step) -> x_hat`` for one stage over the full frame range (sec. 3b).

    Guided networks: :func:`guided_denoiser` (one batched cond + uncond forward per step, eq. 5);
    guidance-distilled networks (``unet.use_guidance_embedding``): one forward with ``guidance_w``
    set to the schedule's weight of the step (sec. 2.7). Null-conditioned batches skip guidance.
    The network runs under autocast to ``autocast_dtype`` when given (bf16 on GPUs).
    """
    prediction = stage.diffusion.prediction
    schedule = GuidanceSchedule(no_guidance() if text.all_null else stage.guidance)
    distilled = stage.unet.use_guidance_embedding
    frames_total = cond_video.shape[2] if cond_video is not None else stage.frames

    def network(
        z: torch.Tensor,
        logsnr: torch.Tensor,
        drop: torch.Tensor,
        region: Region,
        guidance_w: torch.Tensor | None,
    ) -> torch.Tensor:
        repeat = z.shape[0] // text.tokens.shape[0]  # 1, or 2 for the cond + uncond batch
        extra = {}
        if cond_video is not None:
            frames, rows, cols = region
            extra = {
                "cond_video": cond_video[:, :, frames, rows, cols].repeat(repeat, 1, 1, 1, 1),
                "aug_logsnr": aug_logsnr.repeat(repeat),  # type: ignore[union-attr]
            }
        if guidance_w is not None:
            extra["guidance_w"] = guidance_w
        with _autocast(z.device, autocast_dtype):
            return model(
                z,
                logsnr,
                text.tokens.repeat(repeat, 1, 1),
                text.mask.repeat(repeat, 1),
                drop_text=drop | text.null.repeat(repeat),
                **extra,
            )

    def denoise_region(z: torch.Tensor, logsnr: torch.Tensor, step: int, region: Region) -> torch.Tensor:
        if distilled:
            w = torch.full((z.shape[0],), schedule.weight(step), device=z.device)  # (N,)
            drop = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
            x_hat = to_x(network(z, logsnr, drop, region, w).to(z.dtype), z, logsnr, prediction)
            return threshold(x_hat, stage.threshold)
        guided = guided_denoiser(
            lambda z2, l2, d2: network(z2, l2, d2, region, None), prediction, schedule, stage.threshold
        )
        return guided(z, logsnr, step)

    denoise_window = tiled(denoise_region, stage.height, stage.width, stage.sample_tile)
    return windowed(denoise_window, frames_total, stage.frames, stage.temporal_factor)


def upsample_input(stage: StageConfig, previous: torch.Tensor) -> torch.Tensor:
    """The previous output (N, C, T_in, H_in, W_in) upsampled to this stage's (T_in * temporal factor,
    H, W): bilinear in space, frame repetition or blank frames in time (sec. 2.3)."""
    _, channels, frames_in, height_in, width_in = previous.shape
    if (height_in, width_in) != (stage.cond_height, stage.cond_width) or channels != stage.unet.in_channels:
        raise ValueError(
            f"stage {stage.name!r} takes {stage.unet.in_channels}-channel {stage.cond_height}x"
            f"{stage.cond_width} input, got {channels}-channel {height_in}x{width_in}"
        )
    size = (frames_in * stage.temporal_factor, stage.height, stage.width)
    return upsample_video(previous.float(), size=size, temporal=stage.temporal_upsample)


def start_frames(stage: StageConfig, upsampled: torch.Tensor) -> torch.Tensor:
    """The frames a truncated start noises (``SamplerConfig.start_from``): the upsampled input
    (:func:`upsample_input`) itself, or its input frames (every k-th, k the temporal factor) linearly
    interpolated in time (:func:`~imagen_video.models.interpolate_frames`)."""
    factor = stage.temporal_factor
    if stage.sampler.start_from == "upsampled" or factor == 1:
        return upsampled
    return interpolate_frames(upsampled[:, :, ::factor], factor)


def truncated_start(stage: StageConfig, upsampled: torch.Tensor, z_1: torch.Tensor) -> torch.Tensor:
    """``z_t0 = alpha_t0 x_0 + sigma_t0 z_1``: the upsampled input's :func:`start_frames` ``x_0`` noised
    to ``t0 = stage.sampler.t_start`` by the forward process (eq. 1), where the sampler starts (SDEdit)."""
    upsampled = start_frames(stage, upsampled)
    t0 = torch.tensor([stage.sampler.t_start], dtype=torch.float64)
    alpha, sigma = alpha_sigma(logsnr_from_t(t0, stage.diffusion.schedule))
    return float(alpha) * upsampled.to(z_1) + float(sigma) * z_1


def sample_stage(
    model: NetworkCall,
    stage: StageConfig,
    text: TextCondition,
    previous: torch.Tensor | None,
    *,
    generator: Generators = None,
    callback: Callback | None = None,
    autocast_dtype: torch.dtype | None = None,
    wrap: Callable[[Denoise], Denoise] | None = None,
) -> torch.Tensor:
    """Sample one stage; returns its output (N, C, T, H, W) float32 in [-1, 1] (paper sec. 2.2).

    ``previous``: the previous stage's output in [-1, 1] for SR stages (any number of frames; inputs
    longer than the stage's frame count are sampled in windows), None for the base. Draws, in order,
    the augmentation noise and z_1 from ``generator``; the final x is clipped to [-1, 1]. ``wrap``
    wraps the stage's denoiser (conditioning on known frames, :mod:`imagen_video.cascade.conditioning`).
    """
    batch = text.tokens.shape[0]
    device = text.tokens.device
    if stage.kind == "base":
        if previous is not None:
            raise ValueError(f"stage {stage.name!r} is a base stage and takes no input video")
        upsampled = cond_video = aug = None
        frames = stage.frames
    else:
        if previous is None:
            raise ValueError(f"stage {stage.name!r} is a {stage.kind} stage and needs an input video")
        upsampled = upsample_input(stage, previous.to(device))  # sec. 2.3
        cond_video, aug = noise_augment(
            upsampled,
            config=stage.diffusion,
            training=False,
            aug_logsnr=stage.aug_logsnr,
            generator=generator,
        )  # sec. 2.5
        frames = cond_video.shape[2]
    z_1 = initial_noise(
        (batch, stage.unet.in_channels, frames, stage.height, stage.width), generator=generator, device=device
    )
    if upsampled is not None and stage.sampler.t_start < 1.0:
        z_1 = truncated_start(stage, upsampled, z_1)
    denoise = make_stage_denoiser(model, stage, text, cond_video, aug, autocast_dtype)
    if wrap is not None:
        denoise = wrap(denoise)
    with torch.no_grad():
        x = run_sampler(
            stage.sampler,
            denoise,
            z_1,
            schedule_cfg=stage.diffusion.schedule,
            generator=generator,
            callback=callback,
        )
    return x.float().clamp(-1.0, 1.0)


@contextlib.contextmanager
def on_device(model: torch.nn.Module, device: torch.device, offload: bool) -> Iterator[torch.nn.Module]:
    """Keep ``model`` on ``device`` while in use; with ``offload`` move it back to the CPU afterwards."""
    model.to(device)
    try:
        yield model
    finally:
        if offload:
            model.to("cpu")
