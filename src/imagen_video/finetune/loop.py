"""``finetune``: train LoRA adapters on stages of a trained cascade, everything else frozen.

The training loop is ``train``'s (:mod:`imagen_video.train.loop`: the same data pipeline, embedding
cache, EMA, checkpoints, progress bar, stop signals and ``--resume``); only the network differs: the
stage's trained weights, frozen, with ``peft`` LoRA layers on the chosen targets
(:mod:`imagen_video.finetune.adapter`), and AdamW over the adapter weights alone. After every
checkpoint the EMA adapter weights are written into the adapter folder, which is the output directory::

    adapter_config.json, adapter_model.safetensors   the adapter (see imagen_video.finetune.adapter)
    finetune_config.json                             the LoraSpec and data options of the run
    data/manifest.jsonl                              the mixed dataset (only with --images-only / --replay)
    runs/<stage>/                                    train's run directory of each stage (checkpoints, log)

Still images only (``images_only``): the concept is learned from images trained as independent frames
(paper sec. 2.6: joint image-video training transfers knowledge from images to video). ``replay``
mixes records of an ordinary dataset in, a fraction ``replay_fraction`` of the samples, against
forgetting.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imagen_video.cascade.config import StageConfig
from imagen_video.finetune.adapter import (
    ADAPTER_CONFIG,
    AdapterConfig,
    adapter_state,
    add_adapter,
    file_sha256,
    load_adapter,
    save_adapter,
)
from imagen_video.models import VideoUNet
from imagen_video.serialization import JsonConfig, atomic_write_json, atomic_write_text
from imagen_video.train import distributed as dist_utils
from imagen_video.train.config import TrainConfig, TrainSetupError, lr_at
from imagen_video.train.ema import EMA
from imagen_video.train.loop import TrainResult, _Trainer
from imagen_video.train.monitor import StopSignal

FINETUNE_CONFIG = "finetune_config.json"


@dataclasses.dataclass(frozen=True)
class LoraSpec(JsonConfig):
    """The adapter to train and the data to train it on."""

    rank: int = 8
    """LoRA rank r."""
    alpha: float | None = None
    """LoRA alpha (the update is scaled by alpha / r); None: equal to the rank."""
    target: str = "attention+conv"
    """Layers with adapters: ``attention``, ``attention+conv`` or ``all`` (adapter.TARGETS)."""
    images_only: bool = False
    """Keep only the still images of the data (videos in it are dropped)."""
    replay: str | None = None
    """An ordinary dataset whose records are mixed in against forgetting."""
    replay_fraction: float = 0.0
    """Share of the mixed dataset's records drawn from ``replay`` (in [0, 1))."""

    def __post_init__(self) -> None:
        AdapterConfig(  # rank, alpha and target checked by the adapter config's own rules
            rank=self.rank,
            alpha=self.lora_alpha,
            target=self.target,
            base_cascade="",
            stages=(),
            base_sha256=(),
        )
        if not 0.0 <= self.replay_fraction < 1.0:
            raise ValueError(f"replay_fraction must be in [0, 1), got {self.replay_fraction}")
        if (self.replay is None) != (self.replay_fraction == 0.0):
            raise ValueError("give replay and a replay_fraction > 0 together, or neither")

    @property
    def lora_alpha(self) -> float:
        """alpha, defaulting to the rank."""
        return float(self.rank if self.alpha is None else self.alpha)


def finetune_train_config(**overrides: Any) -> TrainConfig:
    """Training settings of an adapter: a higher learning rate and shorter warm-up and EMA than
    training from scratch (few steps on a small dataset); ``overrides`` that are not None win."""
    defaults = TrainConfig(
        lr=5e-4, warmup_steps=20, ema_decay=0.995, max_steps=400, checkpoint_every=50, log_every=10
    )
    return defaults.replace(**{k: v for k, v in overrides.items() if v is not None})


def _record_line(record: Any) -> str:
    entry: dict[str, Any] = {"media": str(record.media), "kind": record.kind, "caption": record.caption}
    if record.kind == "video" and record.fps is not None:
        entry["fps"] = record.fps
    if record.attributes:
        entry["attributes"] = record.attributes
    return json.dumps(entry, sort_keys=True) + "\n"


def prepare_data(data: str | Path, out_dir: Path, spec: LoraSpec, *, seed: int) -> Path:
    """The dataset the adapter trains on: ``data`` itself, or (``images_only`` / ``replay``) a manifest
    in ``out_dir/data`` with absolute media paths: the still images of ``data`` (all its records
    without ``images_only``) plus ``round(n * f / (1 - f))`` records drawn from ``replay`` without
    repetition where it has enough (seeded by ``seed``)."""
    from imagen_video.data import DatasetError, load_records

    if not spec.images_only and spec.replay is None:
        return Path(data)
    records = load_records(data)
    if spec.images_only:
        records = [r for r in records if r.kind == "image"]
        if not records:
            raise DatasetError(f"--images-only: {str(data)!r} holds no still images")
    mixed = list(records)
    if spec.replay is not None:
        pool = load_records(spec.replay)
        count = round(len(records) * spec.replay_fraction / (1.0 - spec.replay_fraction))
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(len(pool)) for _ in range(math.ceil(count / len(pool)))])
        mixed += [pool[int(i)] for i in order[:count]]
    return atomic_write_text(
        out_dir / "data" / "manifest.jsonl", "".join(_record_line(r) for r in mixed)
    ).parent


