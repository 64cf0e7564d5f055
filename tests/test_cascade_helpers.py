"""Shared pieces of the cascade tests (no tests here): a deterministic stand-in text encoder and a
forward-call counter for stage networks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import torch

from imagen_video.text import TextEmbeddings, TextEncoder


class HashTextEncoder(TextEncoder):
    """A frozen 'encoder' whose token vectors are seeded by a hash of each prompt (no weights).

    Real encoders are exercised by the CLI tests; this one keeps the runner tests fast and counts
    its calls so tests can check when the cascade encodes.
    """

    def __init__(self, dim: int = 384, max_length: int = 16) -> None:
        self._dim, self._max_length = dim, max_length
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def identity(self) -> str:
        return f"hash:{self._dim}:L{self._max_length}"

    def encode(
        self, prompts: Sequence[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        self.calls.append(list(prompts))
        tokens = []
        for prompt in prompts:
            seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:6], "little")
            generator = torch.Generator().manual_seed(seed)
            tokens.append(torch.randn(self._max_length, self._dim, generator=generator))
        mask = torch.ones(len(prompts), self._max_length, dtype=torch.bool)
        mask[:, self._max_length // 2 :] = False
        return TextEmbeddings(torch.stack(tokens), mask, [False] * len(prompts))


class CountingNetwork(torch.nn.Module):
    """Wraps a stage network and records (batch size, drop_text, guidance_w) of every forward."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.calls: list[tuple[int, torch.Tensor | None, torch.Tensor | None]] = []

    def forward(self, z_t: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        drop = kwargs.get("drop_text")
        w = kwargs.get("guidance_w")
        copy = (None if t is None else t.clone() for t in (drop, w))
        self.calls.append((z_t.shape[0], *copy))
        return self.inner(z_t, *args, **kwargs)


def single_thread() -> Iterator[None]:
    """Body of a module fixture: run torch on one thread (tiny tensors; on a busy 2-core machine two
    OpenMP threads wait on each other), restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
