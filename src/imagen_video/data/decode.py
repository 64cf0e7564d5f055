"""Decoding media to uint8 frames through maintained libraries (the media of a dataset manifest).

Videos (.mp4/.webm/.avi/.mov/.mkv/.gif) are decoded with PyAV (FFmpeg); GIFs fall back to imageio
if PyAV fails on them. Images and frame folders go through Pillow, ``.npz`` arrays through numpy.
Everything returns ``uint8 (T, H, W, 3)`` plus the frame rate stored in the media (or None).

Only the frames asked for are converted to RGB, decoding stops after the last one, and a clip far
into a container video starts with a keyframe seek (frame index = presentation time x frame rate,
i.e. constant-frame-rate indexing; if a seek lands past the wanted frame, decoding restarts from the
beginning). Any failure of the underlying decoder becomes :class:`MediaDecodeError` naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from imagen_video.data.manifest import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = ["DecodedMedia", "MediaDecodeError", "MediaInfo", "decode_media", "probe_media"]


class MediaDecodeError(RuntimeError):
    """A media file could not be read or lacks the requested frames; the message names the file."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """Frame count and stored frame rate of a media item (fps None where the media stores none)."""

    num_frames: int
    fps: float | None


@dataclasses.dataclass(frozen=True)
class DecodedMedia:
    """Decoded frames ``uint8 (T, H, W, 3)`` and the frame rate stored in the media (or None)."""

    frames: np.ndarray
    fps: float | None


def probe_media(path: str | Path) -> MediaInfo:
    """Count the frames of a media item and read its frame rate, without decoding pixels.

    Container videos use the stream's frame count, or count packets where the container stores none
    (e.g. WebM); ``.npz`` arrays read the header only; frame folders count image files.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return MediaInfo(len(_frame_files(path)), None)
        suffix = path.suffix.lower()
        if suffix == ".npz":
            with np.load(path) as data:
                fps = float(data["fps"]) if "fps" in data.files else None
                return MediaInfo(_npz_frames(data, path).shape[0], fps)
        if suffix in IMAGE_EXTENSIONS:
            return MediaInfo(1, None)
        if suffix in VIDEO_EXTENSIONS:
            return _probe_container(path)
    except MediaDecodeError:
        raise
    except Exception as err:  # any decoder failure means the file is unreadable
        raise MediaDecodeError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    raise MediaDecodeError(f"unsupported media type {path.suffix!r}: {path}")


def decode_media(path: str | Path, frame_indices: Sequence[int] | None = None) -> DecodedMedia:
    """Decode ``frame_indices`` (any order, repeats allowed; None = every frame) to ``uint8 (T, H, W, 3)``.

    Raises :class:`MediaDecodeError` for unreadable files and for indices past the last frame.
    """
    path = Path(path)
    if frame_indices is not None and (len(frame_indices) == 0 or min(frame_indices) < 0):
        raise ValueError(f"frame_indices must be a non-empty list of indices >= 0, got {list(frame_indices)}")
    try:
        frames_by_index, fps = _decode(path, None if frame_indices is None else sorted(set(frame_indices)))
    except MediaDecodeError:
        raise
    except Exception as err:  # any decoder failure means the file is unreadable
        raise MediaDecodeError(f"cannot decode {path}: {type(err).__name__}: {err}") from err
    order = sorted(frames_by_index) if frame_indices is None else list(frame_indices)
    missing = [i for i in order if i not in frames_by_index]
    if missing:
        count = len(frames_by_index)
        raise MediaDecodeError(f"{path} has {count} decodable frames; frame {missing[0]} requested")
    shapes = {frames_by_index[i].shape for i in order}
    if len(shapes) > 1:
        raise MediaDecodeError(f"{path}: frames differ in shape {sorted(shapes)}")
    return DecodedMedia(np.stack([frames_by_index[i] for i in order]), fps)  # (T, H, W, 3) uint8


def _decode(path: Path, wanted: list[int] | None) -> tuple[dict[int, np.ndarray], float | None]:
    """Dispatch on media type; returns {frame index: (H, W, 3) uint8} for the wanted indices."""
    if path.is_dir():
        files = _frame_files(path)
        chosen = range(len(files)) if wanted is None else [i for i in wanted if i < len(files)]
        return {i: _read_image(files[i]) for i in chosen}, None
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as data:
            frames = _npz_frames(data, path)
            fps = float(data["fps"]) if "fps" in data.files else None
        chosen = range(len(frames)) if wanted is None else [i for i in wanted if i < len(frames)]
        return {i: frames[i] for i in chosen}, fps
    if suffix in IMAGE_EXTENSIONS:
        return ({0: _read_image(path)} if wanted is None or 0 in wanted else {}), None
    if suffix in VIDEO_EXTENSIONS:
        try:
            return _decode_container(path, wanted)
        except Exception:
            if suffix != ".gif":
                raise
            return _decode_gif_imageio(path, wanted)
    raise MediaDecodeError(f"unsupported media type {path.suffix!r}: {path}")


