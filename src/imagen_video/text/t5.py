"""Frozen T5 encoders through ``transformers``: the paper's text encoder (sec. 2.2, T5-XXL).

A source is a local directory (config.json, weights, tokenizer) or a hub name such as
``google/t5-v1_1-xxl``. Hub names are looked up in the Hugging Face cache first, without touching
the network; only when they are missing there and ``HF_HUB_OFFLINE`` is not set is the hub asked,
once, after a 3 s reachability probe (``huggingface_hub`` itself would retry an unreachable hub for
about 30 s). Missing weights raise :class:`TextEncoderUnavailable` naming the source.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import torch

from imagen_video.text.base import TextEncoderUnavailable
from imagen_video.text.hf import HFTextEncoder, resolve_dtype, weights_fingerprint

T5_DEFAULT_MAX_LENGTH = 64  # Imagen used 128 T5 tokens; 64 covers the short captions of this project
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}


class _NotT5ModelError(ValueError):
    """The source holds a model whose config.json is not ``model_type: t5``."""


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network access."""
    return any(
        os.environ.get(var, "").strip().upper() in _OFFLINE_VALUES
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when a TCP connection to the hub endpoint (``HF_ENDPOINT``) opens within ``timeout`` s.

    Behind a proxy (``HTTPS_PROXY`` / ``ALL_PROXY``) the direct probe says nothing, so it answers True.
    """
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_t5_directory(path: str | Path) -> bool:
    """True when ``path`` is a directory whose config.json declares ``model_type: t5``."""
    config = Path(path).expanduser() / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "t5"
    except (ValueError, AttributeError):
        return False


def load_t5_encoder(
    source: str,
    *,
    max_length: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
) -> HFTextEncoder:
    """Load a frozen ``T5EncoderModel`` and its tokenizer from a local directory or hub name.

    Paper sec. 2.2 (frozen T5-XXL contextual embeddings). ``max_length`` defaults to 64 tokens;
    ``dtype`` is the compute dtype (float32 default, bfloat16 for GPUs); outputs are float32.
    """
    torch_dtype = resolve_dtype(dtype)
    device = torch.device(device)
    local = Path(source).expanduser()
    if local.is_dir() or not _HUB_NAME.match(source):
        tokenizer, model = _load_local(local, torch_dtype)
        directory, model_name = local.resolve(), local.resolve().name
    else:
        tokenizer, model, directory = _load_hub(source, torch_dtype)
        model_name = source
    return HFTextEncoder(
        tokenizer=tokenizer,
        model=model.to(device=device, dtype=torch_dtype),
        kind="t5",
        model_name=model_name,
        weights_hash=weights_fingerprint(directory),
        max_length=T5_DEFAULT_MAX_LENGTH if max_length is None else max_length,
        device=device,
    )


def _load_local(directory: Path, torch_dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """Load tokenizer and encoder from ``directory`` (no network); errors name the directory."""
    hint = "it needs config.json, the weights (*.safetensors or pytorch_model*.bin) and the tokenizer"
    if not directory.is_dir():
        raise TextEncoderUnavailable(
            f"T5 encoder directory {str(directory)!r} does not exist; {hint}, or name a cached hub "
            f"model such as 't5:google/t5-v1_1-xxl'"
        )
    weights = [p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin")]
    if not (directory / "config.json").is_file() or not weights:
        raise TextEncoderUnavailable(f"T5 encoder directory {str(directory)!r} is incomplete: {hint}")
    try:
        return _load_pretrained(str(directory), local_files_only=True, torch_dtype=torch_dtype)
    except _NotT5ModelError:
        raise
    except (OSError, ValueError, ImportError) as err:
        raise TextEncoderUnavailable(
            f"cannot load the T5 encoder from {str(directory)!r}: {_first_line(err)}{_tokenizer_hint(err)}"
        ) from err


def _load_hub(name: str, torch_dtype: torch.dtype) -> tuple[Any, torch.nn.Module, Path]:
    """Load ``name`` from the HF cache, else (network allowed) from the hub; return its snapshot dir."""
    try:
        tokenizer, model = _load_pretrained(name, local_files_only=True, torch_dtype=torch_dtype)
    except _NotT5ModelError:
        raise
    except (ValueError, ImportError) as err:  # the files are cached but unusable: asking the hub won't help
        raise TextEncoderUnavailable(
            f"cannot load the T5 encoder {name!r} from the Hugging Face cache: "
            f"{_first_line(err)}{_tokenizer_hint(err)}"
        ) from err
    except OSError as cached_err:  # not (fully) cached
        if hub_offline():
            raise _hub_unavailable(name, cached_err, "HF_HUB_OFFLINE is set") from cached_err
        if not hub_reachable():
            raise _hub_unavailable(name, cached_err, "the hub is unreachable") from cached_err
        try:
            tokenizer, model = _load_pretrained(name, local_files_only=False, torch_dtype=torch_dtype)
        except _NotT5ModelError:
            raise
        except (OSError, ValueError, ImportError) as hub_err:
            raise _hub_unavailable(name, hub_err, "the hub refused it") from hub_err
    from huggingface_hub import try_to_load_from_cache

    config_path = try_to_load_from_cache(name, "config.json")
    if not isinstance(config_path, str):
        raise TextEncoderUnavailable(f"T5 encoder {name!r} loaded but its files are not in the HF cache")
    return tokenizer, model, Path(config_path).parent


def _load_pretrained(
    source: str, *, local_files_only: bool, torch_dtype: torch.dtype
) -> tuple[Any, torch.nn.Module]:
    """Load config, tokenizer and ``T5EncoderModel``; refuse non-T5 configs and missing weights."""
    from transformers import AutoConfig, AutoTokenizer, T5EncoderModel

    config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    if config.model_type != "t5":
        raise _NotT5ModelError(
            f"{source!r} holds a {config.model_type!r} model; the t5 text encoder needs model_type 't5'"
        )
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    model, info = T5EncoderModel.from_pretrained(
        source, config=config, local_files_only=local_files_only, dtype=torch_dtype, output_loading_info=True
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise OSError(f"its weights lack {len(missing)} encoder tensor(s), e.g. {missing[:3]}")
    return tokenizer, model


def _hub_unavailable(name: str, err: BaseException, reason: str) -> TextEncoderUnavailable:
    """One-line error naming the hub model, the offline setting and how to get the weights."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return TextEncoderUnavailable(
        f"T5 encoder {name!r} is not available: not in the Hugging Face cache {HF_HUB_CACHE} and {reason} "
        f"({_first_line(err)}){_tokenizer_hint(err)}; download it where there is network "
        f"(`huggingface-cli download {name}`, HF_HUB_OFFLINE unset) and copy the cache here, "
        f"or pass a local directory as 't5:/path/to/model'"
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _tokenizer_hint(err: BaseException) -> str:
    """Point at sentencepiece when a slow T5 tokenizer (spiece.model only) cannot be converted."""
    if "sentencepiece" in str(err).lower():
        return " (install `sentencepiece` and `protobuf`, or save a tokenizer.json next to spiece.model)"
    return ""
