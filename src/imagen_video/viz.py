"""Pictures to look at: a contact sheet of videos (one row per video) and a run's loss plot.

- :func:`contact_sheet` / :func:`write_grid`: one PNG holding a row per video with up to
  ``max_frames`` evenly spaced frames, each row labelled with its prompt. ``generate --format grid``,
  ``CascadeOutput.save("x.png")`` and the training previews (``previews/step_N/grid.png``) use it.
- :func:`plot_loss`: loss and learning rate against step from ``train_log.csv`` (matplotlib, an
  optional extra: ``pip install 'imagen-video[plot]'``; without it the plot is skipped with a note).

Videos come as the cascade returns them: float ``(C, T, H, W)`` in [0, 1] (or uint8 ``(T, H, W, 3)``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagen_video.serialization import atomic_write

MAX_GRID_FRAMES = 16
MIN_CELL_HEIGHT = 64  # frames smaller than this are upscaled (nearest neighbour) so they stay visible
_GAP = 2  # pixels between cells
_LABEL_HEIGHT = 14
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


def grid_frame_indices(num_frames: int, max_frames: int = MAX_GRID_FRAMES) -> list[int]:
    """Indices of up to ``max_frames`` evenly spaced frames of a ``num_frames`` clip, first and last
    included (every frame when the clip is short enough)."""
    if num_frames < 1 or max_frames < 1:
        raise ValueError(f"num_frames and max_frames must be >= 1, got {num_frames}, {max_frames}")
    if num_frames <= max_frames:
        return list(range(num_frames))
    if max_frames == 1:
        return [0]
    return [round(i * (num_frames - 1) / (max_frames - 1)) for i in range(max_frames)]


def _rows(videos: Any) -> list[np.ndarray]:
    """Each video as uint8 ``(T, H, W, 3)``: accepts a (B, C, T, H, W) tensor / array or a sequence
    of (C, T, H, W) videos in [0, 1] (or uint8 (T, H, W, 3) arrays)."""
    from imagen_video.cascade.export import to_uint8_frames

    if hasattr(videos, "ndim") and videos.ndim == 5:
        videos = list(videos)
    rows = [to_uint8_frames(video) for video in videos]
    if not rows:
        raise ValueError("a grid needs at least one video")
    return rows


def contact_sheet(
    videos: Any,
    labels: Sequence[str | None] | None = None,
    *,
    max_frames: int = MAX_GRID_FRAMES,
    scale: int | None = None,
) -> np.ndarray:
    """One uint8 ``(H, W, 3)`` image: a row per video of up to ``max_frames`` evenly spaced frames.

    ``labels``: one text per video (e.g. its prompt), drawn above its row; ``scale``: integer
    nearest-neighbour upscale of every frame (default: the smallest that makes a frame at least
    ``MIN_CELL_HEIGHT`` pixels tall).
    """
    from PIL import Image, ImageDraw

    rows = _rows(videos)
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} videos")
    height, width = max(r.shape[1] for r in rows), max(r.shape[2] for r in rows)
    scale = scale if scale is not None else max(1, -(-MIN_CELL_HEIGHT // height))
    cell_h, cell_w = height * scale, width * scale
    columns = max(len(grid_frame_indices(r.shape[0], max_frames)) for r in rows)
    label_h = _LABEL_HEIGHT if labels is not None else 0
    row_h = label_h + cell_h + _GAP
    sheet = Image.new("RGB", (columns * (cell_w + _GAP) + _GAP, len(rows) * row_h + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for r, frames in enumerate(rows):
        top = _GAP + r * row_h
        if labels is not None and labels[r]:
            draw.text((_GAP, top), str(labels[r]), fill=_TEXT)
        for c, t in enumerate(grid_frame_indices(frames.shape[0], max_frames)):
            frame = frames[t].repeat(scale, axis=0).repeat(scale, axis=1)  # (h, w, 3)
            sheet.paste(Image.fromarray(frame, mode="RGB"), (_GAP + c * (cell_w + _GAP), top + label_h))
    return np.asarray(sheet)


def write_grid(
    videos: Any,
    path: str | os.PathLike[str],
    labels: Sequence[str | None] | None = None,
    *,
    max_frames: int = MAX_GRID_FRAMES,
    scale: int | None = None,
) -> Path:
    """Write :func:`contact_sheet` of ``videos`` as one PNG at ``path`` (atomically); return the path."""
    from PIL import Image

    image = Image.fromarray(contact_sheet(videos, labels, max_frames=max_frames, scale=scale), mode="RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def plot_loss(log_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path | None:
    """Draw loss and learning rate against step from ``train_log.csv`` into a PNG (atomically).

    Returns the written path, or None when matplotlib is not installed or the log has no rows yet.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from imagen_video.train.monitor import read_log

    rows = read_log(log_path)
    if not rows:
        return None
    steps = [row["step"] for row in rows]
    figure = Figure(figsize=(7, 4), dpi=100)
    loss_axis = figure.add_subplot(1, 1, 1)
    loss_axis.plot(steps, [row["loss"] for row in rows], color="tab:blue", marker=".", label="loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss", color="tab:blue")
    lr_axis = loss_axis.twinx()
    lr_axis.plot(steps, [row["lr"] for row in rows], color="tab:orange", label="learning rate")
    lr_axis.set_ylabel("learning rate", color="tab:orange")
    loss_axis.set_title(Path(log_path).name)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write(Path(out_path), lambda tmp: tmp.write_bytes(buffer.getvalue()))