def _frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder, sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise MediaDecodeError(f"frame folder has no image files: {folder}")
    return files


def _read_image(path: Path) -> np.ndarray:
    """Read the first frame of an image file as RGB ``uint8 (H, W, 3)`` (alpha is dropped)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _npz_frames(data: np.lib.npyio.NpzFile, path: Path) -> np.ndarray:
    """The ``frames`` array of an ``.npz`` as ``(T, H, W, 3)``; ``(H, W, 3)`` images gain T = 1."""
    if "frames" not in data.files:
        raise MediaDecodeError(f"{path} has no array 'frames' (found {data.files})")
    frames = data["frames"]
    if frames.ndim == 3:
        frames = frames[None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        got = f"{frames.dtype} {frames.shape}"
        raise MediaDecodeError(f"{path}: array 'frames' must be uint8 (T, H, W, 3), got {got}")
    return frames


def _stream_rate(stream: Any) -> Fraction | None:
    """The video stream's frame rate as an exact fraction (average, else guessed, else base rate)."""
    for name in ("average_rate", "guessed_rate", "base_rate"):
        rate = getattr(stream, name, None)
        if rate:
            return Fraction(rate)
    return None


def _probe_container(path: Path) -> MediaInfo:
    """Frame count from the stream header, or by counting packets (no pixel decoding) if absent."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = _stream_rate(stream)
        count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size > 0)
    return MediaInfo(int(count), float(rate) if rate else None)


def _decode_container(path: Path, wanted: list[int] | None) -> tuple[dict[int, np.ndarray], float | None]:
    """Decode with PyAV: seek near the first wanted frame when possible, stop after the last one."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = _stream_rate(stream)
        fps = float(rate) if rate else None
        if wanted is None:
            return {i: f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream))}, fps
        if wanted[0] > 0 and rate and stream.time_base:
            frames = _decode_after_seek(container, stream, wanted, rate)
            if frames is not None:
                return frames, fps
    with av.open(str(path)) as container:  # the seek was unusable: count frames from the start
        return _decode_sequential(container.decode(container.streams.video[0]), wanted), fps


def _decode_sequential(decoded: Iterable[Any], wanted: list[int]) -> dict[int, np.ndarray]:
    """Count frames from the start; convert only wanted ones to RGB; stop after the last."""
    wanted_set, out = set(wanted), {}
    for index, frame in enumerate(decoded):
        if index in wanted_set:
            out[index] = frame.to_ndarray(format="rgb24")
        if index >= wanted[-1]:
            break
    return out


def _decode_after_seek(container: Any, stream: Any, wanted: list[int], rate: Fraction) -> dict | None:
    """Seek to the keyframe before ``wanted[0]``; index frames by presentation time (constant frame rate).

    Returns None (the caller restarts from frame 0) if a frame has no timestamp or the seek overshot.
    """
    start = stream.start_time or 0
    time_base = Fraction(stream.time_base)
    container.seek(start + int(wanted[0] / rate / time_base), stream=stream, backward=True)
    wanted_set, out, first = set(wanted), {}, True
    for frame in container.decode(stream):
        if frame.pts is None:
            return None
        index = round((frame.pts - start) * time_base * rate)
        if first and index > wanted[0]:
            return None
        first = False
        if index in wanted_set:
            out[index] = frame.to_ndarray(format="rgb24")
        if index >= wanted[-1]:
            break
    return out


def _decode_gif_imageio(path: Path, wanted: list[int] | None) -> tuple[dict[int, np.ndarray], float | None]:
    """Fallback GIF reader (imageio/Pillow); fps from the first frame's duration in milliseconds."""
    import imageio.v3 as iio

    frames = iio.imread(path, index=None)  # (T, H, W, 3 or 4)
    if frames.ndim == 3:
        frames = frames[None]
    frames = np.ascontiguousarray(frames[..., :3])
    duration_ms = iio.immeta(path, index=0).get("duration") or 0
    fps = 1000.0 / duration_ms if duration_ms > 0 else None
    chosen = range(len(frames)) if wanted is None else [i for i in wanted if i < len(frames)]
    return {i: frames[i] for i in chosen}, fps
