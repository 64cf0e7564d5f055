"""`imagen-video animate` and `extend` end to end on a tiny random cascade directory: the known frames
come back byte-exact in PNG output, the clip is read at the cascade's frame rate, and bad input gives
one line, exit 2 and no output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_video.cli import main
from test_cascade_helpers import single_thread

PROMPT = "a red circle moving right"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def _png(path: Path, seed: int, height: int = 16, width: int = 16) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_animate_first_and_last_frame_come_back_exactly(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = _png(tmp_path / "first.png", 0), _png(tmp_path / "last.png", 1)
    out = tmp_path / "frames"
    code, stdout, stderr = _run(
        capsys, "animate", str(tmp_path / "first.png"), "--last-frame", str(tmp_path / "last.png"),
        "--prompt", PROMPT, "-o", str(out), "--format", "png", "--model", str(model_dir), "--seed", "0",
        "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    frames = _frames(out)
    assert frames.shape == (8, 16, 16, 3)
    assert np.array_equal(frames[0], first) and np.array_equal(frames[-1], last)
    assert "8 frames of 16x16 at 4 fps; seed 0" in stdout and stderr == ""


def test_animate_says_once_that_another_size_is_resized(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _png(tmp_path / "wide.png", 0, 20, 30)
    out = tmp_path / "v.gif"
    code, _, stderr = _run(
        capsys, "animate", str(tmp_path / "wide.png"), "--prompt", PROMPT, "-o", str(out),
        "--model", str(model_dir), "--seed", "0", "--quiet", "--method", "reconstruction",
    )  # fmt: skip
    assert code == 0 and out.is_file()
    assert stderr == "imagen-video animate: warning: input of 30x20 resized to the cascade's 16x16\n"


def test_extend_reads_the_clip_at_the_cascade_rate_and_keeps_it(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    source = np.stack([_png(clip / f"{i:03d}.png", 10 + i) for i in range(8)])  # a folder runs at 8 fps
    out = tmp_path / "extended"
    code, stdout, stderr = _run(
        capsys, "extend", str(clip), "--prompt", PROMPT, "--frames", "3", "-o", str(out),
        "--format", "png", "--model", str(model_dir), "--seed", "0", "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    frames = _frames(out)
    assert frames.shape == (7, 16, 16, 3)  # every 2nd of 8 frames (8 -> 4 fps), then 3 new
    assert np.array_equal(frames[:4], source[::2])
    assert "7 frames of 16x16 at 4 fps" in stdout


@pytest.mark.parametrize(
    ("flags", "anchored"), [((), True), (("--no-anchor",), False), (("--backward",), True)]
)
def test_extend_anchors_the_sr_stages_unless_told(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    anchored: bool,
) -> None:
    from imagen_video.cascade import conditional

    lows: list[object] = []
    wrapped = conditional.conditioned_denoiser

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        lows.append(kwargs.get("low"))
        return wrapped(*args, **kwargs)

    monkeypatch.setattr(conditional, "conditioned_denoiser", spy)
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(8):
        _png(clip / f"{i:03d}.png", i)
    code, _, stderr = _run(
        capsys, "extend", str(clip), "--prompt", PROMPT, "--frames", "3", "-o", str(tmp_path / "out.gif"),
        "--model", str(model_dir), "--seed", "0", "--quiet", "--method", "reconstruction", *flags,
    )  # fmt: skip
    assert code == 0, stderr
    assert lows[0] is None  # the base has no input (one round: 3 new frames fit one window)
    assert all((low is not None) == anchored for low in lows[1:]) and len(lows) > 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["animate", "{bad}", "--prompt", PROMPT], "cannot read image"),
        (["animate", "{image}"], "no prompt given; pass --prompt TEXT"),
        (["extend", "{clip}", "--prompt", PROMPT], "the clip has 2 frames; extending needs at least 3"),
        (["extend", "{missing}", "--prompt", PROMPT], "does not exist"),
        (["extend", "{clip}", "--prompt", PROMPT, "--frames", "0"], "--frames must be an integer >= 1"),
        (["extend", "{clip}", "--prompt", PROMPT, "--anchor", "--method", "replacement"], "--anchor needs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    _png(tmp_path / "image.png", 0)
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(4):  # 4 frames at 8 fps: 2 at the cascade's 4 fps
        _png(clip / f"{i}.png", i)
    paths = {"bad": tmp_path / "bad.png", "image": tmp_path / "image.png", "clip": clip}
    paths["missing"] = tmp_path / "missing.mp4"
    argv = [a.format(**paths) for a in argv]
    out = tmp_path / "out.mp4"
    code, stdout, stderr = _run(capsys, *argv, "-o", str(out), "--model", str(model_dir), "--quiet")
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert not out.exists() and stdout == ""


def test_cli_choices_and_defaults_mirror_the_library() -> None:
    from imagen_video.cascade import conditional, conditioning
    from imagen_video.cli import animate, extend

    assert animate.METHOD_CHOICES == conditioning.METHODS
    assert animate.DEFAULT_METHOD == conditional.DEFAULT_METHOD
    assert animate.DEFAULT_RECONSTRUCTION_WEIGHT == conditioning.DEFAULT_RECONSTRUCTION_WEIGHT
    assert animate.EXTEND_RECONSTRUCTION_WEIGHT == conditional.EXTEND_RECONSTRUCTION_WEIGHT
    assert extend.EXTEND_BASE_STEPS == conditional.EXTEND_BASE_STEPS
