"""`data check`: what each stage can use of a dataset, why the rest is skipped, and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_video.cascade.presets import demo_cascade, tiny_cascade
from imagen_video.cli import main
from imagen_video.data import DatasetError, load_records
from imagen_video.data.check import check_dataset, clip_span, format_summary


def _video(path: Path, frames: int, fps: float, size: tuple[int, int] = (24, 32)) -> None:
    rng = np.random.default_rng(frames)
    array = rng.integers(0, 255, (frames, *size, 3), dtype=np.uint8)
    np.savez(path, frames=array, fps=np.float64(fps))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Three 25-fps clips of 50, 75 and 100 frames, one still image, one clip without a caption."""
    for i, frames in enumerate((50, 75, 100)):
        _video(tmp_path / f"clip{i}.npz", frames, 25.0)
        (tmp_path / f"clip{i}.txt").write_text(f"a moving box number {i}")
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "still.png")
    (tmp_path / "still.txt").write_text("a black square")
    _video(tmp_path / "orphan.npz", 10, 25.0)
    return tmp_path


def test_clip_span_is_the_frame_skipping_rule() -> None:
    base = demo_cascade().stage("base")  # 8 frames at 2 fps
    assert clip_span(base, 25.0) == 7 * 12 + 1  # stride round(25 / 2) = 12
    assert clip_span(base, 1.0) == 8  # a slower source is used frame by frame


def test_counts_per_stage_and_reasons(folder: Path) -> None:
    stages = demo_cascade().stages
    summary = check_dataset(folder, stages, cascade="demo", skip_uncaptioned=True)
    assert [p.name for p in summary.uncaptioned] == ["orphan.npz"]
    assert len(summary.videos) == 3 and len(summary.images) == 1
    base, tsr1 = summary.stages[0], summary.stages[1]
    assert (base.videos, base.too_short, base.images, base.images_unused) == (1, 2, 1, 0)
    assert (tsr1.videos, tsr1.too_short, tsr1.images, tsr1.images_unused) == (1, 2, 0, 1)
    assert base.min_span == 85 and tsr1.min_span == 15 * 6 + 1
    text = format_summary(summary)
    assert "dataset" in text and "3 videos, 1 images; 1 media without a caption skipped" in text
    assert "video frames: 50 / 75 / 100" in text and "video duration: 2.00 / 3.00 / 4.00 s" in text
    assert "too_short: 2 of 3 videos are shorter than the clip: clips need >= 85 source frames" in text
    assert "--cascade tiny" in text
    assert "images: 1 left out: the stage does not train on images" in text


def test_tiny_cascade_uses_every_clip(folder: Path) -> None:
    summary = check_dataset(folder, tiny_cascade().stages, skip_uncaptioned=True)
    assert [(u.videos, u.too_short) for u in summary.stages] == [(3, 0)] * 3


def test_missing_caption_stops_unless_skipped(folder: Path) -> None:
    with pytest.raises(DatasetError, match=r"orphan.txt.*--skip-uncaptioned"):
        load_records(folder)
    skipped: list[Path] = []
    records = load_records(folder, skip_uncaptioned=True, uncaptioned=skipped)
    assert len(records) == 4 and skipped == [folder / "orphan.npz"]


def test_cli_exit_codes_and_stage_filter(folder: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["data", "check", str(folder)]) == 2
    assert "--skip-uncaptioned" in capsys.readouterr().err
    argv = ["data", "check", str(folder), "--skip-uncaptioned", "--cascade", "tiny", "--stage", "tsr"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stage tsr of tiny (tsr, 8x8x8 at 4 fps): uses 3 videos, 0 images" in out
    assert "stage base" not in out
    for name in ("clip0", "clip1", "clip2"):
        (folder / f"{name}.npz").unlink()
        (folder / f"{name}.txt").unlink()
    _video(folder / "short.npz", 3, 25.0)
    (folder / "short.txt").write_text("too short")
    assert main(argv) == 1
    assert main(["data", "check", str(folder), "--stage", "nope", "--skip-uncaptioned"]) == 2


def test_encode_text_takes_a_caption_folder(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["encode-text", "--encoder", "embedded", "--out", str(tmp_path / "cache"), "--data", str(folder)]
    assert main(argv) == 2
    assert "--skip-uncaptioned" in capsys.readouterr().err
    assert main([*argv, "--skip-uncaptioned", "--no-progress"]) == 0
    assert "of 4 distinct caption(s)" in capsys.readouterr().out
