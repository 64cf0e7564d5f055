"""Embedding cache (safetensors shards + index.json) and CachedTextEncoder, on tiny random T5 encoders."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch
from safetensors import safe_open

from imagen_video.text import CachedTextEncoder, EmbeddingCache, TextTruncationWarning, load_text_encoder
from imagen_video.text.cache import INDEX_NAME, text_key
from tiny_t5 import save_tiny_t5

MAX_LENGTH = 8
LONG = "a red ball bounces left and right across the grass"  # 10 words + </s>: truncated at 8
TEXTS = ["a red ball", "", "一只红色的圆 🎈", "café", LONG, "two blue cubes"]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("t5")
    return [
        load_text_encoder(f"t5:{save_tiny_t5(root / f'seed{seed}', seed=seed)}", max_length=MAX_LENGTH)
        for seed in (0, 1)
    ]


@pytest.fixture
def encoder(encoders):
    return encoders[0]


def _build(directory, encoder, texts, **kwargs):
    """Build quietly (truncation warnings have their own test)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextTruncationWarning)
        return EmbeddingCache.build(directory, encoder, texts, batch_size=4, progress=False, **kwargs)


def test_build_warns_once_for_new_truncations(encoder, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EmbeddingCache.build(tmp_path, encoder, TEXTS, batch_size=2, progress=False)
        EmbeddingCache.build(tmp_path, encoder, TEXTS, batch_size=2, progress=False)  # nothing new
    assert [str(w.message)[:24] for w in caught] == ["1 of 6 prompt(s) were lo"]
    assert caught[0].category is TextTruncationWarning


def test_round_trip_is_exact_and_reopens(encoder, tmp_path):
    built = _build(tmp_path, encoder, TEXTS)
    direct = encoder.encode(TEXTS, batch_size=4, warn_truncation=False)
    for cache in (built, EmbeddingCache.open(tmp_path, expect_identity=encoder.identity)):
        stored = cache.lookup(TEXTS)
        assert stored.tokens.dtype == torch.float32
        assert torch.equal(stored.tokens, direct.tokens) and torch.equal(stored.mask, direct.mask)
        assert stored.truncated == [False, False, False, False, True, False]
        assert (cache.identity, cache.dim, cache.max_length) == (encoder.identity, 32, MAX_LENGTH)
        assert len(cache) == 6
    assert dataclasses.asdict(built.build_stats) == {"unique": 6, "encoded": 6, "cached": 0, "truncated": 1}


def test_lookup_order_duplicates_and_missing(encoder, tmp_path):
    cache = _build(tmp_path, encoder, TEXTS)
    direct = encoder.encode(TEXTS, batch_size=4, warn_truncation=False)
    picked = cache.lookup([TEXTS[3], TEXTS[0], TEXTS[3]])
    assert torch.equal(picked.tokens, direct.tokens[[3, 0, 3]])
    assert "café" in cache and "a green dog" not in cache
    with pytest.raises(KeyError, match="caption 'a green dog' is not in the text embedding cache"):
        cache.lookup(["a red ball", "a green dog"])
    assert cache.lookup([]).tokens.shape == (0, MAX_LENGTH, 32)


def test_build_is_incremental(encoder, tmp_path):
    _build(tmp_path, encoder, TEXTS[:3])
    cache = _build(tmp_path, encoder, TEXTS + TEXTS[:2])
    assert dataclasses.asdict(cache.build_stats) == {"unique": 6, "encoded": 3, "cached": 3, "truncated": 1}
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert index["shards"] == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert index["entries"][text_key("café")] == [1, 0, 0]
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    assert on_disk == sorted([INDEX_NAME, *index["shards"]])  # no temporary files left
    direct = encoder.encode(TEXTS, warn_truncation=False)
    torch.testing.assert_close(cache.lookup(TEXTS).tokens, direct.tokens, rtol=0, atol=1e-6)
    again = _build(tmp_path, encoder, TEXTS[:2])
    assert again.build_stats.encoded == 0 and len(again) == 6


def test_refuses_another_encoder(encoders, tmp_path):
    first, second = encoders
    cache = _build(tmp_path, first, TEXTS[:2])
    both = f"built by encoder {first.identity!r}, not {second.identity!r}"
    with pytest.raises(ValueError, match=both.replace("(", r"\(").replace(")", r"\)")):
        EmbeddingCache.open(tmp_path, expect_identity=second.identity)
    with pytest.raises(ValueError, match="built by encoder"):
        EmbeddingCache.build(tmp_path, second, ["a dog"], progress=False)
    with pytest.raises(ValueError, match="differs from the encoder"):
        CachedTextEncoder(cache, fallback_encoder=second)
    assert len(EmbeddingCache.open(tmp_path)) == 2  # the refused build wrote nothing


def test_float16_storage(encoder, tmp_path):
    cache = _build(tmp_path, encoder, TEXTS, storage_dtype="float16")
    direct = encoder.encode(TEXTS, batch_size=4, warn_truncation=False)
    assert cache.storage_dtype == "float16"
    assert torch.equal(cache.lookup(TEXTS).tokens, direct.tokens.half().float())
    with safe_open(str(tmp_path / "shard-00000.safetensors"), framework="pt") as handle:
        assert handle.get_tensor("tokens").dtype == torch.float16
        assert handle.metadata() == {"identity": encoder.identity}
    with pytest.raises(ValueError, match="stores float16 tokens; cannot add float32"):
        _build(tmp_path, encoder, ["a dog"], storage_dtype="float32")
    allowed = r"storage_dtype 'int8' is not allowed; allowed: \['float16', 'float32'\]"
    with pytest.raises(ValueError, match=allowed):
        _build(tmp_path, encoder, ["a dog"], storage_dtype="int8")


def test_open_without_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="no text embedding cache at"):
        EmbeddingCache.open(tmp_path / "nothing")
    (tmp_path / INDEX_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="is not a imagen-video-text-embedding-cache"):
        EmbeddingCache.open(tmp_path)


def test_cached_text_encoder(encoder, tmp_path):
    cache = _build(tmp_path, encoder, TEXTS[:4])
    direct = encoder.encode(TEXTS, warn_truncation=False)
    served = CachedTextEncoder(cache)
    assert (served.dim, served.max_length, served.identity) == (32, MAX_LENGTH, encoder.identity)
    torch.testing.assert_close(served.encode(TEXTS[:4]).tokens, direct.tokens[:4], rtol=0, atol=1e-6)
    with pytest.raises(KeyError, match="two blue cubes"):
        served.encode(["two blue cubes"])
    with_fallback = CachedTextEncoder(cache, fallback_encoder=encoder)
    prompts = [TEXTS[5], TEXTS[0], LONG, TEXTS[5]]
    with pytest.warns(TextTruncationWarning, match=r"1 of 2 prompt"):
        out = with_fallback.encode(prompts)
    torch.testing.assert_close(out.tokens, direct.tokens[[5, 0, 4, 5]], rtol=0, atol=1e-6)
    assert torch.equal(out.mask, direct.mask[[5, 0, 4, 5]])
    assert out.truncated == [False, False, True, False]
    assert len(cache) == 4  # the fallback does not write to the cache
