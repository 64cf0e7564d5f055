"""Conditional generation with a cascade: image-to-video, first/last frame, and video extension.

:func:`animate` and :func:`extend` (also ``Cascade.animate`` / ``Cascade.extend``) run the whole
cascade (paper sec. 2.2, Figure 6) with every stage's denoiser wrapped by a known-frame conditioning
of :mod:`imagen_video.cascade.conditioning` (replacement or reconstruction guidance, Video Diffusion
Models sec. 3.1 and eq. 7), or, with ``"finetuned"``, the base sampled by a network that takes the
known frames as input (:mod:`imagen_video.cascade.frame_base`); the known frames go in at each
stage's resolution. Extension is autoregressive (Video Diffusion Models sec. 3.1): each round
conditions a full-length window on the last frames so far and keeps the new ones.

Inputs are float in [0, 1] at the user boundary; a 1-channel (grayscale) input is repeated to RGB
and a 4-channel one is composited over black by its alpha; other sizes are center-cropped to the
cascade's aspect ratio and resized to its output H x W, with one warning.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from imagen_video.cascade.conditioning import (
    DEFAULT_RECONSTRUCTION_WEIGHT,
    KnownFrames,
    check_method,
    conditioned_denoiser,
    resize_frames,
    stage_method,
)
from imagen_video.cascade.config import StageConfig
from imagen_video.cascade.frame_base import FRAME_BASE_DIR, KnownFrameNetwork
from imagen_video.cascade.video_input import center_crop_to_aspect
from imagen_video.diffusion._random import Generators
from imagen_video.diffusion.config import GuidanceConfig, constant_guidance
from imagen_video.samplers import Denoise

if TYPE_CHECKING:
    from imagen_video.cascade.runner import Cascade, CascadeOutput, ProgressCallback
    from imagen_video.cascade.sampling import StageOverride, TextCondition

DEFAULT_METHOD = "reconstruction"
"""Default conditioning method of :func:`extend`, and of :func:`animate` with a cascade that has no
frame-conditioned base; chosen by ``benchmarks/conditional_quality.py`` (docs/conditional.md)."""


EXTEND_GUIDANCE_CAP = 1.0
"""Largest classifier-free guidance weight (eq. 5 convention) :func:`extend` samples a stage with,
unless the caller's ``overrides`` give that stage a guidance: stronger guidance draws the new frames'
object larger than the clip has it, and the clip already says what the video shows
(docs/conditional-measurements.md, "The seam on a base frame, and guidance in an extension")."""


EXTEND_RECONSTRUCTION_WEIGHT = 4.0
"""Reconstruction guidance weight ``w_r`` :func:`extend` samples with unless ``weight`` is given: with
the base's :data:`EXTEND_BASE_STEPS` it holds the clip's own speed across the seam, where ``w_r = 2``
pulls a continuation toward the middle of the speeds the base knows (docs/conditional-measurements.md,
"Sampling an extension")."""

EXTEND_BASE_STEPS = 16
"""Fewest sampler steps :func:`extend` samples the base stage with, unless ``overrides`` set the base's
steps: reconstruction guidance corrects the base's prediction once per step, and the 4 (distilled) or
8 steps of the demo cascades' bases are too few to carry the clip's speed into the new frames
(docs/conditional-measurements.md, "Sampling an extension")."""


def capped_guidance(guidance: GuidanceConfig, cap: float) -> GuidanceConfig:
    """``guidance`` (paper sec. 2.6.2) when no step of it weighs more than ``cap``, else constant
    guidance at ``cap``."""
    peak = guidance.w if guidance.mode == "constant" else max(guidance.w_high, guidance.w_low)
    return guidance if peak <= cap else constant_guidance(cap)


def animate_method(cascade: Cascade) -> str:
    """:func:`animate`'s default method: ``"finetuned"`` where the cascade has a frame-conditioned
    base (first frame and first/last frame are best there, docs/conditional.md), else
    :data:`DEFAULT_METHOD`."""
    return "finetuned" if cascade.frame_base is not None else DEFAULT_METHOD


ANCHOR_NEEDS_GUIDANCE = (
    "anchoring the super-resolution stages needs reconstruction guidance there; the 'replacement' "
    "method has none (use 'reconstruction' or 'finetuned', or leave anchoring off)"
)


def anchors(method: str) -> bool:
    """Whether :func:`extend` anchors the super-resolution stages to their input by default: with
    reconstruction guidance, where it keeps the new frames' object at the clip's size; the
    frame-conditioned base's extensions keep the seam less often anchored (docs/conditional-measurements.md,
    "Anchoring the super-resolution stages")."""
    return method == "reconstruction"


def to_rgb(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) in [0, 1] with C = 1 (grayscale, repeated), 3, or 4 (RGBA, composited over the
    black background) as RGB; ValueError naming the shape otherwise."""
    channels = video.shape[1] if video.dim() == 5 else -1
    if channels == 3:
        return video
    if channels == 1:
        return video.expand(-1, 3, -1, -1, -1)
    if channels == 4:
        return video[:, :3] * video[:, 3:]
    raise ValueError(f"expected (B, C, T, H, W) with 1, 3 or 4 channels, got {tuple(video.shape)}")


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an image file as (3, H, W) float32 in [0, 1]: grayscale is repeated to RGB and an alpha
    channel composites the image over black (the world's background). ValueError naming the path when
    it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            array = np.asarray(image.convert("RGBA" if alpha else "RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from None
    if alpha:
        array = array[..., :3] * array[..., 3:]  # (H, W, 3) over black
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def fit_to_output(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A (B, C, T, H, W) video in [0, 1] as RGB at ``height`` x ``width``: center-cropped to that aspect
    ratio and resized (antialiased bilinear), warning once when its size differs."""
    if not video.is_floating_point():
        raise ValueError(f"input must be a float tensor in [0, 1], got {video.dtype}")
    if float(video.min()) < 0.0 or float(video.max()) > 1.0:
        raise ValueError("input values must lie in [0, 1]")
    video = to_rgb(video.float())
    in_h, in_w = video.shape[-2:]
    if (in_h, in_w) == (height, width):
        return video.contiguous()
    warnings.warn(f"input of {in_w}x{in_h} resized to the cascade's {width}x{height}", stacklevel=3)
    cropped = center_crop_to_aspect(video, height, width)
    return resize_frames(cropped, height, width).clamp(0.0, 1.0).contiguous()


def stage_frames(stages: Sequence[StageConfig]) -> list[int]:
    """Frames each stage outputs over one cascade run (the base's count times the TSR factors)."""
    counts = [stages[0].frames]
    for stage in stages[1:]:
        counts.append(counts[-1] * stage.temporal_factor)
    return counts


def _batch(video: torch.Tensor, dims: int, what: str) -> torch.Tensor:
    """``video`` with a batch axis: (B, ...) of ``dims`` dimensions, or one item without it."""
    if video.dim() == dims - 1:
        video = video[None]
    if video.dim() != dims:
        raise ValueError(f"{what} must have {dims - 1} or {dims} dimensions, got shape {tuple(video.shape)}")
    return video


def _prompt_list(prompt: str | Sequence[str], batch: int) -> list[str]:
    """One prompt per input (a single prompt is shared); ValueError for an empty or mismatched one."""
    prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
    if len(prompts) != batch:
        raise ValueError(f"got {len(prompts)} prompts for {batch} inputs; give one, or one per input")
    for index, text in enumerate(prompts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"prompt {index} is missing or empty")
    return prompts


def sample_known(
    cascade: Cascade,
    known: KnownFrames,
    text: TextCondition,
    *,
    method: str = DEFAULT_METHOD,
    weight: float = DEFAULT_RECONSTRUCTION_WEIGHT,
    keep_input: bool = True,
    generator: Generators = None,
    overrides: Mapping[str, StageOverride] | None = None,
    callback: ProgressCallback | None = None,
    offload: bool = False,
    progress: bool = True,
    guidance_cap: float | None = None,
    base_steps: int | None = None,
    anchor: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Run the whole cascade once with ``known`` frames (top-stage shape, [-1, 1]) conditioning every
    stage by ``method``; returns the top output (N, C, T, H, W) in [0, 1] and each stage's seconds.

    ``keep_input``: every stage keeps the known frames (the output's known frames equal the input);
    otherwise they are the model's own reconstruction. ``weight``: ``w_r`` of reconstruction guidance.
    ``guidance_cap``: stages whose ``overrides`` set no guidance sample with at most this weight
    (:func:`capped_guidance`; None: their own). ``base_steps``: the base samples with at least this
    many steps unless ``overrides`` set its steps (None: its own). ``anchor``: reconstruction
    guidance at the super-resolution stages also keeps their new frames to the stage's input (``low``
    of :func:`~imagen_video.cascade.conditioning.reconstruction_guided_denoiser`).
    """
    check_method(method)
    if anchor and method == "replacement":
        raise ValueError(ANCHOR_NEEDS_GUIDANCE)
    run = cascade.select_stages(None, from_base=True)
    models: dict[str, torch.nn.Module] = {}
    if method == "finetuned":
        run[0], models[run[0].name] = _frame_base(cascade, known, stage_frames(run)[0])
    run = _adjusted(cascade._apply_overrides(run, overrides), overrides or {}, guidance_cap, base_steps)
    counts = dict(zip((s.name for s in run), stage_frames(run), strict=True))
    device = cascade.device

    def wrap(stage: StageConfig, previous: torch.Tensor | None) -> Callable[[Denoise], Denoise]:
        video, mask = known.at_stage(counts[stage.name], stage.height, stage.width)
        video, mask = video.to(device), mask.to(device)
        low = previous if anchor else None
        chosen = stage_method(method, stage.kind)
        return lambda denoise: conditioned_denoiser(
            denoise, video, mask, chosen, weight=weight, generator=generator, keep=keep_input, low=low
        )

    out, timings = cascade._run_stages(run, text, None, generator, callback, offload, progress, wrap, models)
    if keep_input:
        m = known.mask.view(1, 1, -1, 1, 1).to(out.dtype)
        out = out * (1.0 - m) + ((known.video.cpu().float() + 1.0) / 2.0) * m
    return out, timings


def _frame_base(cascade: Cascade, known: KnownFrames, frames: int) -> tuple[StageConfig, torch.nn.Module]:
    """The frame-conditioned base's stage config and its network bound to ``known`` at the base's
    shape (``"finetuned"``, :mod:`imagen_video.cascade.frame_base`); ValueError when the cascade has
    none."""
    if cascade.frame_base is None:
        raise ValueError(
            f"cascade {cascade.config.name!r} has no frame-conditioned base ({FRAME_BASE_DIR}/, and "
            "none applies once a --lora adapter changes the base); use the 'reconstruction' or "
            "'replacement' method"
        )
    config, network = cascade.frame_base
    video, mask = known.at_stage(frames, config.height, config.width)
    return config, KnownFrameNetwork(network, video.to(cascade.device), mask.to(cascade.device))


def _adjusted(
    run: list[StageConfig],
    overrides: Mapping[str, StageOverride],
    guidance_cap: float | None,
    base_steps: int | None,
) -> list[StageConfig]:
    """``run`` with guidance capped at ``guidance_cap`` and the base's steps raised to ``base_steps``
    (None: unchanged), except where ``overrides`` set that stage's guidance or steps."""
    out = []
    for stage in run:
        change = overrides.get(stage.name)
        if guidance_cap is not None and (change is None or change.guidance is None):
            stage = stage.replace(guidance=capped_guidance(stage.guidance, guidance_cap))
        if stage.kind == "base" and base_steps is not None and (change is None or change.steps is None):
            stage = stage.replace(sampler=stage.sampler.replace(steps=max(stage.sampler.steps, base_steps)))
        out.append(stage)
    return out


def _top(cascade: Cascade) -> tuple[StageConfig, int]:
    """The top stage and the frames one cascade run outputs."""
    stages = list(cascade.config.stages)
    return stages[-1], stage_frames(stages)[-1]


def animate(
    cascade: Cascade,
    image: torch.Tensor,
    prompt: str | Sequence[str],
    *,
    last_frame: torch.Tensor | None = None,
    generator: Generators = None,
    **options: object,
) -> CascadeOutput:
    """Image-to-video: ``image`` (C, H, W) or (B, C, H, W) in [0, 1] is the first frame of a video
    following ``prompt`` (one, or one per image); with ``last_frame`` (same layout) also its last.

    ``options``: ``method`` ("replacement", "reconstruction" or "finetuned"; default
    :func:`animate_method`), ``weight`` (w_r), ``keep_input``, ``overrides``, ``callback``,
    ``offload``, ``progress`` as in :func:`sample_known`. Returns the cascade's output
    (B, C, T, H, W) at the top stage's shape and frame rate.
    """
    from imagen_video.cascade.runner import CascadeOutput

    top, total = _top(cascade)
    first = fit_to_output(_batch(image, 4, "image")[:, :, None], top.height, top.width)  # (B, 3, 1, H, W)
    video = torch.zeros(first.shape[0], 3, total, top.height, top.width)
    mask = torch.zeros(total, dtype=torch.bool)
    video[:, :, :1], mask[0] = first, True
    if last_frame is not None:
        last = fit_to_output(_batch(last_frame, 4, "last frame")[:, :, None], top.height, top.width)
        if last.shape[0] != first.shape[0]:
            raise ValueError(f"got {first.shape[0]} first frames and {last.shape[0]} last frames")
        video[:, :, -1:], mask[-1] = last, True
    prompts = _prompt_list(prompt, first.shape[0])
    start = time.perf_counter()
    text = cascade.encode(prompts)
    text_seconds = time.perf_counter() - start
    known = KnownFrames(video * 2.0 - 1.0, mask)
    method = options.pop("method", None) or animate_method(cascade)
    out, timings = sample_known(cascade, known, text, method=method, generator=generator, **options)  # type: ignore[arg-type]
    return CascadeOutput(out, top.fps, timings, text_seconds, list(prompts))


def extension_context(
    clip_frames: int, new_frames: int, window: int, base_factor: int, *, backward: bool = False
) -> tuple[int, int]:
    """``(known, new)`` frames of one extension round of a ``window``-frame cascade run.

    The known frames sit so that the one at the seam (the clip's newest forward, its oldest
    backward) is a base-stage frame: the base then conditions on the frame the new ones continue
    from, not on one up to ``base_factor - 1`` frames before it (a base frame is ``base_factor``
    top-stage frames, so forward the count is one more than a multiple of it, backward a multiple).
    As many of the clip's frames are known as fit beside ``new_frames``, but about half the window
    and at least two base frames, and at least one base frame is new. Forward, a round keeps no new
    frame past the window's last base frame: the TSR stages only hold that frame over the trailing
    ones. ValueError for a clip shorter than two base frames' worth.
    """
    if window < 2 * base_factor:
        raise ValueError("extending needs a base stage of at least two frames")
    minimum = 2 * base_factor if backward else base_factor + 1
    if clip_frames < minimum:
        raise ValueError(
            f"the clip has {clip_frames} frames; extending needs at least {minimum} "
            f"(two frames of the base stage)"
        )
    last = window - base_factor  # top-stage index of the window's last base frame
    room = window if backward else last + 1  # window positions a round may fill
    most = last if backward else last - base_factor + 1
    wanted = min(clip_frames, most, max(minimum, window // 2, room - new_frames))
    offset = 0 if backward else 1  # backward a multiple of base_factor, forward one more
    known = (wanted - offset) // base_factor * base_factor + offset
    return known, min(room - known, new_frames)


def extend(
    cascade: Cascade,
    video: torch.Tensor,
    prompt: str | Sequence[str],
    *,
    frames: int = 16,
    backward: bool = False,
    generator: Generators = None,
    progress: bool = True,
    **options: object,
) -> CascadeOutput:
    """Continue ``video`` (C, T, H, W) or (B, C, T, H, W) in [0, 1], at the top stage's frame rate, by
    ``frames`` new frames following ``prompt`` (before it with ``backward``).

    Autoregressive rounds (Video Diffusion Models sec. 3.1): each conditions one cascade run on the
    last (first, backward) frames so far (:func:`extension_context`) and keeps the new ones. Returns
    (B, C, T + frames, H, W): the input frames followed (preceded) by the new ones. ``options`` as in
    :func:`animate` (``method`` defaults to :data:`DEFAULT_METHOD`, ``weight`` to
    :data:`EXTEND_RECONSTRUCTION_WEIGHT`), ``guidance_cap`` (default :data:`EXTEND_GUIDANCE_CAP`; None
    samples every stage with its own guidance), ``base_steps`` (default :data:`EXTEND_BASE_STEPS`;
    None: the base's own) and ``anchor`` (default :func:`anchors`: with the ``"reconstruction"``
    method).
    """
    from imagen_video.cascade.runner import CascadeOutput

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    top, window = _top(cascade)
    clip = fit_to_output(_batch(video, 5, "video"), top.height, top.width)  # (B, 3, T, H, W)
    prompts = _prompt_list(prompt, clip.shape[0])
    base_factor = window // cascade.config.stages[0].frames
    extension_context(clip.shape[2], frames, window, base_factor, backward=backward)  # checks the length
    start = time.perf_counter()
    text = cascade.encode(prompts)
    text_seconds = time.perf_counter() - start
    timings: dict[str, float] = {}
    added = 0
    method = options.pop("method", None) or DEFAULT_METHOD
    options.setdefault("guidance_cap", EXTEND_GUIDANCE_CAP)
    options.setdefault("base_steps", EXTEND_BASE_STEPS)
    options.setdefault("weight", EXTEND_RECONSTRUCTION_WEIGHT)
    if options.get("anchor") is None:
        options["anchor"] = anchors(str(method))
    while added < frames:
        left = frames - added
        context, new = extension_context(clip.shape[2], left, window, base_factor, backward=backward)
        known_video = torch.zeros(clip.shape[0], 3, window, top.height, top.width)
        mask = torch.zeros(window, dtype=torch.bool)
        seen = slice(window - context, window) if backward else slice(0, context)
        known_video[:, :, seen] = clip[:, :, :context] if backward else clip[:, :, -context:]
        mask[seen] = True
        out, spent = sample_known(
            cascade,
            KnownFrames(known_video * 2.0 - 1.0, mask),
            text,
            method=method,  # type: ignore[arg-type]
            generator=generator,
            progress=progress,
            **options,  # type: ignore[arg-type]
        )
        if backward:
            clip = torch.cat([out[:, :, window - context - new : window - context], clip], dim=2)
        else:
            clip = torch.cat([clip, out[:, :, context : context + new]], dim=2)
        timings = {name: timings.get(name, 0.0) + seconds for name, seconds in spent.items()}
        added += new
    return CascadeOutput(clip, top.fps, timings, text_seconds, list(prompts))
