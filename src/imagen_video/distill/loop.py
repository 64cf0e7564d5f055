"""``distill_stage``: guidance distillation then progressive distillation of one cascade stage, resumable
(paper sec. 2.7; docs/math.md secs. 10-12).

The plan (:func:`~imagen_video.distill.config.distillation_plan`) is a list of rounds. Round 0 of
``--phase all`` is guidance distillation: the teacher is the original stage, the student its copy
with a zero-initialised w-embedding. Each progressive round halves the DDIM step count: its teacher is
the previous round's EMA student (a frozen copy), its student starts as an exact copy of the teacher.
Every round trains a fresh AdamW and EMA for a fixed number of optimiser steps on the training data
(``imagen_video.data`` + the text-embedding cache, like ``imagen-video train``).

Output directory (``<phase>`` is guidance, progressive or all)::

    distill_config.json         the DistillConfig of the latest (re)start
    plan.<phase>.json           the rounds of the plan
    distill_log.<phase>.csv     one row per optimiser step (see imagen_video.distill.records)
    rounds.<phase>.json         per-round loss summary of the finished rounds
    checkpoints/<phase>/step_*/ model (the student), ema, optimizer, rng + state.json (phase, round, ...)
    rounds/<round name>/        stage folder of each finished round (EMA weights), e.g. round2_64steps
    stage/                      the final distilled stage folder (stochastic sampler, target steps)
    text_cache/                 caption embeddings (unless another cache directory is given)

Checkpoints are written atomically (``imagen_video.train.checkpoint``) every ``checkpoint_every``
global steps, at the end of every round, at ``max_steps`` and on SIGTERM / SIGINT. A round's teacher
is not stored in the checkpoint: it is the source stage or the previous round's folder, checked by
digest on resume. Single process (one device); bf16 autocast on CUDA with ``precision="bf16"``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imagen_video.cascade.config import StageConfig
from imagen_video.cascade.stage_io import load_stage, save_stage
from imagen_video.distill.config import DistillConfig, Round, distillation_plan
from imagen_video.distill.objectives import (
    guidance_distillation_loss,
    prepare_inputs,
    progressive_distillation_loss,
    progressive_target,
    sample_w,
)
from imagen_video.distill.records import distill_log, write_round_summaries
from imagen_video.distill.student import (
    distilled_stage_config,
    guidance_student_config,
    make_guidance_student,
    trainable_copy,
)
from imagen_video.serialization import atomic_write_json
from imagen_video.train import checkpoint as ckpt
from imagen_video.train.data_stream import make_loader, open_dataset
from imagen_video.train.ema import EMA
from imagen_video.train.monitor import CsvLog, StopSignal, progress_bar
from imagen_video.train.state import (
    capture_rng,
    load_weights_groups,
    restore_rng,
    tensors_digest,
    weights_groups,
)
from imagen_video.train.text_cache import open_run_text_cache

CHECKPOINT_FORMAT = 2  # 2: the student's weights in the group ``model`` (1: ``student``)


@dataclasses.dataclass
class DistillResult:
    """What a finished (or stopped) ``distill_stage`` call did."""

    out_dir: Path  # the run directory
    stage_dir: Path | None  # ``out_dir/stage`` once the whole plan finished, else None
    global_step: int  # optimiser steps over all rounds, including those before a resume
    start_step: int  # global step this call started from
    completed: bool  # every round of the plan finished
    checkpoint: Path | None  # the last checkpoint written or resumed from
    losses: dict[str, list[float]]  # per round name: the losses of the steps this call ran
    rounds: list[dict[str, Any]]  # the per-round summary (``rounds.<phase>.json``)


@dataclasses.dataclass
class _RoundState:
    """Networks and optimiser of the round being trained."""

    rnd: Round
    teacher: nn.Module
    teacher_digest: str
    student: nn.Module
    stage: StageConfig  # the student's stage config (written to the round's stage folder)
    ema: EMA
    optimizer: torch.optim.Optimizer
    step: int = 0  # optimiser steps done in this round


class _Distiller:
    """State of one ``distill_stage`` call; each method is one part of the plan."""

    def __init__(
        self,
        source_stage: StageConfig,
        source_model: nn.Module,
        config: DistillConfig,
        data_path: str | Path,
        out_dir: str | Path,
        *,
        phase: str,
        device: torch.device,
        text: dict[str, Any],
        progress: bool,
    ) -> None:
        self.cfg, self.phase, self.device, self.progress = config, phase, device, progress
        self.out = Path(out_dir)
        self.plan = distillation_plan(config, phase)
        self.source_stage = source_stage
        self.source_model = source_model.to(device).eval().requires_grad_(False)
        self.w_stage = self._check_source()
        self.dataset = open_dataset(data_path, source_stage, seed=config.seed)
        self.cache = self._text_cache(**text)
        self.generator = torch.Generator(device=device).manual_seed(config.seed + 1_000_003)
        self.ckpt_root = self.out / "checkpoints" / phase
        self.log_path = self.out / f"distill_log.{phase}.csv"
        self.global_step = self.micro_batches = self.round_index = 0
        self.resumed: tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None = None
        self.last_checkpoint: Path | None = None
        self.losses: dict[str, list[float]] = {}

    # ---- set-up -----------------------------------------------------------------------------

    def _check_source(self) -> StageConfig:
        """Validate the source for the plan; return the w-conditioned stage config of stage 2."""
        conditioned = self.source_stage.unet.use_guidance_embedding
        if self.plan[0].phase == "guidance":
            if conditioned:
                raise ValueError(
                    f"stage {self.source_stage.name!r} is already guidance-distilled; use phase 'progressive'"
                )
            return guidance_student_config(self.source_stage)
        if not conditioned and not (self.out / "rounds" / "guidance").is_dir():
            raise ValueError(
                f"stage {self.source_stage.name!r} has no guidance embedding and {self.out / 'rounds'} holds "
                "no guidance round; run phase 'guidance' (or 'all') into this output directory first"
            )
        return self.source_stage if conditioned else guidance_student_config(self.source_stage)

    def _text_cache(self, encoder: str, max_length: int, cache_dir: str | Path | None) -> Any:
        """Every caption of the dataset encoded once (paper sec. 2.2: frozen text encoder)."""
        return open_run_text_cache(
            cache_dir,
            self.out,
            [r.caption for r in self.dataset.records],
            encoder=encoder,
            max_length=max_length,
            text_dim=self.source_stage.unet.text.dim,
            device=str(self.device),
            progress=self.progress,
        )

    def _teacher(self, index: int) -> tuple[StageConfig, nn.Module]:
        """Round ``index``'s frozen teacher: the source, the guidance round or the previous round."""
        if index > 0:
            folder = self.out / "rounds" / self.plan[index - 1].name
        elif self.plan[0].phase == "guidance" or self.source_stage.unet.use_guidance_embedding:
            return self.source_stage, self.source_model
        else:
            folder = self.out / "rounds" / "guidance"
        stage, model = load_stage(folder, stage_name=self.source_stage.name, device=self.device)
        return stage, model

    def _begin_round(self, index: int) -> _RoundState:
        """Teacher, student (from the teacher), EMA and AdamW of round ``index``; restored when resuming."""
        rnd = self.plan[index]
        teacher_stage, teacher = self._teacher(index)
        if rnd.phase == "guidance":
            init = torch.Generator().manual_seed(self.cfg.seed)
            stage, student = make_guidance_student(teacher, teacher_stage, generator=init)
        else:
            student = trainable_copy(teacher)
            stage = distilled_stage_config(self.w_stage, rnd.student_steps, self.source_stage.sampler.steps)
        student.null_tokens.requires_grad_(False)  # the student never sees the null text: no update
        cfg = self.cfg
        optimizer = torch.optim.AdamW(
            [p for p in student.parameters() if p.requires_grad],
            lr=cfg.lr,
            betas=cfg.adam_betas,
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
        )
        state = _RoundState(
            rnd,
            teacher,
            tensors_digest(teacher.state_dict()),
            student,
            stage,
            EMA(student, cfg.ema_decay, warmup=True),
            optimizer,
        )
        if self.resumed is not None:
            self._restore_round(state)
        return state

    # ---- checkpoints --------------------------------------------------------------------------

    def restore(self) -> None:
        """Read the newest complete checkpoint of this phase (nothing to do when there is none)."""
        ckpt.clear_incomplete(self.ckpt_root)
        latest = ckpt.open_latest_checkpoint(self.ckpt_root)
        if latest is None:
            return
        path, groups, state = latest
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint {path} has format {state.get('format')!r}; this version resumes format "
                f"{CHECKPOINT_FORMAT}: distill into a new output directory"
            )
        plan = [r.to_dict() for r in self.plan]
        if state["plan"] != plan or state["batch_size"] != self.cfg.batch_size:
            raise ValueError(
                f"checkpoint {path} was written for another plan or batch size ({state['plan']}, batch "
                f"{state['batch_size']}); resume with the same options or use a new output directory"
            )
        restore_rng(self.generator, groups["rng"], state["rng"])
        self.global_step, self.micro_batches = int(state["global_step"]), int(state["micro_batches"])
        self.round_index = int(state["round_index"])
        self.resumed, self.last_checkpoint = (groups, state), path

    def _restore_round(self, rs: _RoundState) -> None:
        """Load the resumed checkpoint's student, EMA and optimizer into ``rs`` (its own round only)."""
        assert self.resumed is not None
        groups, state = self.resumed
        self.resumed = None
        if state["teacher_digest"] != rs.teacher_digest:
            raise ValueError(
                f"the teacher of round {rs.rnd.name!r} differs from the one the checkpoint was trained with; "
                "the source stage or a round folder changed since"
            )
        t_start = state["stage_config"]["sampler"]["t_start"]
        if t_start != rs.stage.sampler.t_start:
            raise ValueError(
                f"round {rs.rnd.name!r} was distilled for a sampler starting at t = {t_start}, not "
                f"{rs.stage.sampler.t_start}; resume with the same --t-start or use a new output directory"
            )
        load_weights_groups(rs.student, rs.ema, rs.optimizer, groups, state)
        rs.step = int(state["round_step"])

    def save(self, rs: _RoundState) -> None:
        """Write a checkpoint of the current global step (once per step)."""
        if self.last_checkpoint is not None and self.last_checkpoint.name == ckpt.checkpoint_name(
            self.global_step
        ):
            return
        groups, weights_meta = weights_groups(rs.student, rs.ema, rs.optimizer)
        rng_tensors, rng_meta = capture_rng(self.generator)
        state = {
            "format": CHECKPOINT_FORMAT,
            "phase": self.phase,
            "plan": [r.to_dict() for r in self.plan],
            "round_index": self.round_index,
            "round_name": rs.rnd.name,
            "round_phase": rs.rnd.phase,
            "round_step": rs.step,
            "round_steps": rs.rnd.train_steps,
            "global_step": self.global_step,
            "micro_batches": self.micro_batches,
            "batch_size": self.cfg.batch_size,
            "teacher_digest": rs.teacher_digest,
            **weights_meta,
            "rng": rng_meta,
            "distill_config": self.cfg.to_dict(),
            "stage_config": rs.stage.to_dict(),
        }
        self.last_checkpoint = ckpt.write_checkpoint(
            self.ckpt_root,
            self.global_step,
            {**groups, "rng": rng_tensors},
            state,
            keep=self.cfg.keep_checkpoints,
        )

    # ---- the loop -----------------------------------------------------------------------------

    def _loss(self, rs: _RoundState, batch: dict[str, Any]) -> torch.Tensor:
        """Mean distillation loss of one batch. Draws: aug level + noise (SR), w, then t / i and eps."""
        cfg, generator = self.cfg, self.generator
        inputs = prepare_inputs(
            batch, self.cache.lookup(batch["caption"]), rs.stage, device=self.device, generator=generator
        )
        w = sample_w(inputs.x.shape[0], (cfg.w_min, cfg.w_max), generator, self.device)  # (B,)
        common = {"loss": cfg.loss, "precision": cfg.precision}
        if rs.rnd.phase == "guidance":
            loss = guidance_distillation_loss(
                rs.student, rs.teacher, inputs, rs.stage, w, generator=generator, **common
            )
        else:
            target = progressive_target(
                rs.teacher,
                inputs,
                rs.stage,
                w,
                n_student=rs.rnd.student_steps,
                generator=generator,
                teacher_threshold=cfg.teacher_threshold,
                precision=cfg.precision,
            )
            loss = progressive_distillation_loss(rs.student, target, inputs, rs.stage, **common)
        return loss.mean()

    def _one_step(self, rs: _RoundState, batch: dict[str, Any]) -> dict[str, Any]:
        """One optimiser step (skipped, weights unchanged, when the loss or gradient is not finite)."""
        lr = self.cfg.lr_at(rs.step, rs.rnd.train_steps)
        for group in rs.optimizer.param_groups:
            group["lr"] = lr
        rs.student.train()
        rs.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(rs, batch)
        loss.backward()
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(rs.student.parameters(), max_norm))
        value = float(loss.detach())
        skipped = not (math.isfinite(value) and math.isfinite(grad_norm))
        if skipped:
            rs.optimizer.zero_grad(set_to_none=True)
        else:
            rs.optimizer.step()
            rs.ema.update(rs.student)
        rs.step += 1
        self.global_step += 1
        self.micro_batches += 1
        return {"loss": value, "lr": lr, "grad_norm": grad_norm, "skipped": int(skipped)}

    def _train_round(
        self,
        rs: _RoundState,
        batches: Any,
        log: CsvLog,
        bar: Any,
        stop: StopSignal,
        max_steps: int | None,
    ) -> bool:
        """Train ``rs`` to the end of its round; True when stopped early (max_steps or a signal)."""
        bar.set_description(rs.rnd.name)
        while rs.step < rs.rnd.train_steps:
            if (max_steps is not None and self.global_step >= max_steps) or stop.requested:
                self.save(rs)
                return True
            out = self._one_step(rs, next(batches))
            self.losses.setdefault(rs.rnd.name, []).append(out["loss"])
            log.append(
                {
                    "global_step": self.global_step,
                    "phase": rs.rnd.phase,
                    "round": rs.rnd.index,
                    "student_steps": rs.rnd.student_steps or "",
                    "step": rs.step,
                    "loss": f"{out['loss']:.6g}",
                    "lr": f"{out['lr']:.6g}",
                    "grad_norm": f"{out['grad_norm']:.6g}",
                    "skipped": out["skipped"],
                }
            )
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss']:.4g}")
            if self.global_step % self.cfg.checkpoint_every == 0:
                self.save(rs)
        return False

    def _finish_round(self, rs: _RoundState) -> None:
        """Checkpoint the finished round, write its stage folder (EMA) and the round summaries."""
        self.save(rs)
        save_stage(self.out / "rounds" / rs.rnd.name, rs.stage, rs.ema.model)
        if self.round_index == len(self.plan) - 1:
            save_stage(self.out / "stage", rs.stage, rs.ema.model)
        self.round_index += 1
        self.summaries()

    def summaries(self) -> list[dict[str, Any]]:
        """Write and return ``rounds.<phase>.json`` for the rounds finished so far."""
        done = self.plan[: self.round_index]
        return write_round_summaries(self.out / f"rounds.{self.phase}.json", done, self.log_path)

    def run(self, stop: StopSignal, max_steps: int | None) -> bool:
        """Run the remaining rounds; True when every round of the plan finished."""
        loader, _ = make_loader(
            self.dataset,
            batch_size=self.cfg.batch_size,
            image_fraction=self.cfg.image_fraction,
            seed=self.cfg.seed,
            rank=0,
            world_size=1,
            start_micro_batches=self.micro_batches,
            num_workers=0,
        )
        batches = iter(loader)
        log = distill_log(self.log_path, resume_step=self.global_step)
        total = sum(r.train_steps for r in self.plan)
        with progress_bar(self.global_step, total, enabled=self.progress) as bar:
            while self.round_index < len(self.plan):
                resuming_round = self.resumed is not None
                if not resuming_round and max_steps is not None and self.global_step >= max_steps:
                    return False
                rs = self._begin_round(self.round_index)
                if self._train_round(rs, batches, log, bar, stop, max_steps):
                    return False
                self._finish_round(rs)
        return True


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def distill_stage(
    source_stage: StageConfig,
    source_model: nn.Module,
    data_path: str | Path,
    out_dir: str | Path,
    config: DistillConfig,
    *,
    phase: str = "all",
    resume: bool = False,
    max_steps: int | None = None,
    text_encoder: str = "embedded",
    text_max_length: int = 64,
    text_cache: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> DistillResult:
    """Distill one cascade stage (paper sec. 2.7): guidance distillation and / or progressive rounds.

    ``source_stage`` / ``source_model``: the stage to distill (e.g. from
    :func:`~imagen_video.distill.cascade_io.load_cascade_stage`); for ``phase="progressive"`` it must
    be guidance-conditioned, or ``out_dir/rounds/guidance`` must hold a finished guidance round.
    ``resume``: continue from the newest checkpoint of this phase (its round, step, optimizer, EMA and
    RNG); without it an output directory that already holds checkpoints of the phase is refused.
    ``max_steps``: stop (with a checkpoint) once this many global optimiser steps are done.
    ``text_encoder`` / ``text_max_length``: the cascade's frozen encoder for the caption cache.
    Raises ``imagen_video.data.DatasetError`` for unusable data, ValueError for a bad source or plan.
    """
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps={max_steps!r} must be >= 0 or None")
    out = Path(out_dir)
    root = out / "checkpoints" / phase
    if not resume and ckpt.list_checkpoints(root):
        raise ValueError(
            f"{root} already holds checkpoints; pass resume=True (--resume) or use a new output dir"
        )
    worker = _Distiller(
        source_stage,
        source_model,
        config,
        data_path,
        out,
        phase=phase,
        device=_resolve_device(device),
        text={"encoder": text_encoder, "max_length": text_max_length, "cache_dir": text_cache},
        progress=progress,
    )
    if resume:
        worker.restore()
    start = worker.global_step
    atomic_write_json(out / "distill_config.json", config.to_dict())
    atomic_write_json(out / f"plan.{phase}.json", [r.to_dict() | {"name": r.name} for r in worker.plan])
    with StopSignal().installed() as stop:
        completed = worker.run(stop, max_steps)
    return DistillResult(
        out_dir=out,
        stage_dir=out / "stage" if completed else None,
        global_step=worker.global_step,
        start_step=start,
        completed=completed,
        checkpoint=worker.last_checkpoint,
        losses=worker.losses,
        rounds=worker.summaries(),
    )
