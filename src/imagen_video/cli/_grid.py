"""``--format grid`` of ``generate`` / ``upsample``: every video of the run in one PNG contact sheet
(a row per video, up to 16 evenly spaced frames, labelled with its prompt; :mod:`imagen_video.viz`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from imagen_video.cascade.runner import CascadeOutput


class GridSheet:
    """Collects the outputs of a run and writes them as one grid PNG at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.videos: list[torch.Tensor] = []
        self.labels: list[str | None] = []

    def add(self, output: CascadeOutput) -> None:
        """Keep the videos (N, C, T, H, W) of one batch and their prompts."""
        self.videos.extend(output.video)
        self.labels.extend(output.prompts)

    def write(self, scale: int = 1) -> Path:
        """Write the sheet (atomically) and return its path."""
        from imagen_video.viz import write_grid

        return write_grid(self.videos, self.path, self.labels, scale=None if scale == 1 else scale)


def grid_sheet(
    output: str | os.PathLike[str] | None, fmt: str | None, prompts: Sequence[tuple[int | None, str]]
) -> GridSheet | None:
    """A :class:`GridSheet` when ``--format grid`` or ``-o`` ends in ``.png``, else None.

    Default path: ``<first prompt's slug>.png``; a ``-o`` without a suffix gets ``.png``; a ``-o``
    with another suffix is an error (ValueError).
    """
    from imagen_video.cli._outputs import slugify

    text = os.fspath(output) if output is not None else None
    by_suffix = text is not None and Path(text).suffix.lower() == ".png"
    if fmt != "grid" and not by_suffix:
        return None
    if text is None:
        return GridSheet(Path(f"{slugify(prompts[0][1])}.png"))
    path = Path(text.rstrip("/" + os.sep))
    if path.suffix and path.suffix.lower() != ".png":
        raise ValueError(f"--format grid writes one PNG; -o {text!r} has the suffix {path.suffix}")
    return GridSheet(path if path.suffix else path.with_suffix(".png"))
