"""Where ``generate`` and ``upsample`` write their videos, and the timing line they print."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagen_video.cascade.export import default_suffix, resolve_format
from imagen_video.cascade.runner import CascadeOutput

MAX_SLUG = 40


def slugify(prompt: str) -> str:
    """A short file-name-safe form of a prompt: lowercase words joined by '-', at most 40 characters."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = "-".join(words)[:MAX_SLUG].strip("-")
    return slug or "video"


@dataclass(frozen=True)
class OutputPlan:
    """Where each generated video goes: ``paths[i]`` for video i, and the export format."""

    paths: list[Path]
    format: str


def plan_outputs(
    out: str | None,
    fmt: str | None,
    prompts: Sequence[tuple[int | None, str]],
    num_videos: int,
    *,
    batch: bool,
) -> OutputPlan:
    """Output paths for ``num_videos`` videos of each prompt, checked before any work is done.

    Single prompt: ``-o`` is the file (or PNG folder); default ``<prompt slug>.<format>``; with several
    videos, ``_<k>`` is added to its stem. Batch (``--prompts``): ``-o`` is a directory (default
    ``videos``) and each file is named ``<line number>-<slug>[_<k>].<format>``.
    """
    if batch:
        directory = Path(out if out is not None else "videos")
        if out is not None and Path(out).suffix and not out.endswith(("/", os.sep)):
            raise ValueError(f"with --prompts, -o names a directory; got {out!r}")
        fmt = fmt or "mp4"
        suffix = default_suffix(fmt)
        paths = []
        for line, prompt in prompts:
            stem = f"{line:04d}-{slugify(prompt)}"
            paths.extend(directory / f"{stem}{_index(k, num_videos)}{suffix}" for k in range(num_videos))
        return OutputPlan(paths, fmt)
    _, prompt = prompts[0]
    if out is None:
        fmt = fmt or "mp4"
        base = Path(f"{slugify(prompt)}{default_suffix(fmt)}")
    else:
        base = Path(out)
        by_path = resolve_format(out)
        if fmt is None:
            fmt = by_path
        elif Path(out).suffix and by_path != fmt:
            raise ValueError(f"-o {out!r} has the suffix of {by_path}, but --format is {fmt}")
        elif not Path(out).suffix:
            base = Path(f"{out.rstrip('/' + os.sep)}{default_suffix(fmt)}")
    paths = [base.with_name(f"{base.stem}{_index(k, num_videos)}{base.suffix}") for k in range(num_videos)]
    return OutputPlan(paths, fmt)


def _index(k: int, count: int) -> str:
    return f"_{k}" if count > 1 else ""


def process_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``), None where unknown.

    The kernel's start time is the fork's: when a shell execs the command in place (the last command
    of ``bash -c 'pip install . && imagen-video generate ...'``), it includes what the shell ran first.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in clock ticks
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


def timing_report(output: CascadeOutput, total: float, batch: tuple[int, int] | None = None) -> str:
    """One line: text encoding, each stage's seconds, the total, and the process's age.

    With ``batch = (k, n)`` and n > 1 the stage seconds are batch k's and the line says so; the
    elapsed time counts from the start of the command.
    """
    parts = [f"text {output.text_seconds:.2f}s"]  # 2 decimals: a stage on a GPU takes 0.02-0.2 s
    parts += [f"{name} {seconds:.2f}s" for name, seconds in output.timings.items()]
    if batch is not None and batch[1] > 1:
        line = f"batch {batch[0]}/{batch[1]} timings: {', '.join(parts)}; elapsed {total:.1f}s"
    else:
        line = f"timings: {', '.join(parts)}; total {total:.1f}s"
    process = process_seconds()
    return line + (f" ({process:.1f}s including process start)" if process is not None else "")
