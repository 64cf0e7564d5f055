"""Fine-tuning of trained cascades with LoRA adapters (``peft``), and applying or merging them.

- :func:`finetune`: train one adapter over stages of a cascade (``imagen-video finetune``);
- :func:`apply_adapters`: merge adapters into a loaded cascade (``generate --lora DIR[:SCALE]``);
- :func:`load_adapter` / :func:`save_adapter`: the adapter folder (safetensors + JSON config with the
  base cascade's weight hashes). See docs/finetuning.md.
"""

from imagen_video.finetune.adapter import (
    TARGETS,
    AdapterConfig,
    AdapterError,
    apply_adapters,
    load_adapter,
    merge_adapter,
    save_adapter,
    target_modules,
)
from imagen_video.finetune.loop import LoraSpec, finetune, finetune_train_config, prepare_data

__all__ = [
    "TARGETS",
    "AdapterConfig",
    "AdapterError",
    "LoraSpec",
    "apply_adapters",
    "finetune",
    "finetune_train_config",
    "load_adapter",
    "merge_adapter",
    "prepare_data",
    "save_adapter",
    "target_modules",
]
