"""`generate --format grid`: one PNG contact sheet for every video of the run; `--device auto`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_video.cli import main
from test_cascade_helpers import single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()



def test_grid_holds_a_labelled_row_per_video(model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving right\na blue square moving left\n")
    out = tmp_path / "sheet"
    argv = ["generate", "--prompts", str(prompts), "-o", str(out), "--format", "grid", "--num-videos", "2"]
    argv += ["--model", str(model_dir), "--steps", "1", "--seed", "0", "--quiet", "--batch-size", "1"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    sheet = tmp_path / "sheet.png"
    assert f"wrote {sheet}" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.txt", "sheet.png"]
    image = np.asarray(Image.open(sheet).convert("RGB"))
    # tiny cascade output: 8 frames of 16x16, upscaled 4x to 64 px; 4 videos in 4 labelled rows
    assert image.shape == (4 * (14 + 64 + 2) + 2, 8 * (64 + 2) + 2, 3)
    assert image[16:80, 2:66].std() > 1.0, "the first cell holds a sampled frame, not a blank"


def test_png_suffix_means_grid_and_other_suffixes_conflict(model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["--model", str(model_dir), "--steps", "1", "--seed", "0", "--quiet", "--device", "auto"]
    assert main(["generate", "a red circle", "-o", str(tmp_path / "one.png"), *base]) == 0
    image = Image.open(tmp_path / "one.png")
    assert image.size == (8 * 66 + 2, 14 + 64 + 4)
    capsys.readouterr()
    code = main(["generate", "a red circle", "-o", str(tmp_path / "x.gif"), "--format", "grid", *base])
    assert code == 2
    assert "--format grid writes one PNG" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_truncated_prompt_from_a_text_cache_warns(model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    long_prompt = "a red circle moving right " * 10  # more than the tiny cascade's 16 tokens
    captions = tmp_path / "captions.txt"
    captions.write_text(long_prompt + "\n")
    cache = tmp_path / "cache"
    encode = ["encode-text", "--captions", str(captions), "--out", str(cache), "--no-progress"]
    assert main([*encode, "--max-length", "16"]) == 0
    capsys.readouterr()
    argv = ["generate", long_prompt, "-o", str(tmp_path / "v.gif"), "--text-cache", str(cache)]
    assert main([*argv, "--model", str(model_dir), "--steps", "1", "--seed", "0", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 of 1 prompt(s) were longer than max_length=16 tokens and were truncated" in err
