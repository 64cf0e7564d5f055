"""Helpers of the reliability suite: run the CLI in a child process, check stderr, snapshot a tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
SRC = TESTS.parent / "src"
PROMPT = "a red circle moving right"


def generate_argv(model: Path, *extra: str) -> list[str]:
    """``generate PROMPT --device cpu --model MODEL`` followed by ``extra``."""
    return ["generate", PROMPT, "--device", "cpu", "--model", str(model), *extra]


def child_env() -> dict[str, str]:
    """Environment of a child ``imagen-video`` process: this checkout's sources, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_child(
    code: str, *, cwd: Path | None = None, timeout: float = 120, preexec: object = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` with :func:`child_env`; return the finished process."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )


def cli_code(argv: Sequence[str], prelude: str = "") -> str:
    """Python source that runs ``imagen-video ARGV`` (after ``prelude``) and exits with its status."""
    return f"{prelude}\nimport sys\nfrom imagen_video.cli import main\nsys.exit(main({list(argv)!r}))\n"


def assert_one_line(stderr: str, *needles: str) -> str:
    """stderr is exactly one line (no traceback) holding every needle; returns it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (relative) -> its bytes (None for a directory)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }
