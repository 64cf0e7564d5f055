"""LoRA adapters of cascade stages, built on ``peft``: which layers get one, the adapter folder, merging.

A low-rank adapter adds ``(alpha / r) * B A`` to a frozen weight ``W`` (``A``: r x in, ``B``: out x r;
``B`` starts at zero, so a fresh adapter leaves the stage unchanged). ``peft`` supplies the layers
(:func:`peft.inject_adapter_in_model`), their state dicts and the merge into ``W``; this module only
chooses the target layers of a :class:`~imagen_video.models.VideoUNet` and stores the result.

Adapter folder (written by ``imagen-video finetune``)::

    adapter_config.json          AdapterConfig: rank, alpha, target, base cascade, stages, base hashes
    adapter_model.safetensors    "<stage>/<peft key>" -> tensor, the LoRA A/B weights (EMA)

``base_sha256`` holds the sha256 of each stage's ``model.safetensors`` in the base cascade, so an
adapter applied to another cascade is refused with one line instead of silently producing noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from imagen_video.serialization import JsonConfig, atomic_write_json, save_safetensors_atomic

if TYPE_CHECKING:
    from imagen_video.cascade.runner import Cascade

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FORMAT = "imagen-video-lora"
TARGETS: tuple[str, ...] = ("attention", "attention+conv", "all")
"""Layer sets that get adapters: the attention projections (spatial, cross and temporal: ``qkv``,
``q``, ``kv``, ``out``), those and every convolution, or every linear and convolution layer."""
_ATTENTION_PROJECTIONS = ("qkv", "q", "kv", "out")
_PEFT_ADAPTER = "default"


class AdapterError(ValueError):
    """An adapter folder is missing, invalid, or does not fit the cascade it is applied to (one line)."""


def require_peft() -> None:
    """Raise :class:`AdapterError` with the install command when ``peft`` (the ``lora`` extra) is
    missing, before any model loads."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise AdapterError("LoRA adapters need peft: pip install 'imagen-video[lora]'")


@dataclasses.dataclass(frozen=True)
class AdapterConfig(JsonConfig):
    """What an adapter folder holds and which base cascade it was trained on."""

    rank: int
    """LoRA rank r."""
    alpha: float
    """LoRA alpha: the update is scaled by alpha / r."""
    target: str
    """Layer set with adapters, one of :data:`TARGETS`."""
    base_cascade: str
    """Name of the base cascade (its ``cascade.json`` name)."""
    stages: tuple[str, ...]
    """Stages the adapter applies to, in cascade order."""
    base_sha256: tuple[str, ...]
    """sha256 of each stage's ``model.safetensors`` in the base cascade (same order as ``stages``)."""
    format: str = ADAPTER_FORMAT
    """File format tag."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be > 0, got {self.alpha}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown LoRA target {self.target!r}; allowed: {', '.join(TARGETS)}")
        if len(self.stages) != len(self.base_sha256) or len(set(self.stages)) != len(self.stages):
            raise ValueError("stages must be distinct and have one base_sha256 each")
        if self.format != ADAPTER_FORMAT:
            raise ValueError(f"not an adapter config: format {self.format!r}, expected {ADAPTER_FORMAT!r}")

    def with_stage(self, stage: str, sha256: str) -> AdapterConfig:
        """This config with ``stage`` (and its base hash) added or updated."""
        hashes = dict(zip(self.stages, self.base_sha256, strict=True))
        hashes[stage] = sha256
        return self.replace(stages=tuple(hashes), base_sha256=tuple(hashes.values()))


def target_modules(model: nn.Module, target: str) -> list[str]:
    """Names of the layers of ``model`` that get an adapter under ``target`` (see :data:`TARGETS`)."""
    if target not in TARGETS:
        raise ValueError(f"unknown LoRA target {target!r}; allowed: {', '.join(TARGETS)}")
    names = []
    for name, module in model.named_modules():
        is_projection = isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in _ATTENTION_PROJECTIONS
        if (
            is_projection
            or (target != "attention" and isinstance(module, nn.Conv2d))
            or (target == "all" and isinstance(module, nn.Linear))
        ):
            names.append(name)
    return names


def lora_config(model: nn.Module, *, rank: int, alpha: float, target: str) -> object:
    """The ``peft.LoraConfig`` of ``target`` on ``model`` (``B`` initialised to zero)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=target_modules(model, target), lora_dropout=0.0
    )


def add_adapter(model: nn.Module, *, rank: int, alpha: float, target: str) -> nn.Module:
    """Freeze ``model`` and inject trainable LoRA layers into it (in place; returns it)."""
    from peft import inject_adapter_in_model

    config = lora_config(model, rank=rank, alpha=alpha, target=target)
    model.requires_grad_(False)
    model = inject_adapter_in_model(config, model, adapter_name=_PEFT_ADAPTER)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA weights of a model prepared by :func:`add_adapter` (peft keys, on the CPU)."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=_PEFT_ADAPTER)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def merge_adapter(
    model: nn.Module, state: dict[str, torch.Tensor], config: AdapterConfig, scale: float = 1.0
) -> nn.Module:
    """``model`` with ``W + scale * (alpha / r) * B A`` merged into its weights (peft's merge); the
    result is a plain network that needs no peft to run or save."""
    from peft import set_peft_model_state_dict
    from peft.tuners.lora import LoraLayer, LoraModel

    peft_config = lora_config(model, rank=config.rank, alpha=config.alpha, target=config.target)
    wrapper = LoraModel(model, peft_config, _PEFT_ADAPTER)
    result = set_peft_model_state_dict(wrapper.model, state, adapter_name=_PEFT_ADAPTER)
    if result.unexpected_keys:
        raise AdapterError(f"adapter weights do not fit the stage: unexpected {result.unexpected_keys[:3]}")
    for module in wrapper.model.modules():
        if isinstance(module, LoraLayer):
            module.set_scale(_PEFT_ADAPTER, scale)
    return wrapper.merge_and_unload()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_adapter(
    directory: str | os.PathLike[str], config: AdapterConfig, weights: dict[str, torch.Tensor]
) -> Path:
    """Write an adapter folder: weights (``"<stage>/<key>"``) first, then the config (both atomic)."""
    folder = Path(directory)
    save_safetensors_atomic(weights, folder / ADAPTER_WEIGHTS, metadata={"format": ADAPTER_FORMAT})
    atomic_write_json(folder / ADAPTER_CONFIG, config.to_dict())
    return folder


def load_adapter(
    directory: str | os.PathLike[str],
) -> tuple[AdapterConfig, dict[str, dict[str, torch.Tensor]]]:
    """Read an adapter folder: its config and ``{stage: peft state dict}``; AdapterError on any problem."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(directory)
    config_path, weights_path = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise AdapterError(f"not a LoRA adapter folder: {str(path)!r} is missing")
    try:
        config = AdapterConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        flat = load_file(str(weights_path))
    except (ValueError, TypeError, KeyError, SafetensorError, OSError) as err:
        raise AdapterError(f"cannot read adapter {str(folder)!r}: {err}") from None
    per_stage: dict[str, dict[str, torch.Tensor]] = {name: {} for name in config.stages}
    for key, tensor in flat.items():
        stage, _, name = key.partition("/")
        if stage not in per_stage:
            raise AdapterError(f"adapter {str(folder)!r}: weight {key!r} names no stage of {config.stages}")
        per_stage[stage][name] = tensor
    return config, per_stage


def check_base(config: AdapterConfig, model_dir: str | os.PathLike[str], label: str) -> None:
    """Refuse (AdapterError, one line) a cascade whose stage weights differ from the adapter's base."""
    for stage, expected in zip(config.stages, config.base_sha256, strict=True):
        weights = Path(model_dir) / stage / "model.safetensors"
        if not weights.is_file():
            raise AdapterError(
                f"adapter {label} is for stage {stage!r}, which cascade {str(model_dir)!r} lacks"
            )
        if file_sha256(weights) != expected:
            raise AdapterError(
                f"adapter {label} was trained on cascade {config.base_cascade!r}, but stage {stage!r} of "
                f"{str(model_dir)!r} has other weights (sha256 {expected[:12]}... expected); "
                f"apply it to the cascade it was fine-tuned from (--model {config.base_cascade})"
            )


def apply_adapters(
    cascade: Cascade,
    model_dir: str | os.PathLike[str],
    adapters: Sequence[tuple[str | os.PathLike[str], float]],
) -> Cascade:
    """Merge each ``(adapter folder, scale)`` into ``cascade``'s stage networks (in place; returns it).

    ``model_dir`` is the cascade directory the networks were loaded from: every adapter's base hashes
    are checked against its files before anything is merged, so a refused adapter changes nothing.
    Adapters add up: ``W + sum_i scale_i * (alpha_i / r_i) * B_i A_i``. An adapter on the base stage
    removes the cascade's frame-conditioned base (:mod:`imagen_video.cascade.frame_base`), which was
    fine-tuned from the base without it.
    """
    loaded = []
    for folder, scale in adapters:
        config, weights = load_adapter(folder)
        check_base(config, model_dir, repr(str(folder)))
        loaded.append((config, weights, scale))
    for config, weights, scale in loaded:
        for stage in config.stages:
            merged = merge_adapter(cascade.models[stage], weights[stage], config, scale)
            cascade.models[stage] = merged.eval().requires_grad_(False)
        if cascade.config.stages[0].name in config.stages:
            cascade.frame_base = None  # fine-tuned from the unadapted base: it would drop the adapter
    return cascade


def shipped_adapter_dir(name: str) -> Path | None:
    """Folder of an adapter that ships inside the package (``imagen_video/assets/lora/<name>``, with
    ``-`` in the name as ``_``), or None."""
    from importlib.resources import files

    folder = Path(str(files("imagen_video"))) / "assets" / "lora" / name.replace("-", "_")
    return folder if (folder / ADAPTER_CONFIG).is_file() else None


def parse_lora_option(text: str) -> tuple[Path, float]:
    """``DIR[:SCALE]`` (``--lora``) -> (adapter folder, scale; default 1). DIR may name a shipped
    adapter (e.g. ``demo-orange``) when no path of that name exists."""
    path, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
        except ValueError:
            raise AdapterError(f"--lora {text!r}: SCALE {tail!r} is not a number (DIR[:SCALE])") from None
        path = head
        if not math.isfinite(scale):
            raise AdapterError(f"--lora {text!r}: SCALE must be finite")
    folder = Path(path)
    if not folder.exists():
        shipped = shipped_adapter_dir(path)
        if shipped is None:
            raise AdapterError(f"--lora {text!r}: no adapter folder {path!r}")
        folder = shipped
    return folder, scale
