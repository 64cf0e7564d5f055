"""The cascades that ship inside the package, by name, and how a name or path becomes a directory.

``demo`` is the trained demo cascade (``imagen_video/assets/demo_cascade``, see
docs/demo-cascade.md); ``demo-distilled`` holds its distilled stages (paper sec. 2.7, see
docs/distillation.md). :meth:`imagen_video.Cascade.from_pretrained` and every command that takes
``--model`` resolve names through :func:`resolve_model_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_CASCADES = {"demo": "demo_cascade", "demo-distilled": "demo_cascade_distilled"}  # name -> asset
DEFAULT_CASCADE = "demo-distilled"  # what `generate` runs without --model (see docs/distillation.md)


def shipped_cascade_dir(name: str) -> Path:
    """Directory of a cascade that ships inside the package: ``demo`` (the trained demo cascade,
    ``imagen_video/assets/demo_cascade``) or ``demo-distilled`` (its distilled stages, paper sec. 2.7)."""
    from importlib.resources import files

    if name not in SHIPPED_CASCADES:
        raise ValueError(f"no shipped cascade {name!r}; shipped: {', '.join(SHIPPED_CASCADES)}")
    return Path(str(files("imagen_video"))) / "assets" / SHIPPED_CASCADES[name]


def default_model_dir() -> Path:
    """The cascade ``generate`` runs without ``--model``: the shipped ``DEFAULT_CASCADE``."""
    return shipped_cascade_dir(DEFAULT_CASCADE)


def resolve_model_dir(value: str | os.PathLike[str] | None) -> Path:
    """A cascade name or path to a directory: None -> the default cascade; a shipped name (``demo``,
    ``demo-distilled``) -> its asset directory unless a path of that name exists; else the path."""
    if value is None:
        return default_model_dir()
    path = Path(value)
    if str(value) in SHIPPED_CASCADES and not path.exists():
        return shipped_cascade_dir(str(value))
    return path
