"""The README's "From Python" section runs as written and writes the video it promises."""

from __future__ import annotations

import re
from pathlib import Path

import av
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block() -> str:
    section = README.read_text(encoding="utf-8").split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_from_python_section_is_five_lines() -> None:
    assert len(_python_block().strip().splitlines()) == 5


def test_from_python_section_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_block(), str(README), "exec"), {})  # noqa: S102
    printed = capsys.readouterr().out
    assert printed.startswith("Cascade('demo-distilled'") and "ssr2: ssr -> 32x48x80" in printed
    with av.open(str(tmp_path / "red_circle.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 32 and frames[0].shape == (48, 80, 3)
