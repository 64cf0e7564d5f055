"""Video-text datasets for one cascade stage: clips at the stage's shape and frame rate (paper secs. 2.2, 3).

Each stage of the cascade is trained independently (paper sec. 2.2) on data "processed to the
appropriate spatial and temporal resolutions by spatial resizing and frame skipping" (sec. 2.2, 3).
A :class:`VideoTextDataset` turns manifest records into model-ready samples for one
:class:`StageDataSpec`:

* ``video``: ``(C, T, H, W)`` float in [-1, 1], a clip sampled at the stage's fps by
  frame skipping, aspect-cropped and resized with antialiased bilinear filtering, optionally
  randomly cropped to ``crop`` (the fully convolutional top stage, sec. 2.3);
* ``cond_video`` (SR stages): the previous stage's view of the *same* clip, ``(C, Tc, Hc, Wc)``:
  every k-th frame (``k = T / Tc``) downsampled with antialiasing. The training step upsamples it with
  ``imagen_video.models.upsample_video`` and noise-augments it (docs/math.md sec. 8);
* ``image_mode``: True for an image packed into a sequence of T frames (sec. 2.6, docs/math.md
  sec. 9). Text conditioning is per sample (the network's ``text_tokens (B, L, D)``), so a packed
  sample holds T copies of ONE image with its caption, not T unrelated images under one caption
  (which would pair T-1 frames with a wrong caption). The frames are independent for the network
  (temporal attention/convolution masked) and receive independent noise, so the copies act as T
  denoising examples of that image; with ``crop`` set each copy gets its own random crop.

Randomness is a function of ``(seed, epoch, slot, record)`` only (:class:`SampleKey`), so a sample
never depends on worker assignment or order and a resumed run sees exactly the same data.
Unreadable media and videos too short for the clip are skipped (the next record of the same kind is
used, deterministically), logged once per file and counted across DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from imagen_video.data.decode import MediaDecodeError, decode_media, probe_media
from imagen_video.data.manifest import DatasetError, MediaRecord, load_records
from imagen_video.data.transforms import (
    ASPECT_CROPS,
    AspectCrop,
    aspect_crop_box,
    clip_frame_indices,
    conditioning_clip,
    crop_frames,
    frame_stride,
    random_crop_offset,
    resize_frames,
    to_float_frames,
    to_model_video,
)
from imagen_video.serialization import JsonConfig

__all__ = ["SKIP_REASONS", "SampleKey", "StageDataSpec", "VideoTextDataset", "collate_video_text"]

logger = logging.getLogger(__name__)

SKIP_REASONS = ("unreadable", "too_short")
"""Why a record was skipped: the decoder failed on it, or the video is shorter than the clip span."""


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"StageDataSpec.{name}={value!r} must be an integer >= 1")


@dataclasses.dataclass(frozen=True)
class StageDataSpec(JsonConfig):
    """What one cascade stage trains on (paper secs. 2.2, 2.3, 2.6, 3).

    ``frames, height, width, fps``: the stage's output clip. ``cond_*``: the previous stage's output
    shape (None for the base stage); a TSR stage has ``cond_frames < frames``, an SSR stage smaller
    ``cond_height/cond_width``. ``crop``: random ``(h, w)`` training crops of the output (fully
    convolutional top stage, sec. 2.3); the conditioning clip is cropped to the same region.
    ``use_images``: joint image-video training (sec. 2.6), base and SSR stages only.
    ``aspect_crop``: how media is cropped to ``width / height`` before resizing ("center"/"random").
    """

    frames: int
    height: int
    width: int
    fps: float
    cond_frames: int | None = None
    cond_height: int | None = None
    cond_width: int | None = None
    crop: tuple[int, int] | None = None
    use_images: bool = False
    aspect_crop: AspectCrop = "center"

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width"):
            _positive_int(name, getattr(self, name))
        if (
            isinstance(self.fps, bool)
            or not isinstance(self.fps, (int, float))
            or not (math.isfinite(self.fps) and self.fps > 0)
        ):
            raise ValueError(f"StageDataSpec.fps={self.fps!r} must be a positive number")
        if self.aspect_crop not in ASPECT_CROPS:
            raise ValueError(f"StageDataSpec.aspect_crop={self.aspect_crop!r} not in {ASPECT_CROPS}")
        self._check_conditioning()
        self._check_crop()

    def _check_conditioning(self) -> None:
        cond = (self.cond_frames, self.cond_height, self.cond_width)
        if all(c is None for c in cond):
            return
        if any(c is None for c in cond):
            raise ValueError(f"StageDataSpec: cond_frames/height/width must be all set or all None: {cond}")
        for name in ("cond_frames", "cond_height", "cond_width"):
            _positive_int(name, getattr(self, name))
        if self.frames % self.cond_frames:
            raise ValueError(f"StageDataSpec.cond_frames={self.cond_frames} must divide frames={self.frames}")
        if self.cond_height > self.height or self.cond_width > self.width:
            cond_size, size = f"{self.cond_height}x{self.cond_width}", f"{self.height}x{self.width}"
            raise ValueError(f"StageDataSpec: cond size {cond_size} exceeds the output size {size}")
        if self.use_images and self.cond_frames < self.frames:
            raise ValueError(
                "StageDataSpec: use_images=True is for base and SSR stages only; a temporal SR stage "
                f"(cond_frames={self.cond_frames} < frames={self.frames}) trains on videos (paper sec. 2.6)"
            )

    def _check_crop(self) -> None:
        if self.crop is None:
            return
        if len(self.crop) != 2 or not all(isinstance(c, int) and c >= 1 for c in self.crop):
            raise ValueError(f"StageDataSpec.crop={self.crop!r} must be (h, w) with positive integers")
        if self.crop[0] > self.height or self.crop[1] > self.width:
            raise ValueError(f"StageDataSpec.crop={self.crop} must fit {self.height}x{self.width}")
        if self.is_super_resolution and (
            self.crop[0] * self.cond_height % self.height or self.crop[1] * self.cond_width % self.width
        ):
            raise ValueError(
                f"StageDataSpec.crop={self.crop} must scale to whole conditioning pixels: crop_h * "
                f"{self.cond_height}/{self.height} and crop_w * {self.cond_width}/{self.width} must be whole"
            )

    @classmethod
    def from_stage(cls, stage: Any, *, aspect_crop: AspectCrop = "center") -> StageDataSpec:
        """Build from a cascade ``StageConfig`` (shapes, fps, ``train_crop``, ``use_images``)."""
        return cls(
            frames=stage.frames,
            height=stage.height,
            width=stage.width,
            fps=float(stage.fps),
            cond_frames=stage.cond_frames,
            cond_height=stage.cond_height,
            cond_width=stage.cond_width,
            crop=None if stage.train_crop is None else tuple(stage.train_crop),
            use_images=bool(stage.use_images),
            aspect_crop=aspect_crop,
        )

    @property
    def is_super_resolution(self) -> bool:
        """True for SR stages (they return a ``cond_video``)."""
        return self.cond_frames is not None

    @property
    def temporal_factor(self) -> int:
        """k = frames / cond_frames: the conditioning clip is every k-th frame (1 for base and SSR)."""
        return self.frames // self.cond_frames if self.is_super_resolution else 1

    @property
    def video_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the returned ``video`` (the crop size when ``crop`` is set)."""
        return (self.frames, *(self.crop or (self.height, self.width)))

    @property
    def cond_shape(self) -> tuple[int, int, int] | None:
        """(Tc, Hc, Wc) of the returned ``cond_video`` (scaled to the crop); None for the base stage."""
        if not self.is_super_resolution:
            return None
        crop_h, crop_w = self.crop or (self.height, self.width)
        cond_h, cond_w = crop_h * self.cond_height // self.height, crop_w * self.cond_width // self.width
        return (self.cond_frames, cond_h, cond_w)


