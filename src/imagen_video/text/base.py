"""The text-encoder interface shared by T5, the embedded MiniLM default and the embedding cache.

Paper sec. 2.2: every stage of the cascade is conditioned on *contextual* (token-level) embeddings of
the prompt from a frozen text encoder. An encoder maps prompts to ``tokens (B, L, D)`` and
``mask (B, L)`` padded to one fixed ``L = max_length``, so cached embeddings all share one shape.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

import torch


class TextEncoderUnavailable(RuntimeError):
    """The encoder's weights or tokenizer cannot be found (no local files and no usable hub access)."""


class TextTruncationWarning(UserWarning):
    """Some prompts were longer than the encoder's ``max_length`` and were cut (never silent)."""


@dataclasses.dataclass(frozen=True)
class TextEmbeddings:
    """Token-level prompt embeddings (paper sec. 2.2), padded to the encoder's ``max_length``.

    ``tokens`` (B, L, D) float; pad positions hold zero vectors. ``mask`` (B, L) bool, True = real
    token (special tokens included, so an empty prompt still has at least one True). ``truncated``
    has one flag per prompt: True when the prompt had more than L tokens and was cut.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    truncated: list[bool]

    def __post_init__(self) -> None:
        if self.tokens.ndim != 3 or self.mask.ndim != 2 or self.mask.dtype != torch.bool:
            raise ValueError(
                f"TextEmbeddings expects tokens (B, L, D) and a bool mask (B, L); got tokens "
                f"{tuple(self.tokens.shape)}, mask {tuple(self.mask.shape)} {self.mask.dtype}"
            )
        if self.tokens.shape[:2] != self.mask.shape or len(self.truncated) != self.mask.shape[0]:
            raise ValueError(
                f"TextEmbeddings: tokens {tuple(self.tokens.shape)}, mask {tuple(self.mask.shape)} and "
                f"{len(self.truncated)} truncation flags disagree on (B, L)"
            )

    def __len__(self) -> int:
        """Number of prompts B."""
        return len(self.truncated)

    def to(self, device: str | torch.device) -> TextEmbeddings:
        """Return a copy with ``tokens`` and ``mask`` on ``device``."""
        return TextEmbeddings(self.tokens.to(device), self.mask.to(device), list(self.truncated))

    @staticmethod
    def concatenate(parts: Sequence[TextEmbeddings]) -> TextEmbeddings:
        """Join embeddings of consecutive prompt batches along B (all parts share L and D)."""
        if not parts:
            raise ValueError("TextEmbeddings.concatenate needs at least one part")
        tokens = torch.cat([p.tokens for p in parts])  # (B, L, D)
        mask = torch.cat([p.mask for p in parts])  # (B, L)
        return TextEmbeddings(tokens, mask, [flag for p in parts for flag in p.truncated])


class TextEncoder(abc.ABC):
    """A frozen prompt encoder (paper sec. 2.2): ``encode(prompts) -> TextEmbeddings``.

    Implementations are deterministic and never track gradients; ``identity`` names the encoder kind,
    the model name, a short hash of the weights and ``max_length``, so an embedding cache built with
    one encoder can refuse to serve another.
    """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Embedding width D."""

    @property
    @abc.abstractmethod
    def max_length(self) -> int:
        """Fixed token length L every prompt is padded (or truncated) to."""

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """Stable string naming the encoder kind, model name, weights hash and max length."""

    @abc.abstractmethod
    def encode(
        self, prompts: Sequence[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        """Encode prompts to token embeddings ``(B, L, D)`` float32 with a mask ``(B, L)``.

        ``batch_size`` bounds how many prompts run through the network at once; when any prompt is
        truncated a :class:`TextTruncationWarning` names how many (unless ``warn_truncation`` is False).
        """


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Return ``prompts`` as a list, raising TypeError naming the first entry that is not a str."""
    if isinstance(prompts, str):
        raise TypeError("encode expects a sequence of prompts, got a single str; wrap it in a list")
    prompts = list(prompts)
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompt {index} is {type(prompt).__name__} {prompt!r}; prompts must be str")
    return prompts


def check_batch_size(batch_size: int) -> None:
    """Raise ValueError unless ``batch_size`` is a positive int."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def truncation_message(num_truncated: int, num_prompts: int, max_length: int, identity: str) -> str:
    """One-line warning text naming how many prompts were truncated to ``max_length`` tokens."""
    return (
        f"{num_truncated} of {num_prompts} prompt(s) were longer than max_length={max_length} tokens "
        f"and were truncated by text encoder {identity}; raise max_length to keep them whole"
    )
