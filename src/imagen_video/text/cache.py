"""On-disk cache of prompt embeddings, so training never runs the frozen encoder per step (paper sec. 2.2).

Layout of a cache directory (every file written atomically)::

    index.json                 header (format, version, encoder identity, dim, max_length,
                               storage dtype), shard file names and their sha256, and one entry
                               per caption: sha256(caption) -> [shard, row, truncated]
    shard-00000.safetensors    tokens (N, L, D) float32 or float16, mask (N, L) bool, keys (N, 32)
                               uint8: each row's sha256(caption), so a lookup checks the row it reads
    .lock                      held while a build writes (concurrent builds run one after the other)

A cache is built for exactly one encoder identity and refuses to serve another. Lookups read only
the requested rows through memory-mapped ``safe_open`` handles; a shard is checked against its
recorded sha256 when first opened (docs/reliability.md). A malformed ``index.json`` is a ValueError
naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from imagen_video.integrity import check_sha256_field, file_sha256, verify_file
from imagen_video.serialization import atomic_write_json, save_safetensors_atomic
from imagen_video.text.base import (
    TextEmbeddings,
    TextEncoder,
    TextTruncationWarning,
    check_batch_size,
    check_prompts,
    truncation_message,
)

CACHE_FORMAT = "imagen-video-text-embedding-cache"
CACHE_VERSION = 1
INDEX_NAME = "index.json"
SHARD_ROWS = 4096  # captions per safetensors shard
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_SHARD = re.compile(r"shard-[0-9]{5}\.safetensors")


def text_key(text: str) -> str:
    """Cache key of a caption: sha256 of its UTF-8 bytes (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class CacheBuildStats:
    """What one :meth:`EmbeddingCache.build` call did (counts over distinct captions)."""

    unique: int  # distinct captions requested
    encoded: int  # newly encoded and stored
    cached: int  # already present before this build
    truncated: int  # requested captions that were cut to max_length (new or old)


class EmbeddingCache:
    """Prompt embeddings stored on disk for one text encoder (see the module docstring for the layout).

    Create with :meth:`build` (incremental) or :meth:`open`; read with :meth:`lookup`.
    """

    def __init__(
        self,
        directory: Path,
        header: dict[str, Any],
        build_stats: CacheBuildStats | None = None,
        *,
        verify: bool = True,
    ):
        """Wrap a parsed ``index.json``; use :meth:`open` or :meth:`build` rather than this.
        ``verify``: check each shard's sha256 when it is first opened."""
        self._directory = directory
        self._header = header
        self._handles: dict[int, Any] = {}
        self._verify = verify
        self.build_stats = build_stats

    @property
    def directory(self) -> Path:
        """The cache directory."""
        return self._directory

    @property
    def identity(self) -> str:
        """Identity of the encoder that built the cache (see :attr:`TextEncoder.identity`)."""
        return str(self._header["identity"])

    @property
    def dim(self) -> int:
        """Embedding width D."""
        return int(self._header["dim"])

    @property
    def max_length(self) -> int:
        """Token length L of every stored embedding."""
        return int(self._header["max_length"])

    @property
    def storage_dtype(self) -> str:
        """On-disk token dtype: ``"float32"`` (exact) or ``"float16"`` (half the size)."""
        return str(self._header["storage_dtype"])

    def __len__(self) -> int:
        """Number of cached captions."""
        return len(self._header["entries"])

    def __contains__(self, text: object) -> bool:
        """True when the caption ``text`` is cached."""
        return isinstance(text, str) and text_key(text) in self._header["entries"]

    def missing(self, texts: Sequence[str]) -> list[str]:
        """Distinct captions of ``texts`` (first-seen order) that are not cached."""
        return [t for t in dict.fromkeys(check_prompts(texts)) if t not in self]

    @classmethod
    def open(
        cls, directory: str | Path, *, expect_identity: str | None = None, verify: bool = True
    ) -> EmbeddingCache:
        """Open an existing cache; ValueError naming both identities if it was built by another encoder,
        or naming the file and field when ``index.json`` is malformed. ``verify``: check each shard's
        recorded sha256 when it is first read."""
        directory = Path(directory)
        index = directory / INDEX_NAME
        if not index.is_file():
            raise FileNotFoundError(
                f"no text embedding cache at {directory} (no {INDEX_NAME}); build one with "
                f"`imagen-video encode-text --out {directory}`"
            )
        try:
            header = json.loads(index.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{index} is not valid JSON: {err}") from None
        validate_index(header, index)
        if expect_identity is not None and header["identity"] != expect_identity:
            raise ValueError(
                f"text embedding cache {directory} was built by encoder {header['identity']!r}, not "
                f"{expect_identity!r}; rebuild it with that encoder into another directory"
            )
        return cls(directory, header, verify=verify)

    @classmethod
    def build(
        cls,
        directory: str | Path,
        encoder: TextEncoder,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: bool = True,
        *,
        storage_dtype: str | None = None,
    ) -> EmbeddingCache:
        """Encode the captions of ``texts`` not yet cached and store them; return the updated cache.

        Creates the cache if ``directory`` has none, else extends it (refusing a cache of another
        encoder). ``storage_dtype`` is ``"float32"`` (default, exact) or ``"float16"``; a tqdm bar
        shows progress; one :class:`TextTruncationWarning` counts newly truncated captions.
        The returned cache's ``build_stats`` reports what was done.
        """
        directory = Path(directory)
        texts = check_prompts(texts)
        check_batch_size(batch_size)
        if storage_dtype is not None and storage_dtype not in STORAGE_DTYPES:
            allowed = sorted(STORAGE_DTYPES)
            raise ValueError(f"storage_dtype {storage_dtype!r} is not allowed; allowed: {allowed}")
        from imagen_video.io_safety import RunLock

        with RunLock(directory, wait=True, what="text embedding cache"):  # index read inside the lock
            header = cls._header_for_build(directory, encoder, storage_dtype)
            unique = list(dict.fromkeys(texts))
            missing = [t for t in unique if text_key(t) not in header["entries"]]
            num_new_truncated = _encode_into(directory, header, encoder, missing, batch_size, progress)
            atomic_write_json(directory / INDEX_NAME, header)
        if num_new_truncated:
            message = truncation_message(
                num_new_truncated, len(missing), encoder.max_length, encoder.identity
            )
            warnings.warn(message, TextTruncationWarning, stacklevel=2)
        entries = header["entries"]
        stats = CacheBuildStats(
            unique=len(unique),
            encoded=len(missing),
            cached=len(unique) - len(missing),
            truncated=sum(entries[text_key(t)][2] for t in unique),
        )
        return cls(directory, header, stats)

    @classmethod
    def _header_for_build(
        cls, directory: Path, encoder: TextEncoder, storage_dtype: str | None
    ) -> dict[str, Any]:
        """A copy of the existing index to extend (checked against ``encoder``), or a new one."""
        if not (directory / INDEX_NAME).is_file():
            return _new_header(encoder, storage_dtype or "float32")
        cache = cls.open(directory, expect_identity=encoder.identity)
        if storage_dtype not in (None, cache.storage_dtype):
            raise ValueError(
                f"cache {directory} stores {cache.storage_dtype} tokens; cannot add {storage_dtype}"
            )
        return json.loads(json.dumps(cache._header))  # deep copy; the old object stays valid

    def lookup(self, texts: Sequence[str]) -> TextEmbeddings:
        """Cached embeddings of ``texts`` in order: tokens (B, L, D) float32 and mask (B, L), on CPU.

        Raises KeyError naming the first caption that is not cached.
        """
        texts = check_prompts(texts)
        entries = self._header["entries"]
        rows: list[tuple[torch.Tensor, torch.Tensor]] = []
        truncated: list[bool] = []
        for text in texts:
            entry = entries.get(text_key(text))
            if entry is None:
                raise KeyError(
                    f"caption {text!r} is not in the text embedding cache {self._directory} "
                    f"({len(self)} captions); add it with `imagen-video encode-text --out {self._directory}`"
                )
            shard, row, was_truncated = entry
            handle = self._handle(shard)
            self._check_row(handle, shard, row, text)
            rows.append((handle.get_slice("tokens")[row : row + 1], handle.get_slice("mask")[row : row + 1]))
            truncated.append(bool(was_truncated))
        if not rows:
            tokens = torch.zeros(0, self.max_length, self.dim)
            return TextEmbeddings(tokens, torch.zeros(0, self.max_length, dtype=torch.bool), [])
        tokens = torch.cat([r[0] for r in rows]).float()  # (B, L, D)
        mask = torch.cat([r[1] for r in rows])  # (B, L)
        return TextEmbeddings(tokens, mask, truncated)

    def _handle(self, shard: int) -> Any:
        """Memory-mapped reader of one shard, opened (and its sha256 checked) on first use."""
        if shard not in self._handles:
            from safetensors import SafetensorError, safe_open

            name = self._header["shards"][shard]
            path = self._directory / name
            what = f"text embedding cache {self._directory}"
            if not path.is_file():
                raise ValueError(f"{what}: shard {name!r} is missing; rebuild the cache")
            if self._verify:
                verify_file(path, self._header.get("shard_sha256", {}).get(name), what=what)
            try:
                self._handles[shard] = safe_open(str(path), framework="pt")
            except (SafetensorError, OSError) as err:
                raise ValueError(f"{what}: cannot read shard {name!r}: {err}") from None
        return self._handles[shard]

    def _check_row(self, handle: Any, shard: int, row: int, text: str) -> None:
        """The shard row must exist and (in shards that store keys) belong to ``text``."""
        name = self._header["shards"][shard]
        keys = handle.keys()
        if "tokens" not in keys or "mask" not in keys or row >= handle.get_slice("tokens").get_shape()[0]:
            raise ValueError(f"text embedding cache {self._directory}: shard {name!r} has no row {row}")
        if "keys" in keys:
            stored = bytes(handle.get_slice("keys")[row : row + 1].reshape(-1).tolist())
            if stored.hex() != text_key(text):
                raise ValueError(
                    f"text embedding cache {self._directory}: shard {name!r} row {row} belongs to another "
                    f"caption than {text!r}; rebuild the cache"
                )


def validate_index(header: Any, path: Path) -> None:
    """Check a parsed ``index.json`` (types, required keys, ranges, shard names inside the cache);
    ValueError with one line naming the file and the field."""
    if not isinstance(header, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(header).__name__}")
    if header.get("format") != CACHE_FORMAT or header.get("version") != CACHE_VERSION:
        raise ValueError(
            f"{path} is not a {CACHE_FORMAT} version {CACHE_VERSION} index "
            f"(format {header.get('format')!r}, version {header.get('version')!r})"
        )
    if not isinstance(header.get("identity"), str):
        raise ValueError(f"{path}: 'identity' must be a string")
    for field in ("dim", "max_length"):
        value = header.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**20:
            raise ValueError(f"{path}: {field!r} must be an integer in [1, 2**20], got {value!r}")
    if not isinstance(header.get("storage_dtype"), str) or header["storage_dtype"] not in STORAGE_DTYPES:
        raise ValueError(f"{path}: 'storage_dtype' must be one of {sorted(STORAGE_DTYPES)}")
    shards = header.get("shards")
    if not isinstance(shards, list) or not all(isinstance(n, str) and _SHARD.fullmatch(n) for n in shards):
        raise ValueError(f"{path}: 'shards' must be a list of shard-NNNNN.safetensors names in the cache")
    hashes = header.get("shard_sha256", {})
    if not isinstance(hashes, dict):
        raise ValueError(f"{path}: 'shard_sha256' must be an object")
    for name, digest in hashes.items():
        check_sha256_field(digest, f"{path}: shard_sha256[{name!r}]")
    entries = header.get("entries")
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: 'entries' must be an object")
    for key, entry in entries.items():
        if not _valid_entry(entry, len(shards)):
            raise ValueError(f"{path}: entries[{key[:16]!r}...] must be [shard index, row >= 0, 0 or 1]")


def _valid_entry(entry: Any, num_shards: int) -> bool:
    if not isinstance(entry, list) or len(entry) != 3:
        return False
    if any(isinstance(v, bool) or not isinstance(v, int) for v in entry):
        return False
    return 0 <= entry[0] < num_shards and 0 <= entry[1] < SHARD_ROWS and entry[2] in (0, 1)


def _new_header(encoder: TextEncoder, storage_dtype: str) -> dict[str, Any]:
    """Index of an empty cache for ``encoder``."""
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "identity": encoder.identity,
        "dim": encoder.dim,
        "max_length": encoder.max_length,
        "storage_dtype": storage_dtype,
        "shards": [],
        "shard_sha256": {},
        "entries": {},
    }


def _encode_into(
    directory: Path,
    header: dict[str, Any],
    encoder: TextEncoder,
    texts: list[str],
    batch_size: int,
    progress: bool,
) -> int:
    """Encode ``texts`` in batches, write shards of up to SHARD_ROWS rows, record entries in ``header``.

    Returns how many of ``texts`` were truncated. The index itself is written by the caller, after
    every shard is on disk, so a crash never leaves an index pointing at a missing shard.
    """
    from tqdm import tqdm

    dtype = STORAGE_DTYPES[header["storage_dtype"]]
    num_truncated = 0
    with tqdm(total=len(texts), desc="encode-text", unit="caption", disable=not progress) as bar:
        for start in range(0, len(texts), SHARD_ROWS):
            shard_texts = texts[start : start + SHARD_ROWS]
            parts = []
            for offset in range(0, len(shard_texts), batch_size):
                batch = shard_texts[offset : offset + batch_size]
                parts.append(encoder.encode(batch, batch_size=batch_size, warn_truncation=False).to("cpu"))
                bar.update(len(batch))
            embeddings = TextEmbeddings.concatenate(parts)
            shard = len(header["shards"])
            name = f"shard-{shard:05d}.safetensors"
            keys = [list(bytes.fromhex(text_key(text))) for text in shard_texts]
            tensors = {
                "tokens": embeddings.tokens.to(dtype),
                "mask": embeddings.mask,
                "keys": torch.tensor(keys, dtype=torch.uint8).reshape(len(shard_texts), 32),
            }
            save_safetensors_atomic(tensors, directory / name, metadata={"identity": header["identity"]})
            header["shards"].append(name)
            header.setdefault("shard_sha256", {})[name] = file_sha256(directory / name)
            for row, (text, flag) in enumerate(zip(shard_texts, embeddings.truncated, strict=True)):
                header["entries"][text_key(text)] = [shard, row, int(flag)]
            num_truncated += sum(embeddings.truncated)
    return num_truncated


class CachedTextEncoder(TextEncoder):
    """The :class:`TextEncoder` interface served from an :class:`EmbeddingCache` (paper sec. 2.2).

    Captions missing from the cache are encoded by ``fallback_encoder`` (which must have the cache's
    identity) or, without one, raise KeyError. Outputs are float32 on ``device``. Truncation of cached
    captions was reported when the cache was built; their ``truncated`` flags are still returned.
    """

    def __init__(
        self,
        cache: EmbeddingCache,
        fallback_encoder: TextEncoder | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        """Serve ``cache``; ``fallback_encoder`` (same identity) encodes captions it lacks."""
        if fallback_encoder is not None and fallback_encoder.identity != cache.identity:
            raise ValueError(
                f"fallback encoder {fallback_encoder.identity!r} differs from the encoder "
                f"{cache.identity!r} that built the cache {cache.directory}"
            )
        self._cache = cache
        self._fallback = fallback_encoder
        self._device = torch.device(device)

    @property
    def dim(self) -> int:
        """Embedding width D of the cache."""
        return self._cache.dim

    @property
    def max_length(self) -> int:
        """Token length L of the cache."""
        return self._cache.max_length

    @property
    def identity(self) -> str:
        """Identity of the encoder that built the cache."""
        return self._cache.identity

    def encode(
        self, prompts: Sequence[str], *, batch_size: int = 64, warn_truncation: bool = True
    ) -> TextEmbeddings:
        """Embeddings of ``prompts`` in order: cached rows, plus fallback encodings for missing ones."""
        prompts = check_prompts(prompts)
        missing = self._cache.missing(prompts)
        if not missing or self._fallback is None:
            return self._cache.lookup(prompts).to(self._device)  # KeyError names a missing caption
        known = [t for t in dict.fromkeys(prompts) if t in self._cache]
        fresh = self._fallback.encode(missing, batch_size=batch_size, warn_truncation=warn_truncation)
        parts = [self._cache.lookup(known).to(self._device), fresh.to(self._device)]
        combined = TextEmbeddings.concatenate(parts)
        position = {text: i for i, text in enumerate(known + missing)}
        order = [position[p] for p in prompts]
        index = torch.tensor(order, device=self._device)
        return TextEmbeddings(
            combined.tokens[index], combined.mask[index], [combined.truncated[i] for i in order]
        )
