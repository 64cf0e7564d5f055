"""The served cascades' text encoder, remembering which prompts it had to truncate.

A job's ``warning`` says when its prompt was longer than the encoder's token length. The flags come
with the embeddings a batch is sampled from (paper sec. 2.2: the frozen encoder runs once per
prompt), so the server does not encode a batch's prompts a second time to learn them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from imagen_video.text.base import TextEmbeddings, TextEncoder

REMEMBERED = 4096  # prompts whose flags are kept (the oldest are forgotten first)


class RecordingEncoder(TextEncoder):
    """``encoder`` itself (same embeddings, width, token length and identity), remembering the
    truncation flag of every prompt it encoded."""

    def __init__(self, encoder: TextEncoder) -> None:
        """Wrap a loaded encoder."""
        self.encoder = encoder
        self._flags: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Embedding width D of the wrapped encoder."""
        return self.encoder.dim

    @property
    def max_length(self) -> int:
        """Token length L of the wrapped encoder."""
        return self.encoder.max_length

    @property
    def identity(self) -> str:
        """Identity of the wrapped encoder."""
        return self.encoder.identity

    def encode(
        self, prompts: Sequence[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        """The wrapped encoder's embeddings; remembers each prompt's truncation flag."""
        embeddings = self.encoder.encode(prompts, batch_size=batch_size, warn_truncation=warn_truncation)
        with self._lock:
            for prompt, flag in zip(prompts, embeddings.truncated, strict=True):
                self._flags[prompt] = flag
                self._flags.move_to_end(prompt)
            while len(self._flags) > REMEMBERED:
                self._flags.popitem(last=False)
        return embeddings

    def truncated(self, prompts: Sequence[str]) -> list[bool]:
        """Whether each prompt was truncated; prompts not remembered are encoded now."""
        with self._lock:
            missing = [prompt for prompt in prompts if prompt not in self._flags]
        if missing:
            self.encode(missing, warn_truncation=False)
        with self._lock:
            return [self._flags.get(prompt, False) for prompt in prompts]


def truncated(encoder: TextEncoder, prompts: Sequence[str]) -> list[bool]:
    """Whether each prompt is longer than ``encoder``'s token length (remembered by a
    :class:`RecordingEncoder`, else found by encoding the prompts)."""
    if isinstance(encoder, RecordingEncoder):
        return encoder.truncated(prompts)
    return encoder.encode(list(prompts), warn_truncation=False).truncated
