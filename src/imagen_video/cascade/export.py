"""Write generated videos to disk: H.264 ``.mp4``, animated ``.gif`` / ``.webp``, or a folder of PNG frames.

Input is a video at the user boundary (docs/CONTRIBUTING.md, "Conventions"): a float ``(C, T, H, W)``
array or tensor in [0, 1] (one sample of a cascade output) or a uint8 ``(T, H, W, 3)`` array. The container is
chosen by the path's suffix (or an explicit ``format``); a path without a suffix or ending in ``/`` means a
directory of PNG frames ``frame_00000.png, ...``. Every write is atomic: the file (or the frame folder)
is written under a temporary name beside the target and renamed into place only when complete, so an
exception or Ctrl-C never leaves a partial file at the requested path.

Format notes:
- ``mp4``: H.264 (libx264 through PyAV), pixel format yuv420p, which needs even height and width: an odd
  dimension is padded by one row / column that repeats the edge pixels (documented, never a resize).
  Chroma is subsampled 2x, so on tiny frames colors of single pixels blur; ``scale`` (an integer
  nearest-neighbour upscale applied before encoding, for every format) keeps small videos viewable.
- ``gif``: 256-color palette, frame duration in 10 ms units (so e.g. 8 fps plays at 1/0.12 s); identical
  consecutive frames are merged by Pillow into one frame with the summed duration.
- ``webp``: lossless animated WebP (identical consecutive frames may likewise be merged by libwebp).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from imagen_video.serialization import atomic_path

VIDEO_FORMATS: tuple[str, ...] = ("mp4", "gif", "webp", "png")
_SUFFIXES = {".mp4": "mp4", ".gif": "gif", ".webp": "webp"}


def resolve_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Return the export format for ``path``: explicit ``format``, else by suffix; no suffix or a
    trailing ``/`` means a PNG frame directory. Raises ``ValueError`` naming the allowed ones."""
    if format is not None:
        if format not in VIDEO_FORMATS:
            raise ValueError(f"unknown video format {format!r}; allowed: {', '.join(VIDEO_FORMATS)}")
        return format
    text = os.fspath(path)
    suffix = Path(text).suffix.lower()
    if text.endswith(("/", os.sep)) or suffix == "":
        return "png"
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"unknown output suffix {suffix!r} in {text!r}; allowed: .mp4, .gif, .webp, "
            "or a directory (no suffix or trailing '/') for PNG frames"
        )
    return _SUFFIXES[suffix]


def default_suffix(format: str) -> str:
    """The path suffix for ``format`` ("" for a PNG frame directory)."""
    resolve_format("", format)
    return "" if format == "png" else f".{format}"


def to_uint8_frames(video: Any) -> np.ndarray:
    """Convert a video to uint8 ``(T, H, W, 3)``.

    Accepts uint8 ``(T, H, W, 3)`` (returned as is) or float ``(C, T, H, W)`` in [0, 1] with C in
    {1, 3} (a torch tensor or numpy array); values outside [0, 1] or NaN are an error, never clipped.
    """
    if hasattr(video, "detach"):
        video = video.detach().to("cpu").float().numpy()
    array = np.asarray(video)
    if array.dtype == np.uint8:
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"uint8 video must have shape (T, H, W, 3), got {tuple(array.shape)}")
        return array
    if array.ndim != 4 or array.shape[0] not in (1, 3):
        raise ValueError(f"float video must have shape (C, T, H, W), C in (1, 3), got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError("float video contains NaN or infinite values")
    if array.min() < 0.0 or array.max() > 1.0:
        low, high = float(array.min()), float(array.max())
        raise ValueError(f"float video values must lie in [0, 1], got range [{low:.4g}, {high:.4g}]")
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    frames = np.round(array.transpose(1, 2, 3, 0) * 255.0)  # (T, H, W, 3)
    return frames.astype(np.uint8)


def write_video(
    video: Any,
    path: str | os.PathLike[str],
    fps: float,
    *,
    format: str | None = None,
    scale: int = 1,
) -> Path:
    """Atomically write ``video`` to ``path`` at ``fps`` frames per second; return the written path.

    ``video``: float ``(C, T, H, W)`` in [0, 1] or uint8 ``(T, H, W, 3)`` (see :func:`to_uint8_frames`).
    ``format``: one of ``VIDEO_FORMATS``; default from the suffix (:func:`resolve_format`).
    ``scale``: integer nearest-neighbour upscale factor applied to every frame before encoding.
    """
    fmt = resolve_format(path, format)
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    frames = to_uint8_frames(video)  # (T, H, W, 3)
    if frames.shape[0] == 0:
        raise ValueError("cannot write a video with 0 frames")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    target = Path(path)
    if fmt == "png":
        return _write_png_dir(frames, target)
    writer = {"mp4": _write_mp4, "gif": _write_gif, "webp": _write_webp}[fmt]
    with atomic_path(target) as tmp:
        writer(frames, tmp, float(fps))
    return target


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Pad H and W up to even sizes by repeating the last row / column (yuv420p needs even sizes)."""
    _, height, width, _ = frames.shape
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    """H.264 yuv420p through PyAV (libx264, CRF 17: visually lossless on synthetic content).

    x264's macroblock-tree rate control is off: with it, PyAV's libx264 encoded the same frames
    differently from run to run (decoded frames up to 25/255 apart); without it the file is
    reproducible. The cost is size: the demo's 32x48x80 clip takes 43 KB instead of 22 KB.
    """
    import av

    frames = _pad_even(frames)
    _, height, width, _ = frames.shape
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "17", "preset": "medium", "x264-params": "mbtree=0"}
        for frame in frames:  # (H, W, 3) uint8
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(rgb):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _pil_frames(frames: np.ndarray) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(frame, mode="RGB") for frame in frames]


def _write_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    """Animated GIF via Pillow; frame duration rounded to the format's 10 ms resolution, looping."""
    images = _pil_frames(frames)
    duration_ms = max(10, int(round(100.0 / fps)) * 10)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def _write_webp(frames: np.ndarray, path: Path, fps: float) -> None:
    """Lossless animated WebP via Pillow, looping."""
    images = _pil_frames(frames)
    duration_ms = max(1, int(round(1000.0 / fps)))
    images[0].save(
        path,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        lossless=True,
    )


def _write_png_dir(frames: np.ndarray, target: Path) -> Path:
    """Write ``frame_00000.png ...`` into a temporary folder beside ``target``, then rename it into place.

    An existing folder at ``target`` is replaced only after the new one is complete.
    """
    if target.exists() and not target.is_dir():
        raise ValueError(f"PNG frame output {str(target)!r} exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        for index, image in enumerate(_pil_frames(frames)):
            image.save(tmp / f"frame_{index:05d}.png", format="PNG")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / target.name).exists() and not target.exists():
            os.replace(old / target.name, target)
        raise
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
    return target
