"""Text prompts as the user gives them: one checker for a prompt and one reader for a prompt file.

Every command that takes prompts (``generate``, ``upsample``, ``encode-text``, ``evaluate``) and the
benchmarks go through these two functions, so a prompt means the same string everywhere: the
embedding cache that ``encode-text`` builds is keyed by exactly the strings ``generate`` looks up.

The policy: a prompt file is UTF-8 text with one prompt per line. Lines are split on ``"\\n"`` only,
so a form feed, a vertical tab or a Unicode line separator (U+2028) inside a line stays part of that
prompt. Surrounding whitespace of each prompt (``str.strip``, which includes a ``"\\r"`` of a CRLF
file) is removed, and blank lines are skipped; line numbers count every line, blank or not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def clean_prompt(prompt: object, *, where: str = "the prompt") -> str:
    """``prompt`` without surrounding whitespace; ValueError (naming ``where``) unless it is a
    non-empty ``str``."""
    if not isinstance(prompt, str):
        raise ValueError(f"{where} is {type(prompt).__name__}, not str")
    text = prompt.strip()
    if not text:
        raise ValueError(f"{where} is empty")
    return text


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """A non-empty sequence of non-empty strings as a list, unchanged; ValueError naming the first
    bad prompt by its index. Whitespace is the caller's (see :func:`clean_prompt`)."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    for index, prompt in enumerate(prompts):
        clean_prompt(prompt, where=f"prompt {index}")
    return list(prompts)


def read_prompt_file(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """``(line number, prompt)`` for each non-blank line of a prompt file (1-based line numbers).

    ValueError when the file cannot be read, is not UTF-8 or holds no prompt; the message names it.
    """
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"prompt file {str(source)!r} does not exist")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read prompt file {str(source)!r}: {err}") from err
    prompts = [(number, line.strip()) for number, line in enumerate(text.split("\n"), start=1)]
    prompts = [(number, prompt) for number, prompt in prompts if prompt]
    if not prompts:
        raise ValueError(f"prompt file {str(source)!r} holds no prompts (one prompt per line)")
    return prompts
