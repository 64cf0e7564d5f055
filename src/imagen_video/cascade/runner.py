"""The cascade runner: text in, video out through the base and the interleaved TSR / SSR stages
(paper sec. 2.2, Figure 6).

:class:`Cascade` holds a :class:`CascadeConfig`, one network per stage and a lazily loaded frozen text
encoder. :meth:`Cascade.generate` encodes the prompts once and runs the stages in order, each with its
own sampler, steps, guidance schedule, thresholding and noise-augmentation level (see
:mod:`imagen_video.cascade.sampling`); one tqdm bar follows every step of every stage.
:meth:`Cascade.upsample` runs the SR stages on an existing video (sec. 2.2: the SR models are general
purpose video super-resolution models). One ``torch.Generator`` makes the whole cascade reproducible.
"""

from __future__ import annotations

import dataclasses
import os
import time
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from imagen_video.cascade.config import CascadeConfig, StageConfig
from imagen_video.cascade.directory import (
    CascadeLoadError,
    CascadeManifest,
    read_cascade_json,
    resolve_stage_config,
    write_cascade_json,
)
from imagen_video.cascade.frame_base import FRAME_BASE_DIR, check_frame_base, load_frame_base
from imagen_video.cascade.pipeline import PipelineMixin, save_output
from imagen_video.cascade.registry import resolve_model_dir
from imagen_video.cascade.sampling import StageOverride, TextCondition, on_device, sample_stage
from imagen_video.cascade.stage_io import (
    StageLoadError,
    build_stage_model,
    check_weights_match,
    load_stage_weights,
    save_stage,
)
from imagen_video.cascade.video_input import fit_to_stage
from imagen_video.device import resolve_device
from imagen_video.diffusion._random import Generators
from imagen_video.prompts import check_prompts
from imagen_video.samplers import Denoise, StepInfo
from imagen_video.text.base import TextEncoder


@dataclasses.dataclass(frozen=True)
class CascadeStep:
    """Progress of the cascade after one sampler step (given to ``generate``'s ``callback``)."""

    stage: str  # stage name
    stage_index: int  # position of the stage among the stages being run
    step: int  # 0-based step within the stage
    steps: int  # steps of this stage
    done: int  # steps finished over the whole run, this one included
    total: int  # steps of the whole run
    x_hat: torch.Tensor | None = None  # (N, C, T, H, W) the step's x prediction; the output at the last step


@dataclasses.dataclass(frozen=True)
class CascadeOutput:
    """A cascade's result: ``video`` (B, C, T, H, W) float32 on the CPU in [0, 1] at ``fps``;
    ``timings`` maps each stage name run to its wall-clock seconds; ``text_seconds`` is the encoder's."""

    video: torch.Tensor
    fps: float
    timings: dict[str, float]
    text_seconds: float
    prompts: list[str | None]

    def save(self, path: str | os.PathLike[str], *, format: str | None = None, scale: int = 1) -> list[Path]:
        """Write the videos (mp4, gif, webp, PNG frames, or ``grid``: one contact-sheet PNG); see
        :func:`imagen_video.cascade.pipeline.save_output`."""
        return save_output(self, path, format=format, scale=scale)


ProgressCallback = Callable[[CascadeStep], None]


