"""Tiny randomly initialised feature networks saved like the real ones, for the tests.

Tests download no metric weights: they save
small random networks in the formats users supply and load them back through the same code:

- :func:`save_tiny_inception`: a TorchScript module with the ``forward(img, return_features=False)``
  convention of StyleGAN2-ADA's ``inception-2015-12-05.pt`` (uint8-range input at any size, resized
  to 299x299 inside);
- :func:`save_tiny_i3d`: a TorchScript module with StyleGAN-V's ``i3d_torchscript.pt`` convention
  ``forward(x, rescale=False, resize=False, return_features=False)`` and ``min_frames`` = 9;
- :func:`save_tiny_i3d_state_dict`: an :class:`InceptionI3d` with divided widths, as safetensors;
- :func:`save_tiny_clip`: a transformers ``CLIPModel`` directory with a word-level tokenizer and a
  ``CLIPImageProcessor`` config, loadable by ``CLIPModel.from_pretrained(dir)``.

Numbers from these networks mean nothing; they exercise the real code paths.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from imagen_video.metrics.i3d import InceptionI3d
from imagen_video.serialization import atomic_path, save_safetensors_atomic


class TinyInception(nn.Module):
    """(N, 3, H, W) in [0, 255] -> (N, features): resize to 299, scale to [-1, 1], conv, pool, linear."""

    def __init__(self, features: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=13, stride=13)
        self.fc = nn.Linear(8 * 4, features)
        self.classifier = nn.Linear(features, 10)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        """StyleGAN2-ADA Inception convention: features with ``return_features``, else class probabilities."""
        x = F.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = torch.relu(self.conv((x - 128) / 128))  # (N, 8, 23, 23)
        x = F.adaptive_avg_pool2d(x, 2).flatten(1)  # (N, 32)
        feats = self.fc(x)
        return feats if return_features else torch.softmax(self.classifier(feats), dim=1)


class TinyI3D(nn.Module):
    """(B, 3, T, 224, 224) in [-1, 1] -> (B, features): strided conv3d, global mean, linear."""

    def __init__(self, features: int = 16, min_frames: int = 9) -> None:
        super().__init__()
        self.min_frames = min_frames  # read by the FVD code through the TorchScript attribute
        self.conv = nn.Conv3d(3, 8, kernel_size=(3, 16, 16), stride=(2, 16, 16))
        self.fc = nn.Linear(8, features)
        self.classifier = nn.Linear(features, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        """StyleGAN-V I3D convention: ``rescale`` maps [0, 255] to [-1, 1], ``resize`` to 224x224."""
        if rescale:
            x = x / 127.5 - 1
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        h = torch.relu(self.conv(x)).mean(dim=(2, 3, 4))  # (B, 8)
        feats = self.fc(h)
        return feats if return_features else self.classifier(feats)


def _seeded(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory().eval()


def _save_script(module: nn.Module, path: str | Path) -> Path:
    with warnings.catch_warnings():  # TorchScript is the format of the reference FID/FVD networks
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        scripted = torch.jit.script(module)
        with atomic_path(path) as tmp:
            torch.jit.save(scripted, str(tmp))
    return Path(path)


def save_tiny_inception(path: str | Path, *, features: int = 16, seed: int = 0) -> Path:
    """Save a random :class:`TinyInception` as TorchScript (StyleGAN2-ADA calling convention)."""
    return _save_script(_seeded(lambda: TinyInception(features), seed), path)


def save_tiny_i3d(path: str | Path, *, features: int = 16, min_frames: int = 9, seed: int = 0) -> Path:
    """Save a random :class:`TinyI3D` as TorchScript (StyleGAN-V ``i3d_torchscript.pt`` convention)."""
    return _save_script(_seeded(lambda: TinyI3D(features, min_frames), seed), path)


def save_tiny_i3d_state_dict(path: str | Path, *, width_divisor: int = 64, seed: int = 0) -> Path:
    """Save a random :class:`InceptionI3d` (widths divided by ``width_divisor``) as safetensors."""
    net = _seeded(lambda: InceptionI3d(width_divisor=width_divisor), seed)
    return save_safetensors_atomic(dict(net.state_dict()), path)


def save_tiny_clip(directory: str | Path, words: Sequence[str], *, seed: int = 0) -> Path:
    """Save a random tiny ``CLIPModel`` + word-level tokenizer + image processor to ``directory``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*specials, *(w.lower() for w in words)]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="[UNK]",
        pad_token="[PAD]",
        model_max_length=32,
        model_input_names=["input_ids", "attention_mask"],
    )
    text = dict(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        pad_token_id=vocab["[PAD]"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
    )
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    model = _seeded(lambda: CLIPModel(config), seed)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        directory
    )
    return directory
