"""Imagen Video (Ho et al. 2022): text-to-video generation by a cascade of video diffusion models.

Importing the package loads no weights and touches no network; heavy pieces are imported lazily.
"""

__version__ = "0.1.0"

from typing import Any


def __getattr__(name: str) -> Any:
    """``from imagen_video import Cascade`` without importing torch at package import."""
    if name == "Cascade":
        from imagen_video.cascade.runner import Cascade

        return Cascade
    raise AttributeError(f"module 'imagen_video' has no attribute {name!r}")
