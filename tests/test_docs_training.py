"""docs/training.md runs as written: every `bash` and `python` block, in order, in an empty directory.

The first snippet of the guide makes the dataset (12 mp4 clips and 3 stills). The evaluation step
needs a CLIP directory at `weights/clip-vit-base-patch32`; a tiny random CLIP in the same format
stands in for it (docs/evaluation.md names the real one). Blocks marked `bash gpu` need GPUs and are
not run here.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_video.cli import main
from test_cascade_helpers import single_thread

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
BLOCK = re.compile(r"^```(bash|python)( gpu)?\n(.*?)^```", flags=re.S | re.M)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def _blocks() -> list[tuple[str, str]]:
    """(language, code) of every block the test runs, in document order."""
    return [(lang, code) for lang, gpu, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if not gpu]


def _commands(code: str) -> list[str]:
    """Logical lines of a bash block (continuations joined), comments-only lines dropped."""
    lines = code.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _run_bash(line: str, cwd: Path) -> None:
    expected = re.search(r"#\s*exit (\d+)", line)
    words = shlex.split(line, comments=True)
    if words[0] == "imagen-video":
        code = main(words[1:])
    else:
        code = subprocess.run(line, shell=True, cwd=cwd, check=False).returncode
    assert code == (int(expected.group(1)) if expected else 0), line


def test_the_guide_runs_and_writes_what_it_says(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from tiny_metric_networks import save_tiny_clip

    monkeypatch.chdir(tmp_path)
    words = ["a", "red", "green", "blue", "box", "moving", "left", "right"]
    save_tiny_clip(tmp_path / "weights" / "clip-vit-base-patch32", words)
    blocks = _blocks()
    assert [lang for lang, _ in blocks].count("python") == 3 and len(blocks) >= 9
    for lang, code in blocks:
        if lang == "python":
            exec(compile(code, str(DOC), "exec"), {})  # noqa: S102
            continue
        for line in _commands(code):
            _run_bash(line, tmp_path)
    out = capsys.readouterr().out
    assert "clips need >= 43 source frames at 12 fps (8 frames at 2 fps by frame skipping)" in out
    assert "stage base of tiny (base, 4x8x8 at 2 fps): uses 12 videos, 0 images" in out
    assert "stage base: step 30 (started at 20)" in out
    for path in ("runs/base/stage/model.safetensors", "runs/base/previews/step_00000010/grid.png",
                 "my_cascade/cascade.json", "red_box.mp4", "boxes/cascade.json", "green_box.gif",
                 "my_fast_cascade/cascade.json", "fast.gif", "evaluation/results.json"):  # fmt: skip
        assert (tmp_path / path).exists(), path
    sheet = np.asarray(Image.open(tmp_path / "blue_box.png").convert("RGB"))
    assert sheet.shape[0] == 2 * (14 + 64 + 2) + 2  # two labelled rows of 16x16 frames upscaled 4x
    if (tmp_path / "runs/base/loss.png").exists():  # matplotlib (the 'plot' extra) installed
        assert Image.open(tmp_path / "runs/base/loss.png").size == (700, 400)
