"""Batch generation jobs: a prompts file (plain text or JSONL) becomes a list of videos, each with its
own seed and output file, grouped into fixed batches that processes can claim one at a time.

Every video ``k`` of prompt ``i`` is sampled with its own ``torch.Generator`` seeded by
:func:`video_seed` from the prompt's seed, which is the line's ``seed`` or :func:`prompt_seed` of the
run's ``--seed`` and ``i``. A video's noise (paper eq. 1-2: z_1 and every sampler draw, sec. 2.5's
augmentation noise) therefore depends on nothing but (seed, prompt index, video index): not on the
number of processes, nor on which process samples it, nor on the order batches are taken.
Batches are fixed groups of consecutive prompts, so each batch is sampled with the same contents
whoever takes it, and a video's bytes are the same on any number of processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
JSONL_KEYS = ("prompt", "seed", "num_videos", "id")


@dataclasses.dataclass(frozen=True)
class PromptLine:
    """One prompt of a prompt file: its 1-based line ``number``, the text, and the optional ``id`` its
    output files are named by, per-line ``seed`` and ``num_videos`` (JSONL only)."""

    number: int
    prompt: str
    id: str | None = None
    seed: int | None = None
    num_videos: int | None = None


@dataclasses.dataclass(frozen=True)
class VideoJob:
    """One video to make: output ``id`` (its file stem), prompt, positions and generator seed."""

    id: str
    prompt: str
    prompt_index: int
    video_index: int
    seed: int
    path: Path


def read_plain_prompts(path: str | os.PathLike[str]) -> list[PromptLine]:
    """A plain-text prompt file, one prompt per line (:func:`imagen_video.prompts.read_prompt_file`)."""
    from imagen_video.prompts import read_prompt_file

    return [PromptLine(n, prompt) for n, prompt in read_prompt_file(path)]


def read_prompt_lines(path: str | os.PathLike[str]) -> list[PromptLine]:
    """The prompts of ``path``: JSONL when its name ends in ``.jsonl``, else plain text.

    Both follow :mod:`imagen_video.prompts`' policy: UTF-8, lines split on ``"\\n"`` only, blank
    lines skipped, line numbers counting every line. Raises ValueError (one line, naming the file and
    line) for an unreadable file, a malformed line, a bad field or a repeated id.
    """
    if not str(path).endswith(".jsonl"):
        return read_plain_prompts(path)
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"prompt file {str(source)!r} does not exist")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read prompt file {str(source)!r}: {err}") from err
    numbered = enumerate(text.split("\n"), start=1)
    lines = [parse_jsonl_line(line, number, source) for number, line in numbered if line.strip()]
    if not lines:
        raise ValueError(f"prompt file {str(source)!r} holds no prompts (one JSON object per line)")
    seen: dict[str, int] = {}
    for line in lines:
        if line.id is None:
            continue
        if line.id in seen:
            raise ValueError(
                f"prompt file {str(source)!r}: line {line.number} repeats the id {line.id!r} "
                f"of line {seen[line.id]}"
            )
        seen[line.id] = line.number
    return lines


def parse_jsonl_line(line: str, number: int, source: Path) -> PromptLine:
    """Line ``number`` of a JSONL prompt file: ``{"prompt": ..., "seed"?: ..., "num_videos"?: ...,
    "id"?: ...}``."""
    from imagen_video.prompts import clean_prompt

    where = f"prompt file {str(source)!r}: line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where} is not a JSON object")
    unknown = sorted(set(record) - set(JSONL_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; keys: {', '.join(JSONL_KEYS)}")
    if "prompt" not in record:
        raise ValueError(f'{where} has no "prompt"')
    prompt = clean_prompt(record["prompt"], where=f'{where}: "prompt"')
    seed = _optional_int(record, "seed", 0, where)
    num_videos = _optional_int(record, "num_videos", 1, where)
    ident = record.get("id")
    if ident is not None and (not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident)):
        raise ValueError(
            f'{where}: "id" must be 1-128 letters, digits, ".", "_" or "-", not starting with a '
            f"punctuation mark; got {ident!r}"
        )
    return PromptLine(number, prompt, ident, seed, num_videos)


def _optional_int(record: dict[str, Any], key: str, minimum: int, where: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{where}: "{key}" must be an integer >= {minimum}, got {value!r}')
    return value


def derive_seed(seed: int, index: int, salt: str) -> int:
    """``seed`` itself for ``index`` 0, else a 63-bit seed hashed (SHA-256) from salt, seed and index."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"imagen-video/{salt}/{seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def prompt_seed(run_seed: int, prompt_index: int) -> int:
    """The seed of prompt ``prompt_index`` (0-based) of a run seeded ``run_seed`` (prompt 0: ``run_seed``)."""
    return derive_seed(run_seed, prompt_index, "prompt")


def video_seed(seed: int, video_index: int) -> int:
    """The generator seed of video ``video_index`` of a prompt seeded ``seed``; video 0 gets ``seed``,
    so a single video of a prompt is the one ``generate PROMPT --seed SEED`` makes."""
    return derive_seed(seed, video_index, "video")


def plan_videos(
    lines: Sequence[PromptLine],
    directory: Path,
    suffix: str,
    num_videos: int,
    run_seed: int,
    *,
    default_name: Callable[[PromptLine], str],
) -> list[VideoJob]:
    """Every video of every line, in order: ``num_videos`` unless the line says otherwise, named
    ``<name><suffix>`` or, for a line with several videos, ``<name>_<k><suffix>``, where the name is
    the line's id or ``default_name(line)``."""
    jobs, seen = [], set()
    for index, line in enumerate(lines):
        count = line.num_videos if line.num_videos is not None else num_videos
        seed = line.seed if line.seed is not None else prompt_seed(run_seed, index)
        name = line.id if line.id is not None else default_name(line)
        for k in range(count):
            ident = f"{name}_{k}" if count > 1 else name
            if ident in seen:
                raise ValueError(
                    f"two videos would both be named {ident!r} (line {line.number}); rename an id"
                )
            seen.add(ident)
            path = directory / f"{ident}{suffix}"
            jobs.append(VideoJob(ident, line.prompt, index, k, video_seed(seed, k), path))
    return jobs


def batches(jobs: Sequence[VideoJob], prompts_per_batch: int) -> list[list[VideoJob]]:
    """The videos grouped into fixed batches of ``prompts_per_batch`` consecutive prompts (each with
    all its videos): the units of work that processes claim."""
    groups: dict[int, list[VideoJob]] = {}
    for job in jobs:
        groups.setdefault(job.prompt_index // prompts_per_batch, []).append(job)
    return [groups[key] for key in sorted(groups)]


def generators(jobs: Sequence[VideoJob]) -> list[torch.Generator]:
    """One CPU generator per video, seeded with its :func:`video_seed` (numbers are drawn on the CPU
    and moved, so a video's noise is the same on every device)."""
    return [torch.Generator().manual_seed(job.seed) for job in jobs]


def per_video_generators(
    run_seed: int, prompt_indices: Iterable[int], num_videos: int
) -> list[torch.Generator]:
    """One generator per video of the given prompts (``num_videos`` each, grouped by prompt), seeded
    as a batch job seeds prompts without a seed of their own: prompt ``i``, video ``k`` gets
    ``video_seed(prompt_seed(run_seed, i), k)``."""
    return [
        torch.Generator().manual_seed(video_seed(prompt_seed(run_seed, i), k))
        for i in prompt_indices
        for k in range(num_videos)
    ]
