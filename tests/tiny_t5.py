"""A tiny randomly initialised T5 encoder directory: the T5 path of sec. 2.2 without downloading T5.

No T5 tokenizer ships offline, so the tests of the T5 path build a word-level tokenizer
over a small vocabulary plus a few-layer ``T5EncoderModel`` with random weights, saved the way a real
checkpoint is (config.json, model.safetensors, tokenizer.json), and load it back with
``load_text_encoder("t5:<dir>")``, the same code that loads T5-XXL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

# fmt: off
TINY_T5_WORDS = (  # the tokenizer's vocabulary after the special tokens
    "a", "an", "the", "of", "in", "on", "with", "and", "to", "is", "red", "green", "blue",
    "yellow", "white", "black", "purple", "orange", "ball", "circle", "square", "triangle", "star",
    "cube", "sphere", "balloon", "dog", "cat", "bird", "car", "boat", "person", "moves", "bounces",
    "rolls", "spins", "flies", "jumps", "slowly", "quickly", "left", "right", "up", "down",
    "across", "background", "sky", "sea", "grass", "small", "large", "big", "two", "three", "many",
    "café", "红色", ".", ",",
)
# fmt: on
TINY_T5_SPECIAL = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5


def save_tiny_t5(
    directory: str | Path,
    *,
    words: Sequence[str] = TINY_T5_WORDS,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> Path:
    """Write a random ``T5EncoderModel`` (width ``d_model``) and a word-level tokenizer to ``directory``.

    The tokenizer lowercases, splits on whitespace and punctuation, maps unknown words to ``<unk>``
    and appends ``</s>`` like T5's. Weights are drawn from ``torch.Generator().manual_seed(seed)``
    (normal, std ``d_model ** -0.5``; layer norms 1), so the same seed gives the same files.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {token: i for i, token in enumerate(dict.fromkeys([*TINY_T5_SPECIAL, *words]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],  # as T5's tokenizer: no token_type_ids
    )
    config = T5Config(
        vocab_size=len(vocab),
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=2 * d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["</s>"],
        decoder_start_token_id=vocab["<pad>"],
    )
    with torch.device("meta"):
        model = T5EncoderModel(config)  # no global RNG draws; weights filled below
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * d_model**-0.5)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
