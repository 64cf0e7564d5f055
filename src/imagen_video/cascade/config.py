"""Stage and cascade configs (paper sec. 2.2 and Figure 6).

A cascade is a base stage followed by interleaved temporal (TSR) and spatial (SSR) super-resolution
stages. Each :class:`StageConfig` holds its network (:class:`UNetConfig`), its diffusion
parameterization, its output shape and frame rate, its input shape (the previous stage's output), how
its input is upsampled (bilinear in space, frame repetition or blank frames in time, paper sec. 2.3),
its fixed sampling-time noise-augmentation level (sec. 2.5) and its default sampler, guidance
schedule (sec. 2.6.2) and thresholding. :class:`CascadeConfig` validates that the stages chain.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Literal, get_args

from imagen_video.diffusion.config import DiffusionConfig, GuidanceConfig, SamplerConfig, ThresholdConfig
from imagen_video.models.config import UNetConfig
from imagen_video.serialization import JsonConfig

StageKind = Literal["base", "tsr", "ssr"]
TemporalUpsample = Literal["repeat", "blank"]
STAGE_KINDS: tuple[str, ...] = get_args(StageKind)
TEMPORAL_UPSAMPLE: tuple[str, ...] = get_args(TemporalUpsample)
SAMPLING_FIELDS = ("aug_logsnr", "sampler", "guidance", "threshold", "sample_tile")
"""StageConfig fields that only change how a stage is sampled, not its trained network; a cascade
directory's ``cascade.json`` may set them differently from the stage folder's ``config.json``."""
TRAINING_DRAW_FIELDS = ("p_uncond", "aug_t_max", "t_max")
"""DiffusionConfig fields that only change what training draws (text dropout, augmentation and
diffusion times), not the network or what it predicts: a resumed or fine-tuning run may change them."""

_STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _positive_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}.{name}={value!r} must be an integer >= 1")


@dataclasses.dataclass(frozen=True)
class StageConfig(JsonConfig):
    """One diffusion model of the cascade (paper sec. 2.2, Figure 6) and its default sampling settings.

    Shapes are (frames, height, width) of this stage's output; ``cond_*`` are its input shape (the
    previous stage's output, None for the base). At sampling time the input video is upsampled to the
    output shape (``upsample_video`` with ``temporal_upsample``) and noise-augmented at ``aug_logsnr``.
    """

    name: str  # folder name of the stage in a cascade directory, e.g. "base", "tsr1", "ssr2"
    kind: StageKind  # "base" (text -> video), "tsr" (more frames), "ssr" (more pixels)
    unet: UNetConfig  # the denoising network (paper sec. 2.3)
    diffusion: DiffusionConfig  # schedule, prediction and training loss (secs. 2.1, 2.4)
    frames: int  # output T
    height: int  # output H
    width: int  # output W
    fps: float  # frame rate of the output
    cond_frames: int | None = None  # input T (previous stage's output); None for the base
    cond_height: int | None = None  # input H
    cond_width: int | None = None  # input W
    temporal_upsample: TemporalUpsample = "repeat"  # TSR input: "repeat" frames or insert "blank" frames
    aug_logsnr: float = math.log(5.0)  # fixed sampling-time aug level (sec. 2.5: "SNR 3 or 5")
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    guidance: GuidanceConfig = dataclasses.field(default_factory=GuidanceConfig)
    threshold: ThresholdConfig = dataclasses.field(default_factory=ThresholdConfig)
    train_crop: tuple[int, int] | None = None  # (h, w) random training crops (fully conv top stage)
    use_images: bool = False  # joint image-video training (sec. 2.6); base and SSR stages only
    sample_tile: tuple[int, int] | None = None  # (h, w) spatial tiles at sampling time (memory bound)

    def __post_init__(self) -> None:
        owner = f"StageConfig {self.name!r}"
        if not isinstance(self.name, str) or not _STAGE_NAME.match(self.name):
            raise ValueError(
                f"StageConfig.name={self.name!r} must be a folder name of letters, digits, '_', '-', '.'"
            )
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"{owner}: kind={self.kind!r} is not allowed; allowed: {', '.join(STAGE_KINDS)}")
        if self.temporal_upsample not in TEMPORAL_UPSAMPLE:
            raise ValueError(
                f"{owner}: temporal_upsample={self.temporal_upsample!r} is not allowed; "
                f"allowed: {', '.join(TEMPORAL_UPSAMPLE)}"
            )
        for field in ("frames", "height", "width"):
            _positive_int(owner, field, getattr(self, field))
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"{owner}: fps={self.fps!r} must be a positive number")
        if not math.isfinite(self.aug_logsnr):
            raise ValueError(f"{owner}: aug_logsnr={self.aug_logsnr!r} must be a finite float")
        if self.unet.out_channels != self.unet.in_channels:
            raise ValueError(
                f"{owner}: unet.out_channels={self.unet.out_channels} must equal "
                f"in_channels={self.unet.in_channels} (the prediction has z_t's shape)"
            )
        self._check_spatial_divisibility(owner, self.height, self.width, "output")
        self._check_conditioning(owner)
        self._check_sampler_start(owner)
        self._check_training_fields(owner)

    def _check_spatial_divisibility(self, owner: str, height: int, width: int, what: str) -> None:
        factor = 2 ** (len(self.unet.levels) - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"{owner}: {what} size {height}x{width} must be divisible by {factor} "
                f"(the U-Net halves H and W {len(self.unet.levels) - 1} times)"
            )

    def _check_window(self, owner: str, field: str, size: tuple[int, int] | None) -> None:
        """A (h, w) crop or tile must fit the output and suit the U-Net's downsampling."""
        if size is None:
            return
        if not (1 <= size[0] <= self.height and 1 <= size[1] <= self.width):
            raise ValueError(f"{owner}: {field}={size} must fit the output {self.height}x{self.width}")
        self._check_spatial_divisibility(owner, size[0], size[1], field)

    def _check_sampler_start(self, owner: str) -> None:
        if self.kind == "base" and self.sampler.t_start < 1.0:
            raise ValueError(
                f"{owner}: sampler.t_start={self.sampler.t_start} needs an input video; a base stage "
                "starts from pure noise (t_start = 1)"
            )
        if self.kind == "base" and self.diffusion.t_max < 1.0:
            raise ValueError(
                f"{owner}: diffusion.t_max={self.diffusion.t_max} < 1, but a base stage is sampled "
                "from pure noise at t = 1"
            )
        if self.sampler.t_start > self.diffusion.t_max:
            raise ValueError(
                f"{owner}: sampler.t_start={self.sampler.t_start} exceeds diffusion.t_max="
                f"{self.diffusion.t_max}: the network was trained only on t <= {self.diffusion.t_max}"
            )

    def _check_conditioning(self, owner: str) -> None:
        cond = (self.cond_frames, self.cond_height, self.cond_width)
        if self.kind == "base":
            if any(c is not None for c in cond) or self.unet.is_super_resolution:
                raise ValueError(
                    f"{owner}: a base stage has no input video (cond_frames/height/width None, "
                    f"unet.cond_channels 0), got cond {cond} and cond_channels {self.unet.cond_channels}"
                )
            return
        if any(c is None for c in cond):
            raise ValueError(f"{owner}: a {self.kind} stage needs cond_frames, cond_height, cond_width")
        for field in ("cond_frames", "cond_height", "cond_width"):
            _positive_int(owner, field, getattr(self, field))
        if self.unet.cond_channels != self.unet.in_channels:
            raise ValueError(
                f"{owner}: a {self.kind} stage needs unet.cond_channels == in_channels "
                f"({self.unet.in_channels}), got {self.unet.cond_channels}"
            )
        if self.kind == "tsr":
            if (self.cond_height, self.cond_width) != (self.height, self.width):
                raise ValueError(f"{owner}: a tsr stage keeps H x W; cond {cond} vs output {self.shape}")
            if self.frames <= self.cond_frames or self.frames % self.cond_frames:
                raise ValueError(
                    f"{owner}: a tsr stage needs frames ({self.frames}) an integer multiple > 1 of "
                    f"cond_frames ({self.cond_frames})"
                )
        else:
            if self.cond_frames != self.frames:
                raise ValueError(f"{owner}: an ssr stage keeps T; cond {cond} vs output {self.shape}")
            if self.height < self.cond_height or self.width < self.cond_width or cond[1:] == self.shape[1:]:
                raise ValueError(
                    f"{owner}: an ssr stage must enlarge H x W; cond {cond} vs output {self.shape}"
                )

    def _check_training_fields(self, owner: str) -> None:
        self._check_window(owner, "train_crop", self.train_crop)
        self._check_window(owner, "sample_tile", self.sample_tile)
        if self.use_images and self.kind == "tsr":
            raise ValueError(
                f"{owner}: use_images (joint image-video training) is for base and ssr stages only"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Output (T, H, W)."""
        return (self.frames, self.height, self.width)

    @property
    def cond_shape(self) -> tuple[int, int, int] | None:
        """Input (T, H, W), the previous stage's output; None for the base stage."""
        if self.kind == "base":
            return None
        return (self.cond_frames, self.cond_height, self.cond_width)  # type: ignore[return-value]

    @property
    def is_super_resolution(self) -> bool:
        """True for TSR and SSR stages (they condition on an upsampled input video, sec. 2.3)."""
        return self.kind != "base"

    @property
    def temporal_factor(self) -> int:
        """Output frames per input frame (1 for base and SSR stages)."""
        return self.frames // self.cond_frames if self.kind == "tsr" else 1  # type: ignore[operator]

    def architecture(self) -> dict[str, object]:
        """The fields that define the trained network (everything but ``SAMPLING_FIELDS``)."""
        data = self.to_dict()
        for field in SAMPLING_FIELDS:
            data.pop(field)
        return data

    def trained_network(self) -> dict[str, object]:
        """:meth:`architecture` without ``TRAINING_DRAW_FIELDS``: what a checkpoint must share with the
        stage that continues training it."""
        data = self.architecture()
        diffusion = dict(data.pop("diffusion"))  # type: ignore[call-overload]
        for field in TRAINING_DRAW_FIELDS:
            diffusion.pop(field)
        return {**data, "diffusion": diffusion}


@dataclasses.dataclass(frozen=True)
class CascadeConfig(JsonConfig):
    """A cascade of video diffusion models (paper sec. 2.2, Figure 6): one frozen text encoder, a base
    stage, then TSR / SSR stages, each conditioned on the previous stage's output and on the text."""

    name: str  # e.g. "demo", "paper", "tiny"
    text_encoder: str  # a load_text_encoder name: "embedded", "t5:<name-or-dir>", or a local dir
    text_max_length: int  # token length L the prompts are padded / truncated to
    stages: tuple[StageConfig, ...]  # in sampling order, base first

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"CascadeConfig.name={self.name!r} must be a non-empty string")
        if not isinstance(self.text_encoder, str) or not self.text_encoder:
            raise ValueError(
                f"CascadeConfig.text_encoder={self.text_encoder!r} must be a load_text_encoder name"
            )
        _positive_int("CascadeConfig", "text_max_length", self.text_max_length)
        if not self.stages:
            raise ValueError("CascadeConfig.stages must hold at least one stage (the base)")
        names = [stage.name for stage in self.stages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"CascadeConfig: duplicate stage name(s) {duplicates}")
        if self.stages[0].kind != "base":
            raise ValueError(
                f"CascadeConfig: the first stage must be a base stage, got {self.stages[0].kind!r}"
            )
        for previous, stage in zip(self.stages, self.stages[1:], strict=False):
            check_stage_follows(previous, stage)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Stage names in sampling order."""
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> StageConfig:
        """The stage called ``name``; raises KeyError naming the valid stage names."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"cascade {self.name!r} has no stage {name!r}; stages: {', '.join(self.stage_names)}")

    def index(self, name: str) -> int:
        """Position of stage ``name`` in sampling order (KeyError naming the valid names)."""
        return self.stages.index(self.stage(name))

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the last stage."""
        return self.stages[-1].shape

    @property
    def fps(self) -> float:
        """Frame rate of the last stage's output."""
        return self.stages[-1].fps

    def replace_stage(self, stage: StageConfig) -> CascadeConfig:
        """Return a copy with the stage of the same name replaced by ``stage`` (validated again)."""
        self.stage(stage.name)
        return self.replace(stages=tuple(stage if s.name == stage.name else s for s in self.stages))


