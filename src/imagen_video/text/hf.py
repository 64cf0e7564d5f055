"""A frozen ``transformers`` encoder (T5 or the embedded MiniLM) behind the :class:`TextEncoder` interface.

Paper sec. 2.2: the prompt is encoded once by a frozen encoder and its contextual token embeddings
(the last hidden states, one vector per token) condition every diffusion stage. ``transformers`` is
imported only inside the loaders, never at import time.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from imagen_video.text.base import (
    TextEmbeddings,
    TextEncoder,
    TextTruncationWarning,
    check_batch_size,
    check_prompts,
    truncation_message,
)

ALLOWED_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16"}
# Files whose bytes decide the embeddings: weights, model config and tokenizer files.
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_FINGERPRINT_NAMES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "spiece.model",
)
_FULL_HASH_LIMIT = 256 * 2**20  # files up to this size are hashed whole
_SAMPLE_COUNT, _SAMPLE_SIZE = 16, 2**20  # larger files: size plus 16 evenly spaced 1 MiB samples


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """Map ``None`` / a name / a torch dtype to the encoder's compute dtype (float32 by default)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype in ALLOWED_DTYPES.values():
            return dtype
    elif isinstance(dtype, str):
        name = _DTYPE_ALIASES.get(dtype, dtype)
        if name in ALLOWED_DTYPES:
            return ALLOWED_DTYPES[name]
    raise ValueError(
        f"text encoder dtype {dtype!r} is not supported; allowed: None, {sorted(ALLOWED_DTYPES)} "
        f"(or the torch dtypes; float16 is excluded because T5 overflows in it)"
    )


