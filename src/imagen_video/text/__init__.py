"""Frozen text encoders and the embedding cache (paper sec. 2.2: frozen T5-XXL contextual embeddings).

- :func:`load_text_encoder` (``"embedded"``, ``"t5:<hub-name-or-dir>"`` or a T5 directory) returns a
  :class:`TextEncoder`; ``encode(prompts)`` gives :class:`TextEmbeddings` ``tokens (B, L, D)``,
  ``mask (B, L)`` and per-prompt ``truncated`` flags.
- :class:`EmbeddingCache` stores embeddings on disk for one encoder identity; :class:`CachedTextEncoder`
  serves them through the same ``encode`` interface.

Importing this package loads no weights and does not import ``transformers``.
"""

from imagen_video.text.base import (
    TextEmbeddings,
    TextEncoder,
    TextEncoderUnavailable,
    TextTruncationWarning,
)
from imagen_video.text.cache import CacheBuildStats, CachedTextEncoder, EmbeddingCache
from imagen_video.text.captions import read_manifest_captions
from imagen_video.text.embedded import EMBEDDED_MODEL_NAME, embedded_model_dir
from imagen_video.text.hf import HFTextEncoder
from imagen_video.text.load import load_text_encoder

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "CacheBuildStats",
    "CachedTextEncoder",
    "EmbeddingCache",
    "HFTextEncoder",
    "TextEmbeddings",
    "TextEncoder",
    "TextEncoderUnavailable",
    "TextTruncationWarning",
    "embedded_model_dir",
    "load_text_encoder",
    "read_manifest_captions",
]
