"""The embedded MiniLM encoder without ``transformers``' modeling stack (paper sec. 2.2 stand-in).

all-MiniLM-L6-v2 is a 6-layer post-LayerNorm BERT. Its layers are exactly
``torch.nn.TransformerEncoderLayer`` (``norm_first=False``, erf GELU), so this module maps the
package's safetensors onto PyTorch's own layers and tokenizes with the ``tokenizers`` library from
the same ``tokenizer.json``. The outputs equal ``transformers.BertModel``'s to float32 rounding
(tested), and the cache identity is the same. What it saves is the import: loading the encoder
through ``transformers`` took 2.2 s on a 2-core CPU, almost all of it importing
``transformers.modeling_utils``, against 0.25 s here.
``load_embedded_encoder(backend="transformers")`` keeps the original path.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from imagen_video.text.hf import HFTextEncoder


class MiniLMModel(nn.Module):
    """BERT embeddings (word + position + token type 0, LayerNorm) and ``nn.TransformerEncoder``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        absolute = config.get("position_embedding_type", "absolute") == "absolute"
        if config.get("hidden_act") != "gelu" or not absolute:
            raise ValueError(f"not a post-LN BERT with erf GELU and absolute positions: {config}")
        width, eps = int(config["hidden_size"]), float(config["layer_norm_eps"])
        self.config = SimpleNamespace(
            hidden_size=width, max_position_embeddings=int(config["max_position_embeddings"])
        )
        self.word = nn.Embedding(int(config["vocab_size"]), width)
        self.position = nn.Embedding(self.config.max_position_embeddings, width)
        self.token_type = nn.Embedding(int(config["type_vocab_size"]), width)
        self.norm = nn.LayerNorm(width, eps=eps)
        layer = nn.TransformerEncoderLayer(
            width,
            int(config["num_attention_heads"]),
            int(config["intermediate_size"]),
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=eps,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, int(config["num_hidden_layers"]), enable_nested_tensor=False
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids and (B, L) mask -> last hidden states (B, L, D)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (L,)
        x = self.word(input_ids) + self.position(positions) + self.token_type.weight[0]  # (B, L, D)
        return self.encoder(self.norm(x), src_key_padding_mask=~attention_mask.bool())


def bert_state_dict(bert: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Rename a ``BertModel`` state dict to :class:`MiniLMModel`'s (q, k, v packed; pooler dropped)."""
    state = {
        "word.weight": bert["embeddings.word_embeddings.weight"],
        "position.weight": bert["embeddings.position_embeddings.weight"],
        "token_type.weight": bert["embeddings.token_type_embeddings.weight"],
        "norm.weight": bert["embeddings.LayerNorm.weight"],
        "norm.bias": bert["embeddings.LayerNorm.bias"],
    }
    for i in range(num_layers):
        src, dst = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            qkv = [bert[f"{src}attention.self.{name}.{kind}"] for name in ("query", "key", "value")]
            state[f"{dst}self_attn.in_proj_{kind}"] = torch.cat(qkv)
            state[f"{dst}self_attn.out_proj.{kind}"] = bert[f"{src}attention.output.dense.{kind}"]
            state[f"{dst}norm1.{kind}"] = bert[f"{src}attention.output.LayerNorm.{kind}"]
            state[f"{dst}linear1.{kind}"] = bert[f"{src}intermediate.dense.{kind}"]
            state[f"{dst}linear2.{kind}"] = bert[f"{src}output.dense.{kind}"]
            state[f"{dst}norm2.{kind}"] = bert[f"{src}output.LayerNorm.{kind}"]
    return state


def load_minilm(directory: Path) -> tuple[Any, MiniLMModel]:
    """The ``tokenizers`` tokenizer and the :class:`MiniLMModel` (float32, CPU) of a BERT folder."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    model = MiniLMModel(config)
    bert = load_file(str(directory / "model.safetensors"))
    model.load_state_dict(bert_state_dict(bert, int(config["num_hidden_layers"])), strict=True)
    return Tokenizer.from_file(str(directory / "tokenizer.json")), model


class _SpecialTokens:
    """The one tokenizer method :class:`HFTextEncoder` asks of its tokenizer when it validates L."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def num_special_tokens_to_add(self) -> int:
        return int(self._tokenizer.num_special_tokens_to_add(False))


class MiniLMTextEncoder(HFTextEncoder):
    """:class:`HFTextEncoder` semantics (fixed length L, zeroed pads, truncation warnings) served by
    :class:`MiniLMModel` and a ``tokenizers.Tokenizer``."""

    def __init__(self, *, tokenizer: Any, model: MiniLMModel, **kwargs: Any) -> None:
        """``kwargs``: those of :class:`HFTextEncoder` other than ``tokenizer`` and ``model``."""
        super().__init__(tokenizer=_SpecialTokens(tokenizer), model=model, **kwargs)
        self._fixed = tokenizer  # pads and truncates to L; a cut prompt keeps the rest as overflow
        self._fixed.enable_truncation(self.max_length)
        self._fixed.enable_padding(length=self.max_length, pad_id=0, pad_token="[PAD]")

    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        encodings = self._fixed.encode_batch(prompts)
        input_ids = torch.tensor([e.ids for e in encodings], device=self.device)  # (B, L)
        mask = torch.tensor([e.attention_mask for e in encodings], device=self.device).bool()  # (B, L)
        return input_ids, mask, [bool(e.overflowing) for e in encodings]  # tokens beyond L were cut

    def _hidden_states(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._model(input_ids, mask)