def weights_fingerprint(directory: str | Path) -> str:
    """Short sha256 (12 hex digits) over the weight, config and tokenizer files in ``directory``.

    Files up to 256 MiB are hashed whole; larger ones (T5-XXL shards) by their size and 16 evenly
    spaced 1 MiB samples, so loading a multi-GB encoder does not read every byte twice.
    """
    directory = Path(directory)
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name in _FINGERPRINT_NAMES)
    )
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= _FULL_HASH_LIMIT:
                while chunk := handle.read(8 * 2**20):
                    digest.update(chunk)
            else:
                for i in range(_SAMPLE_COUNT):
                    handle.seek((size - _SAMPLE_SIZE) * i // (_SAMPLE_COUNT - 1))
                    digest.update(handle.read(_SAMPLE_SIZE))
    return digest.hexdigest()[:12]


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' progress bars while a small local model loads; the setting is restored after.

    transformers 5.x draws a per-tensor "Loading weights" bar on stderr for every ``from_pretrained``
    (4.x draws none for a single weight file), which would print even under ``--quiet``. This also
    pauses ``huggingface_hub``'s bars, so wrap only loads that need no download.
    """
    from transformers.utils import logging as hf_logging

    if not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class HFTextEncoder(TextEncoder):
    """A frozen ``transformers`` encoder returning its last hidden states per token (paper sec. 2.2).

    Built by :func:`imagen_video.text.load_text_encoder`; holds an already-loaded tokenizer and model.
    The model is put in eval mode with ``requires_grad`` off and runs under ``torch.inference_mode``;
    prompts are padded to exactly ``max_length`` tokens (pad positions: mask False, zero vectors).
    """

    def __init__(
        self,
        *,
        tokenizer: Any,
        model: torch.nn.Module,
        kind: str,
        model_name: str,
        weights_hash: str,
        max_length: int,
        device: torch.device,
    ) -> None:
        """Wrap a loaded ``tokenizer`` and ``model``; ``max_length`` is validated against both."""
        self._tokenizer = tokenizer
        self._model = model.eval().requires_grad_(False)
        self._device = device
        self._max_length = _check_max_length(max_length, tokenizer, model)
        self._identity = f"{kind}:{model_name}@{weights_hash}:L{self._max_length}"

    @property
    def dim(self) -> int:
        """Embedding width D (``hidden_size`` of the model: 384 for MiniLM, 4096 for T5-XXL)."""
        return int(self._model.config.hidden_size)

    @property
    def max_length(self) -> int:
        """Token length L that every prompt is padded or truncated to."""
        return self._max_length

    @property
    def identity(self) -> str:
        """``"<kind>:<model name>@<weights hash>:L<max_length>"``, e.g. ``"t5:google/t5-v1_1-xxl@…:L64"``."""
        return self._identity

    @property
    def device(self) -> torch.device:
        """Device the model runs on (outputs are returned there)."""
        return self._device

    def __repr__(self) -> str:
        return f"HFTextEncoder({self._identity!r}, dim={self.dim}, device={self._device})"

    def encode(
        self, prompts: Sequence[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        """Encode prompts to ``tokens (B, L, D)`` float32 and ``mask (B, L)`` bool on ``self.device``.

        Prompts run through the network ``batch_size`` at a time; a :class:`TextTruncationWarning`
        names how many prompts were cut to ``max_length`` (``truncated`` flags them one by one).
        """
        prompts = check_prompts(prompts)
        check_batch_size(batch_size)
        if not prompts:
            tokens = torch.zeros(0, self._max_length, self.dim, device=self._device)  # (0, L, D)
            mask = torch.zeros(0, self._max_length, dtype=torch.bool, device=self._device)  # (0, L)
            return TextEmbeddings(tokens, mask, [])
        parts = [
            self._encode_batch(prompts[start : start + batch_size])
            for start in range(0, len(prompts), batch_size)
        ]
        result = TextEmbeddings.concatenate(parts)
        num_truncated = sum(result.truncated)
        if warn_truncation and num_truncated:
            message = truncation_message(num_truncated, len(prompts), self._max_length, self._identity)
            warnings.warn(message, TextTruncationWarning, stacklevel=2)
        return result

    def _truncated(self, prompts: list[str]) -> list[bool]:
        """Flag prompts with more than L tokens: tokenized up to L + 1, they reach L + 1 iff cut at L."""
        ids = self._tokenizer(prompts, truncation=True, max_length=self._max_length + 1)["input_ids"]
        return [len(row) > self._max_length for row in ids]

    def _encode_batch(self, prompts: list[str]) -> TextEmbeddings:
        """Run one batch through the frozen network; pad positions are zeroed."""
        input_ids, mask, truncated = self._tokenize(prompts)  # (B, L), (B, L) bool
        with torch.inference_mode():
            hidden = self._hidden_states(input_ids, mask)  # (B, L, D)
            tokens = torch.where(mask[..., None], hidden.float(), 0.0)
        # Inference tensors cannot be saved for backward; clones made outside inference_mode are
        # ordinary tensors that a trainable U-Net can consume.
        return TextEmbeddings(tokens.clone(), mask.clone(), truncated)

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        """Token ids (B, L) and bool mask (B, L) on the device, padded and cut to L; the cut flags."""
        batch = self._tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        mask = batch["attention_mask"].to(self._device).bool()
        return batch["input_ids"].to(self._device), mask, self._truncated(prompts)

    def _hidden_states(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network's last hidden states (B, L, D) for (B, L) ids and mask."""
        return self._model(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state


def _check_max_length(max_length: int, tokenizer: Any, model: torch.nn.Module) -> int:
    """Validate ``max_length``: room for one real token after the special tokens, within positions."""
    minimum = tokenizer.num_special_tokens_to_add() + 1
    limit = getattr(model.config, "max_position_embeddings", None)  # None: relative positions (T5)
    too_long = limit is not None and max_length > limit
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < minimum or too_long:
        allowed = f"an int in [{minimum}, {limit}]" if limit is not None else f"an int >= {minimum}"
        raise ValueError(f"text encoder max_length must be {allowed}, got {max_length!r}")
    return max_length