class Cascade(PipelineMixin):
    """A cascade of video diffusion models (paper sec. 2.2): config, stage networks, text encoder.

    Build it with :meth:`from_pretrained` (a cascade directory), or :meth:`from_config` (random
    weights, e.g. for tests). ``text_encoder`` may be given to share an encoder; otherwise it is
    loaded on first use with ``load_text_encoder(config.text_encoder, max_length=config.text_max_length)``.
    """

    def __init__(
        self,
        config: CascadeConfig,
        models: Mapping[str, torch.nn.Module],
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        text_encoder: TextEncoder | None = None,
        text_encoder_identity: str | None = None,
        frame_base: tuple[StageConfig, torch.nn.Module] | None = None,
    ) -> None:
        """Wrap stage networks (one per stage name) built from ``config``'s UNetConfigs (they are put
        in eval mode without gradients). ``dtype``: the weights' dtype, float32 (default) or, on a GPU,
        bfloat16; on a GPU the networks always run under bf16 autocast. ``frame_base``: the optional
        frame-conditioned base (:mod:`imagen_video.cascade.frame_base`) of conditional generation."""
        missing = [name for name in config.stage_names if name not in models]
        if missing:
            raise ValueError(f"no network for stage(s) {missing}; stages: {', '.join(config.stage_names)}")
        self.device = torch.device(device)
        if dtype not in (None, torch.float32) and self.device.type == "cpu":
            raise ValueError(f"dtype {dtype} needs a GPU device; on the CPU the cascade runs in float32")
        self.config = config
        self.models = {name: models[name].eval().requires_grad_(False) for name in config.stage_names}
        self.dtype = dtype
        self._text_encoder = text_encoder
        self._text_identity = text_encoder_identity
        if frame_base is not None:
            check_frame_base(frame_base[0], config.stages[0])
            frame_base = (frame_base[0], frame_base[1].eval().requires_grad_(False))
        self.frame_base = frame_base

    # ------------------------------------------------------------------------------------------
    # construction, save / load
    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: CascadeConfig,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
        text_encoder: TextEncoder | None = None,
    ) -> Cascade:
        """A cascade with freshly initialised networks (``generator`` makes them reproducible)."""
        from imagen_video.models import VideoUNet

        models = {
            s.name: VideoUNet(s.unet, generator=generator).to(device=device, dtype=dtype)
            for s in config.stages
        }
        return cls(config, models, device=device, dtype=dtype, text_encoder=text_encoder)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype | None = None,
        text_encoder: TextEncoder | None = None,
        manifest: CascadeManifest | None = None,
        verify: bool = True,
    ) -> Cascade:
        """Load a cascade: a shipped one by name (``"demo"``, ``"demo-distilled"``, see
        :mod:`imagen_video.cascade.registry`) or a cascade directory (``cascade.json`` + one stage
        folder per stage, see :mod:`imagen_video.cascade.directory`). ``device="auto"``: CUDA, then
        MPS, then the CPU.

        ``manifest``: that directory's ``cascade.json`` when the caller has read it already.
        Raises :class:`CascadeLoadError` when ``path`` is not a cascade, or naming the stage whose
        folder, config or weights are missing or do not match, or hold NaN / Inf; ``verify=False``
        skips checking each weights file against its recorded sha256 (docs/reliability.md).
        """
        path = resolve_model_dir(path)
        device = resolve_device(device)
        manifest = manifest if manifest is not None else read_cascade_json(path)
        stages, models = [], {}
        for stage in manifest.config.stages:
            resolved = resolve_stage_config(path, stage)
            try:
                state = load_stage_weights(Path(path) / stage.name, resolved, verify=verify)
                model = build_stage_model(resolved)
                check_weights_match(resolved, model, state)
            except StageLoadError as err:
                raise CascadeLoadError(str(err)) from err
            model.load_state_dict(state, strict=True)
            models[stage.name] = model.to(device=device, dtype=dtype)
            stages.append(resolved)
        try:
            frame_base = load_frame_base(path, stages[0], device=device, dtype=dtype, verify=verify)
        except StageLoadError as err:
            raise CascadeLoadError(str(err)) from err
        config = manifest.config.replace(stages=tuple(stages))
        return cls(
            config,
            models,
            device=device,
            dtype=dtype,
            text_encoder=text_encoder,
            text_encoder_identity=manifest.text_encoder_identity,
            frame_base=frame_base,
        )

    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write the cascade directory: every stage folder, then ``cascade.json`` (all atomic)."""
        root = Path(path)
        for stage in self.config.stages:
            save_stage(root / stage.name, stage, self.models[stage.name])
        if self.frame_base is not None:
            save_stage(root / FRAME_BASE_DIR, *self.frame_base)
        identity = self._text_encoder.identity if self._text_encoder is not None else self._text_identity
        write_cascade_json(root, CascadeManifest(self.config, identity))
        return root

    # ------------------------------------------------------------------------------------------
    # text
    # ------------------------------------------------------------------------------------------

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen text encoder (paper sec. 2.2), loaded on first use."""
        if self._text_encoder is None:
            from imagen_video.text import load_text_encoder

            self._text_encoder = load_text_encoder(
                self.config.text_encoder, max_length=self.config.text_max_length, device=self.device
            )
        encoder = self._text_encoder
        if encoder.dim != self.text_dim:
            raise ValueError(
                f"text encoder {self.config.text_encoder!r} gives width {encoder.dim}, "
                f"but the cascade's networks take {self.text_dim}"
            )
        identity = encoder.identity
        if self._text_identity is not None and identity != self._text_identity:
            warnings.warn(
                f"text encoder identity {identity!r} differs from the one the cascade was saved with "
                f"({self._text_identity!r}); outputs may differ from what the stages were trained on",
                stacklevel=2,
            )
            self._text_identity = identity
        return encoder

    @property
    def text_dim(self) -> int:
        """Width D of the text tokens the stage networks take."""
        return self.config.stages[0].unet.text.dim

    def encode(self, prompts: Sequence[str]) -> TextCondition:
        """Encode prompts once for all stages (sec. 2.2); long prompts are truncated with one warning
        (also when the embeddings come from a cache)."""
        from imagen_video.text.base import TextTruncationWarning, truncation_message

        encoder = self.text_encoder
        embeddings = encoder.encode(list(prompts), warn_truncation=False)
        if any(embeddings.truncated):
            message = truncation_message(
                sum(embeddings.truncated), len(prompts), encoder.max_length, encoder.identity
            )
            warnings.warn(message, TextTruncationWarning, stacklevel=2)
        return TextCondition(
            tokens=embeddings.tokens.to(self.device, torch.float32),  # (B, L, D)
            mask=embeddings.mask.to(self.device),  # (B, L)
            null=torch.zeros(len(prompts), dtype=torch.bool, device=self.device),
        )

    # ------------------------------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------------------------------

    def select_stages(self, stages: Sequence[str] | None, *, from_base: bool) -> list[StageConfig]:
        """See :func:`select_stages`."""
        return select_stages(self.config, stages, from_base=from_base)

    def _apply_overrides(
        self, stages: list[StageConfig], overrides: Mapping[str, StageOverride] | None
    ) -> list[StageConfig]:
        overrides = dict(overrides or {})
        for name in overrides:
            self.config.stage(name)
        unused = [name for name in overrides if name not in {s.name for s in stages}]
        if unused:
            raise ValueError(f"overrides for stage(s) {unused} that are not run: {[s.name for s in stages]}")
        return [overrides[s.name].apply(s) if s.name in overrides else s for s in stages]

    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        generator: Generators = None,
        num_videos_per_prompt: int = 1,
        overrides: Mapping[str, StageOverride] | None = None,
        callback: ProgressCallback | None = None,
        offload: bool = False,
        stages: Sequence[str] | None = None,
        progress: bool = True,
    ) -> CascadeOutput:
        """Generate ``num_videos_per_prompt`` videos per prompt through the cascade (paper Figure 6).

        ``prompts``: one prompt or a list. Returns :class:`CascadeOutput` with ``video``
        (len(prompts) * num_videos_per_prompt, C, T, H, W)
        in [0, 1], grouped by prompt, at the last run stage's fps. ``overrides``: per-stage sampling
        changes; ``stages``: run only the first stages (a prefix starting at the base); ``offload``:
        keep only the running stage on the device; ``callback`` gets a :class:`CascadeStep` per step.
        ``generator``: one for the whole run, or one per output video (that video's noise then comes
        from its generator alone, whatever else shares the batch).
        """
        prompts = check_prompts([prompts] if isinstance(prompts, str) else prompts)
        _check_count(num_videos_per_prompt)
        run = self._apply_overrides(self.select_stages(stages, from_base=True), overrides)
        start = time.perf_counter()
        text = self.encode(prompts).repeat_interleave(num_videos_per_prompt)
        text_seconds = time.perf_counter() - start
        video, timings = self._run_stages(run, text, None, generator, callback, offload, progress)
        expanded = [p for p in prompts for _ in range(num_videos_per_prompt)]
        return CascadeOutput(video, run[-1].fps, timings, text_seconds, expanded)  # type: ignore[arg-type]

    def upsample(
        self,
        video: torch.Tensor,
        *,
        fps: float | None = None,
        prompt: str | None = None,
        generator: torch.Generator | None = None,
        overrides: Mapping[str, StageOverride] | None = None,
        callback: ProgressCallback | None = None,
        offload: bool = False,
        stages: Sequence[str] | None = None,
        progress: bool = True,
    ) -> CascadeOutput:
        """Run the SR stages on an existing video (B, C, T, H, W) in [0, 1] (paper sec. 2.2).

        The video is center-cropped to the first stage's input aspect ratio and resized to its input
        H x W (:func:`fit_to_stage`); every frame is kept, and stages sample in windows of their frame
        count. Text-conditioned with ``prompt``, null-conditioned (learned null tokens) without.
        ``fps``: the input's frame rate (default: the rate the first stage's input has in the cascade);
        output fps = ``fps`` times the run TSR stages' temporal factors.
        """
        run = self._apply_overrides(self.select_stages(stages, from_base=False), overrides)
        previous = fit_to_stage(video, run[0]) * 2.0 - 1.0  # (B, C, T, H, W) in [-1, 1]
        batch = previous.shape[0]
        start = time.perf_counter()
        if prompt is None:
            text = TextCondition.unconditional(batch, self.text_dim, self.device)
        else:
            text = self.encode(check_prompts([prompt])).repeat_interleave(batch)
        text_seconds = time.perf_counter() - start
        out, timings = self._run_stages(run, text, previous, generator, callback, offload, progress)
        out_fps = fps if fps is not None else self.config.stages[self.config.index(run[0].name) - 1].fps
        for stage in run:
            out_fps *= stage.temporal_factor
        return CascadeOutput(out, out_fps, timings, text_seconds, [prompt] * batch)

    # conditional generation: image-to-video, first/last frame, extension (cascade/conditional.py)

    def animate(
        self, image: torch.Tensor, prompt: str | Sequence[str], **options: typing.Any
    ) -> CascadeOutput:
        """Image-to-video: ``image`` (C, H, W) or (B, C, H, W) in [0, 1] becomes the first frame (and
        ``last_frame=`` the last) of a video following ``prompt``; see
        :func:`imagen_video.cascade.conditional.animate` for the options (method, w_r, keep_input)."""
        from imagen_video.cascade.conditional import animate

        return animate(self, image, prompt, **options)

    def extend(
        self, video: torch.Tensor, prompt: str | Sequence[str], **options: typing.Any
    ) -> CascadeOutput:
        """Continue ``video`` (C, T, H, W) or (B, C, T, H, W) in [0, 1] by ``frames=`` new frames
        (before it with ``backward=True``); see :func:`imagen_video.cascade.conditional.extend`."""
        from imagen_video.cascade.conditional import extend

        return extend(self, video, prompt, **options)

    def _run_stages(
        self,
        run: list[StageConfig],
        text: TextCondition,
        previous: torch.Tensor | None,
        generator: Generators,
        callback: ProgressCallback | None,
        offload: bool,
        progress: bool,
        wrap: Callable[[StageConfig, torch.Tensor | None], Callable[[Denoise], Denoise] | None] | None = None,
        models: Mapping[str, torch.nn.Module] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Sample ``run`` in order from ``previous``; return the last output in [0, 1] and the timings.
        ``wrap(stage, previous)`` gives the wrapper of that stage's denoiser, if any (``previous``: the
        input it samples from, [-1, 1], None at the base), and ``models`` networks
        that replace the cascade's for some stages (conditional generation)."""
        networks = {**self.models, **(models or {})}
        from tqdm.auto import tqdm

        if offload:
            for model in networks.values():
                model.to("cpu")
        total = sum(stage.sampler.steps for stage in run)
        timings: dict[str, float] = {}
        autocast = torch.bfloat16 if self.device.type == "cuda" else None
        with tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True) as bar:
            done = 0
            for index, stage in enumerate(run):
                bar.set_description(f"{stage.name} ({index + 1}/{len(run)})")
                start = time.perf_counter()

                def on_step(info: StepInfo, stage: StageConfig = stage, index: int = index) -> None:
                    nonlocal done
                    done += 1
                    bar.set_postfix_str(f"step {info.step + 1}/{info.steps}", refresh=False)
                    bar.update(1)
                    if callback is not None:
                        step = CascadeStep(stage.name, index, info.step, info.steps, done, total, info.x_hat)
                        callback(step)

                with on_device(networks[stage.name], self.device, offload) as model:
                    previous = sample_stage(
                        model,
                        stage,
                        text,
                        previous,
                        generator=generator,
                        callback=on_step,
                        autocast_dtype=autocast,
                        wrap=wrap(stage, previous) if wrap is not None else None,
                    )
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                timings[stage.name] = time.perf_counter() - start
        video = typing.cast(torch.Tensor, previous)  # (N, C, T, H, W) in [-1, 1]
        return ((video + 1.0) / 2.0).clamp(0.0, 1.0).cpu(), timings