class LoraTrainer(_Trainer):
    """``train``'s loop over a frozen trained stage with trainable LoRA layers (see module docstring)."""

    def __init__(
        self,
        stage_cfg: StageConfig,
        base_dir: Path,
        adapter: AdapterConfig,
        adapter_dir: Path,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.base_dir, self.adapter, self.adapter_dir = base_dir, adapter, adapter_dir
        super().__init__(stage_cfg, *args, **kwargs)

    def _build_model(self, init: dict[str, torch.Tensor] | None = None) -> None:
        """The stage's trained weights, frozen, plus LoRA layers (A seeded from ``TrainConfig.seed``,
        B zero); EMA copy; AdamW over the adapter weights only."""
        from imagen_video.cascade.stage_io import check_weights_match, load_stage_weights

        cfg, ctx = self.cfg, self.ctx
        if cfg.fsdp:
            raise TrainSetupError("finetune trains small adapters and does not shard them; drop fsdp")
        if cfg.optimizer != "adamw":
            raise TrainSetupError(f"finetune trains small adapters with AdamW; drop {cfg.optimizer}")
        model = VideoUNet(self.stage.unet)
        state = load_stage_weights(self.base_dir, self.stage)
        check_weights_match(self.stage, model, state)
        model.load_state_dict(state)
        model = add_adapter(
            model, rank=self.adapter.rank, alpha=self.adapter.alpha, target=self.adapter.target
        )
        init_generator = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_A" in name:  # peft's own init draws from the global RNG
                    torch.nn.init.kaiming_uniform_(parameter, a=math.sqrt(5), generator=init_generator)
        model = model.to(ctx.device)
        self.ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup)
        self.model = dist_utils.wrap_model(model, ctx)
        self.sharded = False
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=lr_at(0, cfg),
            betas=cfg.adam_betas,
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
        )
        self.generator = torch.Generator(device=ctx.device).manual_seed(cfg.seed + 1_000_003 * (ctx.rank + 1))

    def write_weights(self, ema_state: dict[str, torch.Tensor]) -> None:
        """Write the EMA adapter weights of this stage into the adapter folder (other stages kept)."""
        del ema_state  # the adapter weights are read from the EMA module itself
        config, weights = self.adapter, {}
        if (self.adapter_dir / ADAPTER_CONFIG).is_file():
            saved, per_stage = load_adapter(self.adapter_dir)
            config = saved.replace(stages=(), base_sha256=())
            for stage, sha in zip(saved.stages, saved.base_sha256, strict=True):
                if stage != self.stage.name:
                    config = config.with_stage(stage, sha)
                    weights.update({f"{stage}/{k}": v for k, v in per_stage[stage].items()})
        sha = file_sha256(self.base_dir / "model.safetensors")
        config = config.with_stage(self.stage.name, sha)
        weights.update({f"{self.stage.name}/{k}": v for k, v in adapter_state(self.ema.model).items()})
        save_adapter(self.adapter_dir, config, weights)


def finetune(
    model_dir: str | Path,
    stages: Sequence[str],
    data: str | Path,
    out_dir: str | Path,
    spec: LoraSpec,
    train_cfg: TrainConfig,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    text_cache: str | Path | None = None,
) -> list[TrainResult]:
    """Train one LoRA adapter over ``stages`` of the cascade directory ``model_dir`` on ``data``.

    Each stage trains in turn, with ``train``'s loop, into ``out_dir/runs/<stage>``; ``out_dir`` is
    the adapter folder (``generate --lora out_dir``). ``resume`` continues every stage from its newest
    checkpoint (a finished stage is skipped). ``text_cache``: an embedding cache directory to share
    (default: one per stage run). Raises ``DatasetError`` / ``TrainSetupError`` /
    ``StageLoadError`` / ``CascadeLoadError`` for unusable input, before training starts.
    """
    from imagen_video.cascade.directory import read_cascade_json, resolve_stage_config

    model_dir, out = Path(model_dir), Path(out_dir)
    cascade = read_cascade_json(model_dir).config
    configs = [resolve_stage_config(model_dir, cascade.stage(name)) for name in stages]
    if (out / ADAPTER_CONFIG).is_file() and not resume:
        raise TrainSetupError(
            f"{out} already holds an adapter; pass --resume to continue it, or another --out"
        )
    data_path = prepare_data(data, out, spec, seed=train_cfg.seed)
    atomic_write_json(
        out / FINETUNE_CONFIG, {"lora": spec.to_dict(), "data": str(data), "model": str(model_dir)}
    )
    adapter = AdapterConfig(
        rank=spec.rank,
        alpha=spec.lora_alpha,
        target=spec.target,
        base_cascade=cascade.name,
        stages=(),
        base_sha256=(),
    )
    text = {"encoder": cascade.text_encoder, "max_length": cascade.text_max_length, "cache_dir": text_cache}
    results = []
    for stage in configs:
        run_dir = out / "runs" / stage.name
        ctx = dist_utils.init_distributed(device)
        try:
            trainer = LoraTrainer(
                stage,
                model_dir / stage.name,
                adapter,
                out,
                train_cfg,
                data_path,
                run_dir,
                ctx,
                resume=resume,
                text=text,
                progress=progress,
            )
            start = trainer.step
            if ctx.is_main:
                atomic_write_json(run_dir / "train_config.json", train_cfg.to_dict())
            with StopSignal().installed() as stop:
                interrupted = trainer.run(stop) if trainer.step < train_cfg.max_steps else False
            results.append(trainer.result(start, interrupted, weights_digest=False))
        finally:
            dist_utils.shutdown_distributed(ctx)
        if interrupted:
            break
    return results
