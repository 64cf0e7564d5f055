"""The prompt checker and the prompt-file reader that every command shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagen_video.prompts import check_prompts, clean_prompt, read_prompt_file


def test_lines_split_on_newline_only(tmp_path: Path) -> None:
    """A form feed, a vertical tab and U+2028 inside a line stay in its prompt; CRLF endings and
    surrounding spaces go; blank lines are skipped but still counted."""
    path = tmp_path / "p.txt"
    path.write_bytes("a red\x0ccircle\r\n\n  a blue\u2028square \n\tgreen\x0bdot\n".encode())
    assert read_prompt_file(path) == [(1, "a red\x0ccircle"), (3, "a blue\u2028square"), (4, "green\x0bdot")]


def test_no_final_newline_and_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("un cercle rouge\ncafé", encoding="utf-8")
    assert read_prompt_file(path) == [(1, "un cercle rouge"), (2, "café")]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "holds no prompts"), (b" \n\t\n\n", "holds no prompts"), (b"\xff\xfe red", "cannot read")],
)
def test_bad_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_prompt_file(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_prompt_file(tmp_path / "none.txt")


def test_clean_prompt() -> None:
    assert clean_prompt("  a red circle \r") == "a red circle"
    with pytest.raises(ValueError, match="^the prompt is empty$"):
        clean_prompt(" \t")
    with pytest.raises(ValueError, match="^prompt 3 is int, not str$"):
        clean_prompt(3, where="prompt 3")


def test_check_prompts_keeps_strings_and_names_the_bad_one() -> None:
    assert check_prompts(("a ", "b")) == ["a ", "b"]
    with pytest.raises(ValueError, match="^prompt 1 is empty$"):
        check_prompts(["a", " "])
    for bad in ("a red circle", [], None):
        with pytest.raises(ValueError, match="non-empty list of strings"):
            check_prompts(bad)  # type: ignore[arg-type]