def select_stages(
    config: CascadeConfig, stages: Sequence[str] | None, *, from_base: bool
) -> list[StageConfig]:
    """The named stages in sampling order; they must be consecutive and start at the base when
    ``from_base`` (generate), or be SR stages otherwise (upsample). None: every (SR) stage."""
    all_stages = list(config.stages)
    if stages is None:
        return all_stages if from_base else [s for s in all_stages if s.kind != "base"]
    if isinstance(stages, str) or not stages:
        raise ValueError(f"stages must be a non-empty list of stage names, got {stages!r}")
    indices = sorted(config.index(name) for name in stages)
    if len(set(indices)) != len(indices) or indices != list(range(indices[0], indices[-1] + 1)):
        raise ValueError(f"stages {list(stages)} must be consecutive; order: {', '.join(config.stage_names)}")
    if from_base and indices[0] != 0:
        raise ValueError(f"generate starts at the base stage {config.stages[0].name!r}; got {list(stages)}")
    if not from_base and indices[0] == 0:
        raise ValueError("upsample runs super-resolution stages only; leave out the base stage")
    return [all_stages[i] for i in indices]


def _check_count(num_videos_per_prompt: int) -> None:
    if (
        isinstance(num_videos_per_prompt, bool)
        or not isinstance(num_videos_per_prompt, int)
        or (num_videos_per_prompt < 1)
    ):
        raise ValueError(f"num_videos_per_prompt must be an integer >= 1, got {num_videos_per_prompt!r}")
