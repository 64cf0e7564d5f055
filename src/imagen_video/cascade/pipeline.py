"""The cascade as a diffusers user expects it: callable, movable, printable, its output savable.

:class:`PipelineMixin` gives :class:`~imagen_video.cascade.runner.Cascade` ``cascade("a prompt",
seed=0)``, ``cascade.to(device)`` and a repr naming the stages and their shapes (paper sec. 2.2,
Figure 6); :func:`save_output` is ``CascadeOutput.save``: every format ``imagen-video generate``
writes (``.mp4``, ``.gif``, ``.webp``, a PNG frame folder) plus ``grid``, one PNG contact sheet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from imagen_video.device import resolve_device

if TYPE_CHECKING:
    from imagen_video.cascade.config import CascadeConfig
    from imagen_video.cascade.runner import CascadeOutput

GRID = "grid"
SAVE_FORMATS: tuple[str, ...] = ("mp4", "gif", "webp", "png", GRID)


class PipelineMixin:
    """``__call__``, ``to`` and ``__repr__`` of a cascade (needs ``config``, ``models``, ``device``,
    ``dtype`` and ``generate``)."""

    config: CascadeConfig
    models: dict[str, torch.nn.Module]
    device: torch.device
    dtype: torch.dtype | None

    def __call__(
        self,
        prompts: str | Sequence[str],
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> CascadeOutput:
        """``generate(prompts, ...)``; ``seed`` seeds a fresh generator (give ``seed`` or ``generator``)."""
        if seed is not None and generator is not None:
            raise ValueError("give seed or generator, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        return self.generate(prompts, generator=generator, **kwargs)  # type: ignore[attr-defined]

    def to(self, device: str | torch.device) -> PipelineMixin:
        """Move every stage network to ``device`` (``"auto"``: CUDA, then MPS, then CPU); returns self.

        The text encoder stays where it was loaded; its embeddings are moved to ``device`` per call.
        """
        target = resolve_device(device)
        if self.dtype not in (None, torch.float32) and target.type == "cpu":
            raise ValueError(f"dtype {self.dtype} needs a GPU device; on the CPU the cascade runs in float32")
        for model in self.models.values():
            model.to(target)
        self.device = target
        return self

    def __repr__(self) -> str:
        """The cascade's name, text encoder, device and each stage's kind and output shape."""
        lines = [
            f"Cascade({self.config.name!r}, text_encoder={self.config.text_encoder!r} "
            f"({self.config.text_max_length} tokens), device={str(self.device)!r}, stages=["
        ]
        for stage in self.config.stages:
            params = sum(p.numel() for p in self.models[stage.name].parameters())
            lines.append(
                f"  {stage.name}: {stage.kind} -> {stage.frames}x{stage.height}x{stage.width} "
                f"(frames x height x width) at {stage.fps:g} fps, {params / 1e6:.2f}M parameters,"
            )
        lines.append("])")
        return "\n".join(lines)


def save_output(
    output: CascadeOutput,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    scale: int = 1,
) -> list[Path]:
    """Write ``output`` to ``path``; returns the written paths.

    ``format``: ``mp4``, ``gif``, ``webp``, ``png`` (a folder of PNG frames) or ``grid`` (one PNG,
    a row per video labelled with its prompt); default from the suffix, where ``.png`` means
    ``grid`` and no suffix a PNG frame folder. A grid holds every video in one file; the other
    formats write one file per video, ``<stem>_<k><suffix>`` when there are several.
    """
    from imagen_video.cascade.export import default_suffix, resolve_format, write_video
    from imagen_video.viz import write_grid

    target = Path(path)
    if format is None and target.suffix.lower() == ".png":
        format = GRID
    if format == GRID:
        return [write_grid(output.video, target, list(output.prompts), scale=None if scale == 1 else scale)]
    fmt = resolve_format(target, format)
    if fmt != "png" and not target.suffix:
        target = target.with_suffix(default_suffix(fmt))
    count = output.video.shape[0]
    paths = [target]
    if count > 1:
        paths = [target.with_name(f"{target.stem}_{k}{target.suffix}") for k in range(count)]
    return [
        write_video(video, p, output.fps, format=fmt, scale=scale)
        for video, p in zip(output.video, paths, strict=True)
    ]
