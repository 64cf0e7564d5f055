"""``--lora DIR[:SCALE]`` for the commands that load a cascade (``generate``, ``upsample``): parse
every option first, load the cascade, then merge the adapters (docs/finetuning.md). Kept apart from
:mod:`imagen_video.finetune.adapter` so a run without ``--lora`` never imports ``peft``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagen_video.cascade.runner import Cascade


def load_with_adapters(
    load: Callable[[], Cascade], model_dir: str | os.PathLike[str], options: Sequence[str]
) -> Cascade:
    """``load()`` the cascade from ``model_dir`` and merge the ``--lora`` adapters ``options`` into it.

    Every option is parsed (and its folder found) before the cascade loads, so a typo fails fast; an
    adapter trained on other base weights is refused (``AdapterError``, a ``ValueError``).
    """
    if not options:
        return load()
    from imagen_video.finetune.adapter import apply_adapters, parse_lora_option, require_peft

    adapters = [parse_lora_option(text) for text in options]
    require_peft()
    return apply_adapters(load(), model_dir, adapters)


def merge_into_cascade(
    model: str | os.PathLike[str], options: Sequence[str], out_dir: str | os.PathLike[str]
) -> Path:
    """``cascade merge-lora``: load the cascade ``model`` (a directory or shipped name), merge the
    ``--lora``-style ``options`` into it and save it to ``out_dir`` (plain stage folders; no peft
    needed to load them). Refuses to overwrite the base cascade."""
    from imagen_video.cascade.registry import resolve_model_dir
    from imagen_video.cascade.runner import Cascade

    model_dir = resolve_model_dir(model)
    if Path(out_dir).resolve() == model_dir.resolve():
        raise ValueError(f"--out {str(out_dir)!r} is the base cascade; choose a new directory")
    cascade = load_with_adapters(lambda: Cascade.from_pretrained(model_dir), model_dir, options)
    return cascade.save_pretrained(out_dir)
