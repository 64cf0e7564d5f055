"""Training knobs on the command line, the advice printed before a run, previews on by default (a grid
per step) and the loss plot redrawn at each checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_video.cli import main
from imagen_video.train import TrainConfig
from imagen_video.train.config import preview_interval
from imagen_video.train.knobs import ema_half_life, schedule_warnings


def test_half_life_closed_form() -> None:
    assert ema_half_life(0.5) == pytest.approx(1.0)
    assert ema_half_life(0.9999) == pytest.approx(6931.1, abs=0.1)
    assert 0.99 ** ema_half_life(0.99) == pytest.approx(0.5)


def test_warnings_name_the_mismatch() -> None:
    lines = schedule_warnings(TrainConfig(max_steps=50))
    assert len(lines) == 2
    assert lines[0].startswith("max_steps 50 < warmup_steps 1000: the learning rate ends at 5e-06")
    assert "half-life of 6931 steps, longer than the run (50 steps)" in lines[1]
    assert schedule_warnings(TrainConfig(max_steps=50, warmup_steps=5, ema_decay=0.9)) == []


def test_help_defaults_are_the_train_config_defaults() -> None:
    from imagen_video.cli import build_parser
    from imagen_video.cli._train_knobs import KNOBS

    defaults = TrainConfig()
    for field, shown, _ in KNOBS:
        assert getattr(defaults, field) == shown, field
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    for text in ("(default 10000)", "(default 8)", "(default 1e-4)", "(default 0.9999)", "(default 1000)"):
        assert text in help_text
    assert (defaults.max_steps, defaults.batch_size, defaults.lr) == (10000, 8, 1e-4)


def test_previews_default_to_the_checkpoint_interval() -> None:
    assert preview_interval(TrainConfig(checkpoint_every=7)) == 7
    assert preview_interval(TrainConfig(checkpoint_every=7, preview_every=3)) == 3
    assert preview_interval(TrainConfig(preview_every=0)) == 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 16-frame clips of a bright box moving right, with captions, in a plain folder."""
    root = tmp_path_factory.mktemp("boxes")
    for i in range(6):
        frames = np.zeros((16, 16, 16, 3), dtype=np.uint8)
        for t in range(16):
            frames[t, 4:10, t : t + 4, i % 3] = 255
        np.savez(root / f"box{i}.npz", frames=frames, fps=np.float64(8.0))
        (root / f"box{i}.txt").write_text(f"a {('red', 'green', 'blue')[i % 3]} box moving right")
    return root


def test_cli_knobs_previews_and_loss_plot(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    argv = ["train", "--cascade", "tiny", "--stage", "base", "--data", str(folder), "--out", str(out)]
    argv += ["--no-progress", "--device", "cpu", "--batch-size", "2", "--max-steps", "4"]
    argv += ["--warmup-steps", "2", "--ema-decay", "0.5", "--checkpoint-every", "2"]
    argv += ["--keep-checkpoints", "1"]
    argv += ["--log-every", "1", "--preview-prompt", "a red box", "--preview-prompt", "a blue box"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "stage base of tiny (base, 4x8x8 at 2 fps): uses 6 videos, 0 images" in captured.out
    assert "warning" not in captured.err
    saved = json.loads((out / "train_config.json").read_text())
    assert (saved["warmup_steps"], saved["ema_decay"], saved["checkpoint_every"]) == (2, 0.5, 2)
    assert (saved["keep_checkpoints"], saved["log_every"]) == (1, 1)
    assert saved["preview_prompts"] == ["a red box", "a blue box"] and saved["preview_every"] is None
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000004"]
    for step in ("step_00000002", "step_00000004"):
        grid = np.asarray(Image.open(out / "previews" / step / "grid.png").convert("RGB"))
        # 2 prompts x 4 frames of 8x8, upscaled 8x to 64 px, each row labelled
        assert grid.shape == (2 * (14 + 64 + 2) + 2, 4 * (64 + 2) + 2, 3)
        assert grid[16:80, 2:66].std() > 1.0
    if (out / "loss.png").exists():  # matplotlib installed (the 'plot' extra)
        plot = np.asarray(Image.open(out / "loss.png").convert("RGB"))
        assert plot.shape == (400, 700, 3) and len(np.unique(plot.reshape(-1, 3), axis=0)) > 10


def test_cli_warns_when_the_schedule_outlasts_the_run(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["train", "--cascade", "tiny", "--stage", "base", "--data", str(folder), "--out", str(tmp_path)]
    argv += ["--no-progress", "--device", "cpu", "--batch-size", "2", "--max-steps", "1"]
    argv += ["--preview-every", "0"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: max_steps 1 < warmup_steps 1000" in err
    assert "warning: ema_decay 0.9999 has a half-life of 6931 steps" in err
    assert not (tmp_path / "previews").exists()


def test_dataset_smaller_than_a_batch_is_one_line(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["train", "--cascade", "tiny", "--stage", "base", "--data", str(folder), "--out", str(tmp_path)]
    assert main([*argv, "--no-progress", "--device", "cpu", "--batch-size", "8", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "fewer than one micro-batch of batch_size=8; lower --batch-size" in err
    assert "Traceback" not in err
