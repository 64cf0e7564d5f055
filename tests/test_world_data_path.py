"""The synthetic world's `data synth` output trains through the real data path."""

from __future__ import annotations

import torch

from imagen_video.cli import main
from imagen_video.data import StageDataSpec, VideoTextDataset, collate_video_text


def test_synth_output_loads_through_the_training_data_loader(tmp_path) -> None:
    out = tmp_path / "world"
    assert main(["data", "synth", "--out", str(out), "--num", "4", "--images", "2", "--frames", "8",
                 "--height", "24", "--width", "40", "--fps", "8", "--quiet"]) == 0  # fmt: skip
    spec = StageDataSpec(frames=8, height=24, width=40, fps=8.0, cond_frames=8, cond_height=12,
                         cond_width=20, use_images=True)  # fmt: skip
    dataset = VideoTextDataset(out, spec, seed=0)
    batch = collate_video_text([dataset[i] for i in range(len(dataset.records))])
    assert batch["video"].shape == (6, 3, 8, 24, 40)
    assert batch["cond_video"].shape == (6, 3, 8, 12, 20)
    assert batch["image_mode"].sum().item() == 2 and dataset.skipped == 0
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0
    # pure saturated colors survive the lossless path: some pixel reaches the top of the range
    assert torch.isclose(batch["video"].amax(), torch.tensor(1.0))
    assert all(isinstance(c, str) and c.startswith("a ") for c in batch["caption"])
