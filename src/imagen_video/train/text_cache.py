"""Text embeddings for training: every caption encoded once, up front, into an ``EmbeddingCache``.

Paper sec. 2.2: the text encoder is frozen, so its outputs can be precomputed. Training builds (or
extends) the cache with all dataset captions and preview prompts before the first step; the loop
then only reads cached rows, so the encoder never runs per step (peers.md: imagen-pytorch #137).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagen_video.text import EmbeddingCache, TextEmbeddings, load_text_encoder
from imagen_video.train.config import TrainSetupError


def prepare_text_cache(
    directory: str | Path,
    captions: Sequence[str],
    *,
    encoder_name: str,
    max_length: int,
    text_dim: int,
    device: str = "cpu",
    progress: bool = True,
) -> EmbeddingCache:
    """Open the cache at ``directory`` if it already holds every caption, else encode the missing ones.

    The encoder (``encoder_name``, e.g. ``"embedded"``) is loaded only when captions are missing; an
    existing cache of another encoder is then refused by ``EmbeddingCache.build``. A complete cache is
    used without loading the encoder, so its encoder identity is not checked then (only its shape): a
    cache whose token length or width disagrees with ``max_length`` / the stage's ``text_dim`` raises
    :class:`TrainSetupError`.
    """
    directory = Path(directory)
    cache = None
    if (directory / "index.json").is_file():
        cache = EmbeddingCache.open(directory)
        _check_shape(cache, max_length, text_dim)
        if cache.missing(captions):
            cache = None
    if cache is None:
        encoder = load_text_encoder(encoder_name, max_length=max_length, device=device)
        cache = EmbeddingCache.build(directory, encoder, list(captions), progress=progress)
        _check_shape(cache, max_length, text_dim)
    return cache


def open_run_text_cache(
    cache_dir: str | Path | None,
    out_dir: Path,
    captions: Sequence[str],
    *,
    encoder: str,
    max_length: int,
    text_dim: int,
    device: str,
    progress: bool,
) -> EmbeddingCache:
    """:func:`prepare_text_cache` of a training or distillation run: ``cache_dir``, by default
    ``out_dir/text_cache``, holding every one of ``captions``."""
    directory = Path(cache_dir) if cache_dir is not None else out_dir / "text_cache"
    return prepare_text_cache(
        directory,
        captions,
        encoder_name=encoder,
        max_length=max_length,
        text_dim=text_dim,
        device=device,
        progress=progress,
    )


def _check_shape(cache: EmbeddingCache, max_length: int, text_dim: int) -> None:
    if cache.max_length != max_length or cache.dim != text_dim:
        raise TrainSetupError(
            f"text embedding cache {cache.directory} holds (L={cache.max_length}, D={cache.dim}) "
            f"embeddings but the stage needs (L={max_length}, D={text_dim}); use another --text-cache"
        )


def lookup(cache: EmbeddingCache, captions: Sequence[str]) -> TextEmbeddings:
    """Cached embeddings of ``captions`` in order: tokens (B, L, D) float32, mask (B, L), on CPU."""
    return cache.lookup(list(captions))
