"""Imagen Video (Ho et al. 2022): text-to-video generation by a cascade of video diffusion models.

Importing the package loads no weights and touches no network; heavy pieces are imported lazily.
"""

__version__ = "0.1.0"
