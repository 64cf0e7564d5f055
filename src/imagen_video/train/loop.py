"""``train_stage``: the training loop of one cascade stage (paper sec. 2.2: stages train independently).

One run: open the dataset (bad input fails here, before any model is built), encode every caption
once into an embedding cache, build the U-Net, its EMA copy and AdamW, optionally resume from the
newest complete checkpoint, then repeat :func:`~imagen_video.train.step.train_step` until
``max_steps``. Every ``checkpoint_every`` steps (and on SIGTERM / SIGINT, at the step boundary) a
checkpoint is written atomically and ``out_dir/stage/`` is refreshed with the EMA weights in the
cascade's stage-folder format. Under torchrun the ranks train data-parallel; only rank 0 writes.

Output directory::

    train_log.csv           step, loss, lr, grad_norm, steps_per_s, skipped_files, skipped_steps
    train_config.json       the TrainConfig of the latest (re)start
    checkpoints/step_*/     see imagen_video.train.checkpoint
    stage/                  config.json + model.safetensors (EMA), loadable by cascade.stage_io.load_stage
    previews/step_*/        grid.png (a row per preview prompt) and one GIF per prompt (EMA weights, DDIM)
    loss.png                loss and learning rate against step, redrawn at each checkpoint (matplotlib)
    text_cache/             caption embeddings (unless another cache directory is given)
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

from imagen_video.cascade.config import TRAINING_DRAW_FIELDS, StageConfig
from imagen_video.cascade.stage_io import save_stage
from imagen_video.data import SampleKey
from imagen_video.models import VideoUNet
from imagen_video.serialization import atomic_write_json
from imagen_video.train import checkpoint as ckpt
from imagen_video.train import distributed as dist_utils
from imagen_video.train.config import DATA_ORDER_FIELDS, TrainConfig, TrainSetupError, lr_at, preview_interval
from imagen_video.train.data_stream import make_loader, open_dataset
from imagen_video.train.ema import EMA
from imagen_video.train.fsdp import make_optimizer, set_learning_rate, single_process_group
from imagen_video.train.monitor import CsvLog, StopSignal, progress_bar
from imagen_video.train.preview import sample_preview, write_previews
from imagen_video.train.resume import load_newest_valid
from imagen_video.train.state import (
    capture_rng,
    load_weights_groups,
    restore_rng,
    tensors_digest,
    weights_groups,
)
from imagen_video.train.step import train_step
from imagen_video.train.text_cache import open_run_text_cache
from imagen_video.viz import plot_loss

CHECKPOINT_FORMAT = 1


@dataclasses.dataclass
class TrainResult:
    """What a finished (or interrupted) ``train_stage`` call did."""

    step: int
    """Optimiser steps completed in total (including those before a resume)."""
    start_step: int
    """Step the run started from (0, or the resumed checkpoint's step)."""
    interrupted: bool
    """True when a SIGTERM / SIGINT stopped the run early (after writing a checkpoint)."""
    checkpoint: Path | None
    """The last checkpoint written or resumed from."""
    stage_dir: Path
    """``out_dir/stage``: the EMA weights in stage-folder format."""
    losses: list[float]
    """Mean loss over ranks of every step this call ran."""
    skipped_files: int
    """Dataset records skipped as unreadable or too short (all ranks; reported on rank 0, else 0)."""
    weights_digest: str | None = None
    """sha256 of this rank's final weights (``weights_digest=True``, not under FSDP): equal on all
    ranks of a DDP run."""
    stop_signal: int | None = None
    """The signal number that stopped the run (SIGTERM 15, SIGINT 2), None when it ran to the end."""


class _Trainer:
    """State of one ``train_stage`` call; each method is one phase of the loop."""

    def __init__(
        self,
        stage_cfg: StageConfig,
        train_cfg: TrainConfig,
        data_path: str | Path,
        out_dir: str | Path,
        ctx: dist_utils.DistContext,
        *,
        resume: bool,
        text: dict[str, Any],
        progress: bool,
        init_from: str | Path | None = None,
    ) -> None:
        self.stage, self.cfg, self.ctx = stage_cfg, train_cfg, ctx
        self.out = Path(out_dir)
        self.progress = progress
        self.dataset = open_dataset(
            data_path, stage_cfg, seed=train_cfg.seed, skip_uncaptioned=train_cfg.skip_uncaptioned
        )
        self._sweep()
        existing = ckpt.find_latest_checkpoint(self.out / "checkpoints")
        if existing is not None and not resume:
            raise TrainSetupError(
                f"{self.out} already holds checkpoints (latest {existing.name}); pass resume=True "
                "(--resume) to continue that run, or choose another output directory"
            )
        self.previews = self._preview_items()
        self.cache = self._text_cache(**text)
        init = self._init_weights(Path(init_from)) if init_from is not None and existing is None else None
        self._build_model(init)
        self.step = self.micro_batches = self.skipped_steps = 0
        self.last_checkpoint: Path | None = None
        self.losses: list[float] = []
        if resume:
            self.restore()

    # ---- set-up -----------------------------------------------------------------------------

    def _preview_items(self) -> list[tuple[str, int]]:
        """(prompt, dataset record) pairs of the previews; the record gives SR stages their input clip."""
        videos = list(self.dataset.video_indices) or list(self.dataset.image_indices)
        prompts = list(self.cfg.preview_prompts) or [
            self.dataset.records[i].caption for i in videos[: self.cfg.num_previews]
        ]
        return [(prompt, videos[i % len(videos)]) for i, prompt in enumerate(prompts)]

    def _text_cache(self, encoder: str, max_length: int, cache_dir: str | Path | None) -> Any:
        """Encode all captions and preview prompts once (rank 0), then open the cache on every rank."""
        captions = [r.caption for r in self.dataset.records] + [p for p, _ in self.previews]
        options = {
            "encoder": encoder,
            "max_length": max_length,
            "text_dim": self.stage.unet.text.dim,
            "device": str(self.ctx.device),
        }
        cache = None
        if self.ctx.is_main:
            cache = open_run_text_cache(cache_dir, self.out, captions, progress=self.progress, **options)
        dist_utils.barrier(self.ctx)
        if cache is None:
            cache = open_run_text_cache(cache_dir, self.out, captions, progress=False, **options)
        return cache

    def _build_model(self, init: dict[str, torch.Tensor] | None = None) -> None:
        """U-Net (seeded init, identical on all ranks, or the ``init`` weights), EMA copy, DDP/FSDP
        wrapper, AdamW or 8-bit AdamW (:func:`imagen_video.train.fsdp.make_optimizer`), noise generator."""
        cfg, ctx = self.cfg, self.ctx
        model = VideoUNet(self.stage.unet, generator=torch.Generator().manual_seed(cfg.seed))
        if init is not None:
            model.load_state_dict(init)
        model = model.to(ctx.device)
        self.ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup)
        if cfg.activation_checkpointing:  # the training module only: the EMA copy is saved as the stage
            model.config = model.config.replace(gradient_checkpointing=True)
        shard = {  # FSDP2 computes in bf16 where autocast would (the memory model's bf16 case)
            "cpu_offload": cfg.cpu_offload,
            "mixed_precision": cfg.precision == "bf16" and ctx.device.type == "cuda",
        }
        self.model = dist_utils.wrap_model(model, ctx, fsdp=cfg.fsdp, **shard)
        self.sharded = cfg.fsdp
        if self.sharded:
            dist_utils.wrap_model(self.ema.model, ctx, fsdp=True, **shard)
        self.optimizer = make_optimizer(
            self.model.parameters(),
            cfg.optimizer,
            lr=lr_at(0, cfg),
            betas=cfg.adam_betas,
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
        )
        self.generator = torch.Generator(device=ctx.device).manual_seed(cfg.seed + 1_000_003 * (ctx.rank + 1))

    def _init_weights(self, folder: Path) -> dict[str, torch.Tensor]:
        """A stage folder's weights to start from (model and EMA; fresh optimiser, step 0), e.g. to
        continue training a shipped stage; its network must be this stage's."""
        from imagen_video.cascade.stage_io import check_weights_match, load_stage_weights, read_stage_config
        from imagen_video.train.known_frames import widen_for_known_frames

        saved = read_stage_config(folder)
        widen = self.stage.unet.frame_conditioning and not saved.unet.frame_conditioning
        source = saved.replace(unet=saved.unet.replace(frame_conditioning=True)) if widen else saved
        if source.trained_network() != self.stage.trained_network():
            raise TrainSetupError(
                f"--init-from {str(folder)!r} holds a different network than stage {self.stage.name!r}; "
                "pass the cascade it came from as --cascade (e.g. its cascade directory)"
            )
        state = load_stage_weights(folder, saved)
        check_weights_match(saved, VideoUNet(saved.unet), state)
        return widen_for_known_frames(state, saved.unet.in_channels) if widen else state

    # ---- checkpoints --------------------------------------------------------------------------

    def restore(self) -> None:
        """Continue from the newest checkpoint that verifies (a damaged newer one is skipped with a
        warning, :func:`imagen_video.train.resume.load_newest_valid`)."""
        root = self.out / "checkpoints"
        path = load_newest_valid(root, self._load_checkpoint, verbose=self.ctx.is_main)
        if path is None and self.ctx.is_main:
            print(f"no checkpoint in {root}; starting from step 0", file=sys.stderr)

    def _load_checkpoint(self, path: Path, groups: dict[str, Any], state: dict[str, Any]) -> None:
        """Load a read checkpoint into the model, EMA, optimiser, RNGs and counters."""
        self._check_compatible(path, state)
        load_weights_groups(self.model, self.ema, self.optimizer, groups, state, sharded=self.sharded)
        self._restore_rng(groups["rng"], state)
        self.step, self.micro_batches = int(state["step"]), int(state["micro_batches"])
        self.skipped_steps = int(state["skipped_steps"])
        self.last_checkpoint = path

    def _sweep(self) -> None:
        """Remove what a killed run left in ``checkpoints/`` (the run directory is locked, so no
        other trainer is writing there)."""
        if self.ctx.is_main:
            ckpt.clear_incomplete(self.out / "checkpoints")
        dist_utils.barrier(self.ctx)

    def _check_compatible(self, path: Path, state: dict[str, Any]) -> None:
        """Refuse a checkpoint of another network or optimizer; say when the training draws or the data
        order of the run change."""
        saved = StageConfig.from_dict(state["stage_config"])
        optimizer = state["train_config"].get("optimizer", "adamw")
        if optimizer != self.cfg.optimizer:
            raise TrainSetupError(
                f"checkpoint {path} holds {optimizer} optimizer state, this run uses {self.cfg.optimizer}; "
                f"resume with --optimizer {optimizer} or choose another output directory"
            )
        if saved.trained_network() != self.stage.trained_network():
            raise TrainSetupError(
                f"checkpoint {path} was trained for a different stage network ({saved.name!r}); resume "
                "with the same stage config or choose another output directory"
            )
        draws = [
            f"diffusion.{f} {getattr(saved.diffusion, f)} -> {getattr(self.stage.diffusion, f)}"
            for f in TRAINING_DRAW_FIELDS
            if getattr(saved.diffusion, f) != getattr(self.stage.diffusion, f)
        ]
        if draws and self.ctx.is_main:
            print(f"note: {', '.join(draws)} since {path.name}", file=sys.stderr)
        changed = [f for f in DATA_ORDER_FIELDS if state["train_config"][f] != self.cfg.to_dict()[f]]
        if changed and self.ctx.is_main:
            print(
                f"warning: {', '.join(changed)} changed since {path.name}: the data order of the resumed "
                "run differs from an uninterrupted one",
                file=sys.stderr,
            )

    def _restore_rng(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        rank = str(self.ctx.rank)
        if state["world_size"] != self.ctx.world_size:
            print(
                f"warning: checkpoint was written by {state['world_size']} rank(s), this run has "
                f"{self.ctx.world_size}; the noise generator is re-seeded and the data order "
                f"continues from the same micro-batch count",
                file=sys.stderr,
            )
            self.generator.manual_seed(self.cfg.seed + 1_000_003 * (self.ctx.rank + 1) + int(state["step"]))
            return
        own = {name.split("/", 1)[1]: t for name, t in tensors.items() if name.split("/", 1)[0] == rank}
        restore_rng(self.generator, own, state["rng"][rank])

    def save(self) -> None:
        """Write a checkpoint of the current step (rank 0) and refresh ``out_dir/stage``."""
        groups, weights_meta = weights_groups(self.model, self.ema, self.optimizer, sharded=self.sharded)
        rng = dist_utils.gather_to_main(capture_rng(self.generator), self.ctx)
        skipped = self._skipped_files()
        if self.ctx.is_main:
            rng_tensors = {f"{r}/{k}": t for r, (tensors, _) in enumerate(rng) for k, t in tensors.items()}
            position = self.stream.position(self.micro_batches)
            state = {
                "format": CHECKPOINT_FORMAT,
                "step": self.step,
                "micro_batches": self.micro_batches,
                "epoch": position.epoch,
                "batch_in_epoch": position.batch_in_epoch,
                "world_size": self.ctx.world_size,
                **weights_meta,
                "rng": {str(r): meta for r, (_, meta) in enumerate(rng)},
                "skipped_steps": self.skipped_steps,
                "skipped_files": skipped,
                "train_config": self.cfg.to_dict(),
                "stage_config": self.stage.to_dict(),
            }
            self.last_checkpoint = ckpt.write_checkpoint(
                self.out / "checkpoints",
                self.step,
                {**groups, "rng": rng_tensors},
                state,
                keep=self.cfg.keep_checkpoints,
            )
            self.write_weights(groups["ema"])
            plot_loss(self.out / "train_log.csv", self.out / "loss.png")
        dist_utils.barrier(self.ctx)

    def write_weights(self, ema_state: dict[str, torch.Tensor]) -> None:
        """Refresh ``out_dir/stage`` with the EMA weights (rank 0, after each checkpoint)."""
        save_stage(self.out / "stage", self.stage, self._plain_ema(ema_state))

    def _plain_ema(self, ema_state: dict[str, torch.Tensor]) -> torch.nn.Module:
        """The EMA weights as an unsharded module (the EMA module itself unless FSDP shards it)."""
        if not self.sharded:
            return self.ema.model
        model = VideoUNet(self.stage.unet)
        model.load_state_dict(ema_state)
        return model

    # ---- the loop -----------------------------------------------------------------------------

    def _skipped_files(self) -> int:
        """Distinct dataset records skipped on any rank (a collective under torchrun)."""
        lists = dist_utils.gather_to_main([str(p) for p, _ in self.dataset.skipped_files()], self.ctx)
        return len({p for paths in lists for p in paths}) if lists is not None else 0

    def _one_step(self, batches: Any) -> dict[str, float | bool]:
        micro = [next(batches) for _ in range(self.cfg.grad_accum)]
        texts = [self.cache.lookup(b["caption"]) for b in micro]
        lr = lr_at(self.step, self.cfg)
        set_learning_rate(self.optimizer, lr)
        out = train_step(
            self.model,
            micro,
            texts,
            self.stage,
            optimizer=self.optimizer,
            generator=self.generator,
            grad_clip=self.cfg.grad_clip,
            precision=self.cfg.precision,
        )
        if out["skipped"]:
            self.skipped_steps += 1
        else:
            self.ema.update(dist_utils.unwrap_model(self.model))
        self.step += 1
        self.micro_batches += self.cfg.grad_accum
        return {**out, "lr": lr}

    def run(self, stop: StopSignal) -> bool:
        """Train until ``max_steps`` or a stop signal; returns True when stopped by a signal."""
        cfg = self.cfg
        loader, self.stream = make_loader(
            self.dataset,
            batch_size=cfg.batch_size,
            image_fraction=cfg.image_fraction,
            seed=cfg.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            start_micro_batches=self.micro_batches,
            num_workers=cfg.num_workers,
        )
        log = CsvLog(self.out / "train_log.csv", resume_step=self.step) if self.ctx.is_main else None
        window: list[tuple[float, float]] = []
        clock = time.perf_counter()
        batches = iter(loader)
        stopped = False
        with progress_bar(self.step, cfg.max_steps, enabled=self.ctx.is_main and self.progress) as bar:
            while self.step < cfg.max_steps and not stopped:
                out = self._one_step(batches)
                loss, grad_norm, stop_votes = dist_utils.mean_over_ranks(
                    [out["loss"], out["grad_norm"], float(stop.requested)], self.ctx
                )
                stopped = stop_votes > 0
                self.losses.append(loss)
                window.append((loss, grad_norm))
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps or stopped:
                    clock = self._log(log, bar, window, out["lr"], clock)
                    window = []
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps or stopped:
                    self.save()
                every = preview_interval(cfg)
                if every and (self.step % every == 0 or self.step == cfg.max_steps):
                    self.preview()
        return stopped

    def _log(
        self, log: CsvLog | None, bar: Any, window: list[tuple[float, float]], lr: float, clock: float
    ) -> float:
        """Append one CSV row (means over the window's steps) and update the progress bar."""
        skipped = self._skipped_files()
        now = time.perf_counter()
        if log is not None:
            loss = sum(w[0] for w in window) / len(window)
            grad_norm = sum(w[1] for w in window) / len(window)
            log.append(
                {
                    "step": self.step,
                    "loss": f"{loss:.6f}",
                    "lr": f"{lr:.6g}",
                    "grad_norm": f"{grad_norm:.6f}",
                    "steps_per_s": f"{len(window) / (now - clock):.4f}",
                    "skipped_files": skipped,
                    "skipped_steps": self.skipped_steps,
                }
            )
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", skipped=skipped)
        return now

    def result(self, start: int, interrupted: bool, *, weights_digest: bool) -> TrainResult:
        """Summary of the run (collective: every rank calls it)."""
        skipped = self._skipped_files()
        digest = None
        if weights_digest and not self.sharded:
            digest = tensors_digest(dist_utils.unwrap_model(self.model).state_dict())
        return TrainResult(
            step=self.step,
            start_step=start,
            interrupted=interrupted,
            checkpoint=self.last_checkpoint,
            stage_dir=self.out / "stage",
            losses=self.losses,
            skipped_files=skipped,
            weights_digest=digest,
        )

    def preview(self) -> None:
        """Sample one clip per preview prompt from the EMA weights and write GIFs (rank 0; all ranks
        sample under FSDP, whose EMA weights are sharded). A non-finite sample is reported, not fatal."""
        if not (self.ctx.is_main or self.sharded) or not self.previews:
            return
        prompts = [p for p, _ in self.previews]
        cond = None
        if self.stage.kind != "base":
            cond = torch.stack([self.dataset[SampleKey(i, 0, 0)]["cond_video"] for _, i in self.previews])
        generator = torch.Generator(device=self.ctx.device).manual_seed(self.cfg.seed)
        try:
            videos = sample_preview(
                self.ema.model,
                self.stage,
                self.cache.lookup(prompts),
                cond_video=cond,
                steps=self.cfg.preview_sampling_steps,
                generator=generator,
                precision=self.cfg.precision,
            )
        except FloatingPointError as err:  # a diverged model: report it, keep the run (and its log) going
            print(f"warning: preview at step {self.step} failed: {err}", file=sys.stderr)
            return
        if self.ctx.is_main:
            write_previews(
                videos, prompts, self.out / "previews" / ckpt.checkpoint_name(self.step), self.stage.fps
            )


def train_stage(
    stage_cfg: StageConfig,
    train_cfg: TrainConfig,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    text_encoder: str = "embedded",
    text_max_length: int = 64,
    text_cache: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    weights_digest: bool = False,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train one cascade stage (a ``StageConfig``) on the dataset at ``data_path`` into ``out_dir``.

    ``text_encoder`` / ``text_max_length``: the cascade's frozen text encoder (paper sec. 2.2), used
    only to fill the embedding cache (``text_cache``, default ``out_dir/text_cache``) before training.
    ``resume``: continue from the newest complete checkpoint in ``out_dir/checkpoints`` (from scratch
    when there is none). ``device``: None / "auto" picks ``cuda:<local rank>`` when available. Under
    torchrun the same call trains data-parallel. Raises ``imagen_video.data.DatasetError`` at once for
    unusable data. ``weights_digest``: also hash this rank's final weights (replica check).
    ``init_from``: a stage folder whose weights a new run starts from (ignored once the run has a
    checkpoint to resume).
    See the module docstring for the outputs.
    """
    from imagen_video.io_safety import LockedError

    ctx = dist_utils.init_distributed(device)
    # one process with fsdp shards in a one-rank group (what CPU offload on one device needs)
    group = single_process_group(ctx.device) if train_cfg.fsdp else contextlib.nullcontext()
    try:
        with _run_lock(out_dir, ctx), group:
            text = {"encoder": text_encoder, "max_length": text_max_length, "cache_dir": text_cache}
            trainer = _Trainer(
                stage_cfg,
                train_cfg,
                data_path,
                out_dir,
                ctx,
                resume=resume,
                text=text,
                progress=progress,
                init_from=init_from,
            )
            start = trainer.step
            if ctx.is_main:
                atomic_write_json(trainer.out / "train_config.json", train_cfg.to_dict())
            with StopSignal().installed() as stop:
                interrupted = trainer.run(stop) if trainer.step < train_cfg.max_steps else False
            result = trainer.result(start, interrupted, weights_digest=weights_digest)
            return dataclasses.replace(result, stop_signal=stop.signum if interrupted else None)
    except LockedError as err:
        raise TrainSetupError(str(err)) from None
    finally:
        dist_utils.shutdown_distributed(ctx)


def _run_lock(out_dir: str | Path, ctx: dist_utils.DistContext) -> contextlib.AbstractContextManager[Any]:
    """The exclusive lock on the run directory, held by rank 0 for the whole run: a second trainer
    on the same directory is refused at once, naming the holder (docs/reliability.md)."""
    from imagen_video.io_safety import RunLock

    if not ctx.is_main:
        return contextlib.nullcontext()
    return RunLock(out_dir, wait=False, what="run directory")
