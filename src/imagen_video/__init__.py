"""Imagen Video (Ho et al. 2022): text-to-video generation by a cascade of video diffusion models.

``from imagen_video import Cascade`` is the library's front door::

    cascade = Cascade.from_pretrained("demo")  # a shipped cascade, or a cascade directory
    video = cascade.generate(["a red circle moving right"]).video  # (B, C, T, H, W) in [0, 1]

Importing the package loads no weights and touches no network; :class:`Cascade` (and torch with it)
is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagen_video.cascade.runner import Cascade

__version__ = "0.1.0"
__all__ = ["Cascade", "__version__"]


def __getattr__(name: str) -> Any:
    """Lazy attributes of the package: ``Cascade`` (imports torch on first access)."""
    if name == "Cascade":
        from imagen_video.cascade.runner import Cascade

        return Cascade
    raise AttributeError(f"module 'imagen_video' has no attribute {name!r}")