class _TooShort(Exception):
    """A video has fewer frames than the clip's span at the stage's frame rate."""


class SampleKey(NamedTuple):
    """Index of a sample: the record, plus the epoch and slot that seed its random augmentation.

    A plain ``int`` index means ``SampleKey(index, dataset.epoch, 0)``. Samplers that draw a record
    more than once per epoch give each draw its own ``slot`` (its position in the epoch's order).
    """

    index: int
    epoch: int = 0
    slot: int = 0


class VideoTextDataset(Dataset):
    """Map-style dataset of clips (and packed images) for one stage; shardable by any index sampler.

    ``data`` is a dataset path (see :func:`imagen_video.data.manifest.load_records`) or records.
    Image records are dropped when ``spec.use_images`` is False. See the module docstring for the
    sample format, image packing, determinism and skipping.
    """

    def __init__(
        self,
        data: str | Path | Sequence[MediaRecord],
        spec: StageDataSpec,
        *,
        seed: int = 0,
        default_fps: float | None = None,
        skip_uncaptioned: bool = False,
    ) -> None:
        if isinstance(data, (str, Path)):
            records = load_records(data, default_fps=default_fps, skip_uncaptioned=skip_uncaptioned)
        else:
            records = list(data)
        kept = [r for r in records if spec.use_images or r.kind == "video"]
        if not kept:
            what = "records" if spec.use_images else "video records (this stage does not train on images)"
            where = data if isinstance(data, (str, Path)) else "the given records"
            raise DatasetError(f"empty dataset: no {what} in {where}")
        if len(kept) < len(records):
            logger.info("stage does not use images: left out %d image record(s)", len(records) - len(kept))
        self.records: list[MediaRecord] = kept
        self.spec = spec
        self.seed = int(seed)
        self.epoch = 0
        self.video_indices = tuple(i for i, r in enumerate(kept) if r.kind == "video")
        self.image_indices = tuple(i for i, r in enumerate(kept) if r.kind == "image")
        pools = (self.video_indices, self.image_indices)
        self._position = {i: p for pool in pools for p, i in enumerate(pool)}  # record -> place in its pool
        # skip state, in shared memory so DataLoader workers report to the main process:
        # per record 0 = fine or untried, 1 + SKIP_REASONS index = skipped for that reason
        self._skip_state = torch.zeros(len(kept), dtype=torch.int8).share_memory_()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Epoch that seeds plain ``int`` indices (without it every epoch repeats the same clips).

        Workers copy the dataset when a DataLoader iterator starts, so call this before each epoch's
        iterator; persistent workers never see it: give them :class:`SampleKey` s instead.
        """
        self.epoch = int(epoch)

    @property
    def skipped(self) -> int:
        """Number of distinct records skipped so far (all workers of this process's DataLoaders)."""
        return int((self._skip_state > 0).sum())

    def skip_counts(self) -> dict[str, int]:
        """Skipped records per reason (:data:`SKIP_REASONS`)."""
        return {reason: int((self._skip_state == code + 1).sum()) for code, reason in enumerate(SKIP_REASONS)}

    def skipped_files(self) -> list[tuple[Path, str]]:
        """(media path, reason) of every skipped record."""
        state = self._skip_state.tolist()
        return [(self.records[i].media, SKIP_REASONS[s - 1]) for i, s in enumerate(state) if s]

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        """Sample for ``key``; a skipped record is replaced by the next record of the same kind."""
        key = SampleKey(int(key), self.epoch, 0) if not isinstance(key, tuple) else SampleKey(*key)
        if not 0 <= key.index < len(self.records):
            raise IndexError(f"index {key.index} out of range for a dataset of {len(self.records)} records")
        pool = self.video_indices if self.records[key.index].kind == "video" else self.image_indices
        start = self._position[key.index]
        for step in range(len(pool)):
            index = pool[(start + step) % len(pool)]
            if self._skip_state[index]:
                continue
            sample = self._try_load(index, key)
            if sample is not None:
                return sample
        raise DatasetError(
            f"no usable {self.records[key.index].kind} records: all {len(pool)} were skipped "
            f"({self.skip_counts()})"
        )

    def _try_load(self, index: int, key: SampleKey) -> dict[str, Any] | None:
        """Load record ``index`` or mark it skipped (logged once) and return None."""
        record = self.records[index]
        rng = np.random.default_rng([self.seed, key.epoch, key.slot, index])
        try:
            return self._load(index, record, rng)
        except (MediaDecodeError, _TooShort) as err:
            reason = "too_short" if isinstance(err, _TooShort) else "unreadable"
            if not self._skip_state[index]:
                self._skip_state[index] = SKIP_REASONS.index(reason) + 1
                logger.warning("skipping %s (%s): %s", record.media, reason, err)
        return None

    def _stride(self, record: MediaRecord, info: Any) -> int:
        fps = record.fps or info.fps
        if fps is None:
            raise MediaDecodeError(f"{record.media}: no frame rate in the media nor in the manifest")
        return frame_stride(fps, self.spec.fps)

    def _decode_clip(self, record: MediaRecord, rng: np.random.Generator) -> np.ndarray:
        """uint8 (T, H0, W0, 3) clip at the stage fps by frame skipping (sec. 3); T = 1 for images."""
        if record.kind == "image":
            return decode_media(record.media, [0]).frames
        info = probe_media(record.media)
        stride = self._stride(record, info)
        indices = clip_frame_indices(info.num_frames, self.spec.frames, stride, rng)
        if indices is None:
            span = (self.spec.frames - 1) * stride + 1
            raise _TooShort(f"{info.num_frames} frames, the clip spans {span} (stride {stride})")
        return decode_media(record.media, indices.tolist()).frames

    def _load(self, index: int, record: MediaRecord, rng: np.random.Generator) -> dict[str, Any]:
        """Decode, frame-skip, resize and crop one record (raises MediaDecodeError / _TooShort)."""
        image_mode = record.kind == "image"
        video = self._resize(self._decode_clip(record, rng), rng)  # (T or 1, C, H, W) in [0, 1]
        if image_mode:
            video = video.expand(self.spec.frames, *video.shape[1:])  # T copies of one image (sec. 2.6)
        video = self._random_crop(video, rng, per_frame=image_mode)
        sample: dict[str, Any] = {"caption": record.caption, "image_mode": image_mode, "index": index}
        if self.spec.is_super_resolution:
            cond_t, cond_h, cond_w = self.spec.cond_shape
            sample["cond_video"] = to_model_video(conditioning_clip(video, cond_t, (cond_h, cond_w)))
        sample["video"] = to_model_video(video)  # (C, T, H, W) in [-1, 1]
        return sample

    def _resize(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Crop uint8 frames to the stage's aspect ratio, then antialiased bilinear resize (sec. 3)."""
        spec = self.spec
        top, left, crop_h, crop_w = aspect_crop_box(
            frames.shape[1], frames.shape[2], spec.width / spec.height, spec.aspect_crop, rng
        )
        cropped = frames[:, top : top + crop_h, left : left + crop_w]  # (T, h0, w0, 3)
        return resize_frames(to_float_frames(cropped), (spec.height, spec.width))  # (T, C, H, W)

    def _random_crop(self, video: torch.Tensor, rng: np.random.Generator, *, per_frame: bool) -> torch.Tensor:
        """Random ``spec.crop`` of (T, C, H, W) frames: one box per clip, or per frame for packed images."""
        if self.spec.crop is None:
            return video
        height, width = video.shape[-2:]
        if not per_frame:
            return crop_frames(video, *random_crop_offset(height, width, self.spec.crop, rng), self.spec.crop)
        boxes = [random_crop_offset(height, width, self.spec.crop, rng) for _ in range(video.shape[0])]
        return torch.cat([crop_frames(video[t : t + 1], *box, self.spec.crop) for t, box in enumerate(boxes)])


def collate_video_text(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch for ``train_step`` (the shapes ``VideoUNet.forward`` takes).

    Returns ``video`` (B, C, T, H, W), ``cond_video`` (B, C, Tc, Hc, Wc) for SR stages, ``image_mode``
    (B,) bool, ``index`` (B,) int64 and ``caption`` list[str] (text is encoded by the caller).
    """
    if not samples:
        raise ValueError("collate_video_text needs at least one sample")
    batch: dict[str, Any] = {
        "video": torch.stack([s["video"] for s in samples]),
        "caption": [s["caption"] for s in samples],
        "image_mode": torch.tensor([bool(s["image_mode"]) for s in samples], dtype=torch.bool),
        "index": torch.tensor([int(s["index"]) for s in samples], dtype=torch.int64),
    }
    if "cond_video" in samples[0]:
        batch["cond_video"] = torch.stack([s["cond_video"] for s in samples])
    return batch
