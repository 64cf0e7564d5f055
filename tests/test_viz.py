"""Contact sheets (one row per video, evenly spaced frames) and the loss plot of a run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from imagen_video import viz


def test_grid_frame_indices_even_and_inclusive() -> None:
    assert viz.grid_frame_indices(5) == [0, 1, 2, 3, 4]
    assert viz.grid_frame_indices(31, 4) == [0, 10, 20, 30]
    indices = viz.grid_frame_indices(80)
    assert len(indices) == 16 and indices[0] == 0 and indices[-1] == 79
    assert all(b > a for a, b in zip(indices, indices[1:], strict=False))


def test_contact_sheet_layout_and_pixels() -> None:
    # 2 videos of 20 frames, 8x10 pixels; frame t of video b has the value (b * 20 + t) / 255
    values = torch.arange(40, dtype=torch.float32).reshape(2, 1, 20, 1, 1) / 255.0
    videos = values.expand(2, 3, 20, 8, 10)
    sheet = viz.contact_sheet(videos, scale=1, max_frames=4)
    # 4 columns of 10 px + 5 gaps of 2 px; 2 rows of 8 px + 3 gaps
    assert sheet.shape == (2 * (8 + 2) + 2, 4 * (10 + 2) + 2, 3)
    columns = viz.grid_frame_indices(20, 4)  # [0, 6, 13, 19]
    for b in range(2):
        for c, t in enumerate(columns):
            top, left = 2 + b * 10, 2 + c * 12
            assert (sheet[top : top + 8, left : left + 10] == b * 20 + t).all()


def test_write_grid_labels_and_default_upscale(tmp_path) -> None:
    video = torch.zeros(3, 4, 8, 8)
    video[0] = 1.0  # red
    path = viz.write_grid([video], tmp_path / "g.png", ["a red square"])
    image = np.asarray(Image.open(path).convert("RGB"))
    scale = viz.MIN_CELL_HEIGHT // 8
    assert image.shape[0] == 2 + 14 + 8 * scale + 2
    assert image.shape[1] == 4 * (8 * scale + 2) + 2
    label_band = image[2:16, :200]
    assert (label_band < 128).any(), "the prompt is drawn as dark text"
    red = image[2 + 14 : 2 + 14 + 8 * scale, 2 : 2 + 8 * scale]  # first cell, below the label
    assert (red[..., 0] == 255).all() and (red[..., 1:] == 0).all()


def test_contact_sheet_rejects_label_count() -> None:
    with pytest.raises(ValueError, match="2 labels for 1 videos"):
        viz.contact_sheet(torch.zeros(1, 3, 2, 4, 4), ["a", "b"])


def test_plot_loss_writes_nonblank_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    log = tmp_path / "train_log.csv"
    with open(log, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "lr"])
        for step in range(1, 21):
            writer.writerow([step, 1.0 / step, 1e-4 * min(1.0, step / 10)])
    path = viz.plot_loss(log, tmp_path / "loss.png")
    assert path == tmp_path / "loss.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (400, 700, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10, "the plot is not blank"


def test_plot_loss_without_rows_is_skipped(tmp_path) -> None:
    log = tmp_path / "train_log.csv"
    log.write_text("step,loss,lr\n")
    assert viz.plot_loss(log, tmp_path / "loss.png") is None
    assert not (tmp_path / "loss.png").exists()