def check_stage_follows(previous: StageConfig, stage: StageConfig) -> None:
    """Raise ValueError naming ``stage`` unless it can take ``previous``'s output as its input:
    an SR stage whose input shape is ``previous``'s output shape, with the matching frame rate
    (TSR: ``fps = previous fps * temporal factor``; SSR: the same fps) and the same text width."""
    if stage.kind == "base":
        raise ValueError(f"stage {stage.name!r}: a base stage can only be the first stage of a cascade")
    if stage.cond_shape != previous.shape:
        raise ValueError(
            f"stage {stage.name!r}: input shape {stage.cond_shape} (T, H, W) does not match the "
            f"previous stage {previous.name!r} output {previous.shape}"
        )
    expected_fps = previous.fps * stage.temporal_factor
    if not math.isclose(stage.fps, expected_fps, rel_tol=1e-6):
        raise ValueError(
            f"stage {stage.name!r}: fps {stage.fps} does not follow stage {previous.name!r} "
            f"({previous.fps} fps x {stage.temporal_factor} = {expected_fps})"
        )
    if stage.unet.text.dim != previous.unet.text.dim:
        raise ValueError(
            f"stage {stage.name!r}: text width {stage.unet.text.dim} differs from stage "
            f"{previous.name!r} ({previous.unet.text.dim}); all stages share one text encoder"
        )
    if stage.unet.in_channels != previous.unet.in_channels:
        raise ValueError(
            f"stage {stage.name!r}: {stage.unet.in_channels} video channels, stage {previous.name!r} "
            f"has {previous.unet.in_channels}"
        )
