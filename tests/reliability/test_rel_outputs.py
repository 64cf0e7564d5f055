"""Output paths and write faults of `generate` (docs/reliability.md): nothing the program did not write
is deleted, a bad path fails before any model loads, every OSError is one line with exit 1, no
temporary file is left and an existing output stays intact; SIGTERM cleans up and exits 143."""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

import pytest
from rel_support import PROMPT, assert_one_line, cli_code, generate_argv, run_child, snapshot

from imagen_video.cascade import export
from imagen_video.cli import main


def _generate(capsys: pytest.CaptureFixture[str], model: Path, *extra: str) -> tuple[int, str]:
    code = main(
        ["generate", PROMPT, "--device", "cpu", "--model", str(model), "--seed", "0", "--quiet", *extra]
    )
    return code, capsys.readouterr().err


def _user_tree(root: Path) -> dict[str, bytes | None]:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "notes.txt").write_bytes(b"mine\n")
    (root / "sub" / "deeper" / "data.bin").write_bytes(bytes(range(256)))
    return snapshot(root)


@pytest.mark.parametrize("spelling", ["docs", "docs/", "docs/sub/.."])
def test_an_existing_user_directory_is_never_replaced(
    tiny_cascade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, spelling: str
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _user_tree(tmp_path / "docs")
    code, err = _generate(capsys, tiny_cascade, "-o", spelling)
    assert code == 2
    assert_one_line(err, "holding other files than frames", "notes.txt")
    assert snapshot(tmp_path / "docs") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_dot_dot_holding_the_working_directory_is_refused(
    tiny_cascade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    code, err = _generate(capsys, tiny_cascade, "-o", "..")
    assert code == 2
    assert_one_line(err, "-o '..'")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("/proc/x.mp4", "cannot create files in '/proc'"),
        ("{tmp}/clip.mp4", "is an existing directory"),
        ("{tmp}/file.txt/x.mp4", "exists and is not a directory"),
    ],
)
def test_bad_output_paths_fail_before_the_model_loads(
    tiny_cascade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, target: str, needle: str
) -> None:
    (tmp_path / "clip.mp4").mkdir()
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setattr("imagen_video.cascade.runner.Cascade.from_pretrained", _must_not_load)
    code, err = _generate(capsys, tiny_cascade, "-o", target.format(tmp=tmp_path))
    assert code == 2
    assert_one_line(err, needle)


def _must_not_load(*args: object, **kwargs: object) -> None:
    raise AssertionError("the cascade was loaded before the output path was checked")


def test_a_frame_folder_of_an_earlier_run_is_replaced(tiny_cascade: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "frames"
    out.mkdir()
    for index in range(12):  # more frames than the new video has: stale ones must go too
        (out / f"frame_{index:05d}.png").write_bytes(b"old")
    old_umask = os.umask(0o022)
    try:
        code, err = _generate(capsys, tiny_cascade, "-o", str(out), "--format", "png")
    finally:
        os.umask(old_umask)
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o755  # the umask's mode, not mkdtemp's 0700
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:05d}.png" for i in range(8)]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_disk_full_is_one_line_and_keeps_the_old_output(
    tiny_cascade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "video.mp4"
    out.write_bytes(b"the previous video")

    def full_disk(frames: object, path: Path, fps: float) -> None:
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export, "_write_mp4", full_disk)
    code, err = _generate(capsys, tiny_cascade, "-o", str(out))
    assert code == 1
    assert_one_line(err, f"cannot write '{out}'", "No space left on device (ENOSPC)")
    assert out.read_bytes() == b"the previous video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_file_size_limit_is_one_line_and_leaves_nothing(tiny_cascade: Path, tmp_path: Path) -> None:
    out = tmp_path / "video.mp4"
    argv = generate_argv(tiny_cascade, "--seed", "0", "--quiet", "--scale", "8")
    child = run_child(cli_code([*argv, "-o", str(out)]), preexec=_limit_file_size)
    assert child.returncode == 1, child.stderr
    assert_one_line(child.stderr, f"cannot write '{out}'", "(EFBIG)")
    assert list(tmp_path.iterdir()) == []


SIGTERM_DURING_WRITE = """
import os, signal
from imagen_video.cascade import export
real = export._write_mp4
def write_then_get_killed(frames, path, fps):
    real(frames, path, fps)
    os.kill(os.getpid(), signal.SIGTERM)  # arrives before the rename onto the final name
export._write_mp4 = write_then_get_killed
"""


def test_sigterm_during_generate_cleans_up_and_exits_143(tiny_cascade: Path, tmp_path: Path) -> None:
    out = tmp_path / "video.mp4"
    argv = generate_argv(tiny_cascade, "--seed", "0", "--quiet", "-o", str(out))
    child = run_child(cli_code(argv, SIGTERM_DURING_WRITE))
    assert child.returncode == 143, child.stderr
    assert_one_line(child.stderr, "terminated")
    assert list(tmp_path.iterdir()) == []


def test_serve_with_a_store_that_is_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    pytest.importorskip("uvicorn")
    (tmp_path / "store").write_text("mine")
    assert main(["serve", "--store", str(tmp_path / "store"), "--device", "cpu"]) == 2
    assert_one_line(capsys.readouterr().err, "--store", "exists and is not a directory")
    assert (tmp_path / "store").read_text() == "mine"
