"""T5 text encoder (paper sec. 2.2) on a tiny random T5 saved to disk and loaded like a real checkpoint."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import warnings

import pytest
import torch

from imagen_video.text import (
    TextEncoderUnavailable,
    TextTruncationWarning,
    embedded_model_dir,
    load_text_encoder,
)
from tiny_t5 import save_tiny_t5

MAX_LENGTH = 8
PROMPTS = ["a red ball", "", "一只红色的圆 🎈", "café", "Blue  cube, spins!"]
# Tokens per prompt incl. </s>: words (unknown ones -> <unk>) and punctuation pieces, then </s>.
EXPECTED_LENGTHS = [4, 1, 3, 2, 6]


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("t5") / "tiny-t5", seed=0)


@pytest.fixture(scope="module")
def encoder(t5_dir):
    return load_text_encoder(f"t5:{t5_dir}", max_length=MAX_LENGTH)


def test_shapes_mask_and_zero_padding(encoder):
    out = encoder.encode(PROMPTS)
    assert encoder.dim == 32 and encoder.max_length == MAX_LENGTH
    assert out.tokens.shape == (5, MAX_LENGTH, 32) and out.tokens.dtype == torch.float32
    assert out.mask.dtype == torch.bool
    assert out.mask.sum(1).tolist() == EXPECTED_LENGTHS
    # right padding: real tokens first, then pads
    for row, length in zip(out.mask, EXPECTED_LENGTHS, strict=True):
        assert row[:length].all() and not row[length:].any()
    assert torch.all(out.tokens[~out.mask] == 0)
    assert torch.all(out.tokens[out.mask].abs().sum(-1) > 0)
    assert out.truncated == [False] * 5


def test_equals_transformers_last_hidden_state(encoder, t5_dir):
    from transformers import AutoTokenizer, T5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(t5_dir)
    model = T5EncoderModel.from_pretrained(t5_dir).eval()
    batch = tokenizer(PROMPTS, padding="longest", return_tensors="pt")
    with torch.no_grad():
        reference = model(**batch).last_hidden_state  # (B, L', D) with L' = longest prompt
    out = encoder.encode(PROMPTS)
    ref_mask = batch["attention_mask"].bool()
    torch.testing.assert_close(out.tokens[out.mask], reference[ref_mask], rtol=1e-5, atol=1e-5)


def test_truncation_boundary_is_reported(encoder):
    exact = " ".join(["red"] * (MAX_LENGTH - 1))  # 7 words + </s> = 8 tokens: fits
    over = " ".join(["red"] * MAX_LENGTH)  # 9 tokens: cut
    with pytest.warns(TextTruncationWarning, match=r"1 of 3 prompt\(s\).*max_length=8"):
        out = encoder.encode([exact, over, "a ball"])
    assert out.truncated == [False, True, False]
    assert out.mask[0].all() and out.mask[1].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encoder.encode([exact], warn_truncation=True).truncated == [False]
        assert encoder.encode([over], warn_truncation=False).truncated == [True]


def test_batching_does_not_change_embeddings(encoder):
    whole = encoder.encode(PROMPTS, batch_size=64)
    split = encoder.encode(PROMPTS, batch_size=2)
    torch.testing.assert_close(split.tokens, whole.tokens, rtol=0, atol=1e-6)
    alone = encoder.encode([PROMPTS[2]])
    torch.testing.assert_close(alone.tokens[0], whole.tokens[2], rtol=0, atol=1e-6)
    assert torch.equal(split.mask, whole.mask)


def test_deterministic_across_loads_and_identity(encoder, t5_dir):
    again = load_text_encoder(str(t5_dir), max_length=MAX_LENGTH)  # plain directory form
    assert again.identity == encoder.identity
    assert re.fullmatch(r"t5:tiny-t5@[0-9a-f]{12}:L8", encoder.identity)
    assert torch.equal(again.encode(PROMPTS).tokens, encoder.encode(PROMPTS).tokens)
    assert load_text_encoder(f"t5:{t5_dir}").max_length == 64  # default


def test_identity_names_weights_and_max_length(encoder, t5_dir, tmp_path):
    other = load_text_encoder(f"t5:{save_tiny_t5(tmp_path / 'tiny-t5', seed=1)}", max_length=MAX_LENGTH)
    assert other.identity.split("@")[0] == encoder.identity.split("@")[0]
    assert other.identity != encoder.identity
    assert not torch.allclose(other.encode(["a red ball"]).tokens, encoder.encode(["a red ball"]).tokens)
    longer = load_text_encoder(f"t5:{t5_dir}", max_length=16)
    assert longer.identity == encoder.identity.replace(":L8", ":L16")


def test_frozen_and_outputs_usable_by_a_trainable_network(encoder):
    model = encoder._model
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    out = encoder.encode(["a red ball"])
    assert torch.is_grad_enabled() and not out.tokens.requires_grad
    weight = torch.ones(32, requires_grad=True)
    (out.tokens @ weight).sum().backward()  # not an inference tensor: can be saved for backward
    torch.testing.assert_close(weight.grad, out.tokens.sum((0, 1)))


def test_bfloat16_compute_returns_float32_close_to_fp32(encoder, t5_dir):
    bf16 = load_text_encoder(f"t5:{t5_dir}", max_length=MAX_LENGTH, dtype="bfloat16")
    assert bf16.identity == encoder.identity
    out, ref = bf16.encode(PROMPTS), encoder.encode(PROMPTS)
    assert out.tokens.dtype == torch.float32 and torch.equal(out.mask, ref.mask)
    torch.testing.assert_close(out.tokens, ref.tokens, rtol=0.05, atol=0.1)


def test_missing_local_directory_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(TextEncoderUnavailable, match=re.escape(str(missing))):
        load_text_encoder(f"t5:{missing}")
    assert issubclass(TextEncoderUnavailable, RuntimeError)


def test_directory_without_weights_names_the_path(t5_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(t5_dir / "config.json", partial / "config.json")
    with pytest.raises(TextEncoderUnavailable, match=re.escape(str(partial)) + ".*incomplete"):
        load_text_encoder(f"t5:{partial}")


def test_hub_name_resolves_through_the_hf_cache_offline(encoder, t5_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants
    import transformers.utils.hub

    snapshot = tmp_path / "models--imagen-video-tests--tiny-t5" / "snapshots" / ("0" * 40)
    shutil.copytree(t5_dir, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    if hasattr(transformers.utils.hub, "TRANSFORMERS_CACHE"):  # transformers 4.x; 5.x reads HF_HUB_CACHE
        monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = load_text_encoder("t5:imagen-video-tests/tiny-t5", max_length=MAX_LENGTH)
    assert cached.identity == encoder.identity.replace("t5:tiny-t5@", "t5:imagen-video-tests/tiny-t5@")
    assert torch.equal(cached.encode(PROMPTS).tokens, encoder.encode(PROMPTS).tokens)


def test_uncached_hub_name_offline_raises_naming_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "imagen-video-tests/no-such-t5"
    expected = re.escape(repr(name)) + ".*HF_HUB_OFFLINE is set.*huggingface-cli download"
    with pytest.raises(TextEncoderUnavailable, match=expected):
        load_text_encoder(f"t5:{name}")


def test_unreachable_hub_fails_fast_without_retrying(monkeypatch):
    from imagen_video.text import t5

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(t5, "hub_reachable", lambda: False)
    with pytest.raises(TextEncoderUnavailable, match="'imagen-video-tests/no-such-t5'.*hub is unreachable"):
        load_text_encoder("t5:imagen-video-tests/no-such-t5")


def test_hub_reachability_probe(monkeypatch):
    import huggingface_hub.constants

    from imagen_video.text.t5 import hub_reachable

    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_reachable(timeout=2.0)
    assert not hub_reachable(timeout=2.0)  # the port is closed now
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub_reachable(timeout=2.0)


def test_non_t5_models_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'bert' model; the t5 text encoder needs model_type 't5'"):
        load_text_encoder(f"t5:{embedded_model_dir()}")
    with pytest.raises(ValueError, match="is not a T5 model"):
        load_text_encoder(str(embedded_model_dir()))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(TextEncoderUnavailable, match="incomplete"):
        load_text_encoder(str(tmp_path))
    with pytest.raises(ValueError, match="unknown text encoder 'clip'.*allowed: 'embedded'"):
        load_text_encoder("clip")
    with pytest.raises(ValueError, match="names no model"):
        load_text_encoder("t5:")


def test_bad_options_are_refused(encoder, t5_dir):
    with pytest.raises(ValueError, match=r"max_length must be an int >= 2, got 1"):
        load_text_encoder(f"t5:{t5_dir}", max_length=1)
    with pytest.raises(ValueError, match="dtype 'float16' is not supported; allowed"):
        load_text_encoder(f"t5:{t5_dir}", dtype="float16")
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(TypeError, match="single str"):
        encoder.encode("a red ball")
    with pytest.raises(TypeError, match="prompt 1 is NoneType"):
        encoder.encode(["a", None])
    empty = encoder.encode([])
    assert empty.tokens.shape == (0, MAX_LENGTH, 32) and empty.truncated == []


def test_importing_the_package_loads_no_model():
    code = (
        "import sys, imagen_video.text, imagen_video.text.cache, imagen_video.cli.encode_text; "
        "assert 'transformers' not in sys.modules, 'transformers imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
