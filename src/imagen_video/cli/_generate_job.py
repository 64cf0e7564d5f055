"""`imagen-video generate --prompts FILE`: a batch job, as one process or as every rank of torchrun.

Prompts come from plain text or JSONL (:mod:`imagen_video.cascade.jobs`); each rank loads the cascade
once and claims batches (:mod:`imagen_video.cascade.sharded`); each video gets its own generator, is
written atomically and gets a line in ``manifest.jsonl`` (:mod:`imagen_video.cascade.job_manifest`).
Re-running into the same directory (or ``--resume``) makes only the videos that are missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagen_video.cascade.jobs import PromptLine, VideoJob
from imagen_video.cli import UserError

if TYPE_CHECKING:
    from imagen_video.cascade.directory import CascadeManifest
    from imagen_video.cascade.runner import Cascade, CascadeOutput
    from imagen_video.cascade.sharded import Shard


@dataclasses.dataclass
class JobPlan:
    """What every rank knows before sampling: the videos, their batches, which are done, the settings."""

    out: Path
    fmt: str
    seed: int
    model_dir: Path
    cascade_json: CascadeManifest
    overrides: dict[str, Any]
    settings: dict[str, Any]
    planned: list[VideoJob]
    units: list[list[VideoJob]]
    done: set[str]

    @property
    def todo(self) -> list[int]:
        """Indices of the batches with at least one video to make."""
        return [k for k, unit in enumerate(self.units) if any(job.id not in self.done for job in unit)]


def run_prompts_job(args: argparse.Namespace) -> int:
    """Validate, join the job, plan the videos, make the missing ones, merge the manifest."""
    from imagen_video.cascade import job_manifest, sharded

    started = time.perf_counter()
    lines, out, fmt = _check(args)
    if (
        args.resume
        and not (out / job_manifest.MANIFEST).is_file()
        and not any(out.glob(job_manifest.PART_GLOB))
    ):
        raise UserError(f"nothing to resume: {out} has no {job_manifest.MANIFEST}")
    shard = sharded.join_job(args.device)
    args.device = str(shard.device)  # e.g. "auto" or "cuda" resolved to this rank's device
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    plan = _plan(args, shard, lines, out, fmt)
    made = _make(args, shard, plan, started)
    if shard.is_main:
        manifest = job_manifest.merge(out, plan.planned)
        ranks = f" on {shard.world_size} ranks" if shard.distributed else ""
        print(
            f"{len(plan.planned)} videos in {out}: {made} made{ranks}, {len(plan.done)} already done; "
            f"seed {plan.seed}; manifest {manifest}; {time.perf_counter() - started:.1f}s"
        )
    sharded.leave_job(shard)
    return 0


def _check(args: argparse.Namespace) -> tuple[list[PromptLine], Path, str]:
    """Every argument checked before a process group or a network is started: prompts, -o, numbers."""
    import os

    from imagen_video.cascade import jobs
    from imagen_video.cli._options import check_positive, resolve_device
    from imagen_video.io_safety import check_dir_output
    from imagen_video.limits import check_counts, check_seed

    try:
        if args.prompt is not None:
            raise ValueError("give either a PROMPT or --prompts FILE, not both")
        lines = jobs.read_prompt_lines(args.prompts)
        for name in ("num_videos", "batch_size", "scale", "threads"):
            check_positive(f"--{name.replace('_', '-')}", getattr(args, name))
        check_positive("--seed", args.seed, allow_zero=True)
        check_seed(args.seed)
        check_counts(args.num_videos, args.scale)
        if args.output is not None and Path(args.output).suffix and not args.output.endswith(("/", os.sep)):
            raise ValueError(f"with --prompts, -o names a directory; got {args.output!r}")
        out = check_dir_output(args.output if args.output is not None else "videos", option="-o")
        if args.device != "auto":
            resolve_device(args.device)
    except ValueError as err:
        raise UserError(str(err)) from None
    return lines, out, args.format or "mp4"


def _plan(args: argparse.Namespace, shard: Shard, lines: list[PromptLine], out: Path, fmt: str) -> JobPlan:
    """The job's videos and batches; rank 0 picks the seed and finds the done videos for every rank."""
    from imagen_video.cascade import jobs, sharded
    from imagen_video.cascade.export import default_suffix
    from imagen_video.cli.generate import load_plan

    model_dir, cascade_json, _, overrides = load_plan(args)
    _check_fits(args, model_dir, cascade_json.config, overrides, len(lines))
    settings = _settings(model_dir, cascade_json.config, overrides, fmt, args.scale, args.lora)
    seed = sharded.from_main(_run_seed(args.seed, out) if shard.is_main else 0, shard)
    try:
        planned = jobs.plan_videos(
            lines, out, default_suffix(fmt), args.num_videos, seed, default_name=default_name
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    done = sharded.from_main(_done_ids(planned, out, settings) if shard.is_main else set(), shard)
    units = jobs.batches(planned, args.batch_size)
    return JobPlan(out, fmt, seed, model_dir, cascade_json, overrides, settings, planned, units, done)


def _check_fits(args: argparse.Namespace, model_dir: Path, config: Any, overrides: Any, prompts: int) -> None:
    """Refuse, before any model loads, a batch that cannot fit on this rank's device
    (:func:`imagen_video.limits.check_generate_fits`)."""
    from imagen_video.limits import check_generate_fits

    try:
        check_generate_fits(
            model_dir,
            config,
            overrides,
            num_prompts=prompts,
            batch_size=args.batch_size,
            num_videos=args.num_videos,
            scale=args.scale,
            offload=args.offload,
            device=args.device,
        )
    except ValueError as err:
        raise UserError(str(err)) from None


def default_name(line: PromptLine) -> str:
    """``<line number, 4 digits>-<prompt slug>``: the name of a line's outputs when it has no id."""
    from imagen_video.cli._outputs import slugify

    return f"{line.number:04d}-{slugify(line.prompt)}"


def _settings(
    model_dir: Path, config: Any, overrides: dict[str, Any], fmt: str, scale: int, lora: list[str]
) -> dict[str, Any]:
    """What a video's bytes depend on besides its seed and prompt: cascade, LoRA adapters, per-stage
    sampling, format."""
    stages = {}
    for stage in config.stages:
        stage = overrides[stage.name].apply(stage) if stage.name in overrides else stage
        stages[stage.name] = {
            "sampler": stage.sampler.to_dict(),
            "guidance": stage.guidance.to_dict(),
            "threshold": stage.threshold.to_dict(),
            "aug_logsnr": stage.aug_logsnr,
            "sample_tile": stage.sample_tile,
        }
    settings = {"model": str(model_dir.resolve()), "format": fmt, "scale": scale, "stages": stages}
    if lora:
        settings["lora"] = list(lora)
    return json.loads(json.dumps(settings))  # as read back from the manifest (tuples become lists)


def _run_seed(seed: int | None, out: Path) -> int:
    """``--seed``, else the seed of the run that wrote ``out``'s manifest (so a re-run resumes it),
    else a fresh one."""
    from imagen_video.cascade import job_manifest
    from imagen_video.cli.generate import resolve_seed

    if seed is None:
        seeds = {e.get("run_seed") for e in job_manifest.read_entries(out).values()} - {None}
        if len(seeds) == 1:
            return int(seeds.pop())
    return resolve_seed(seed)


def _done_ids(planned: list[VideoJob], out: Path, settings: dict[str, Any]) -> set[str]:
    from imagen_video.cascade import job_manifest

    job_manifest.remove_temporaries(out)  # only rank 0 runs this, before any rank may write
    entries = job_manifest.read_entries(out) if out.is_dir() else {}
    return {job.id for job in planned if job_manifest.is_done(job, entries.get(job.id), settings)}


def _make(args: argparse.Namespace, shard: Shard, plan: JobPlan, started: float) -> int:
    """Claim batches until none is left; sample each whole batch (the same batch any other run samples),
    write its missing videos and their manifest lines. Returns the number of videos the job made."""
    from imagen_video.cascade import job_manifest, sharded
    from imagen_video.cli._outputs import timing_report
    from imagen_video.cli.generate import write_outputs

    todo = plan.todo
    progress = sharded.JobProgress(shard, len(plan.planned), len(plan.done), enabled=not args.quiet)
    part = job_manifest.part_path(plan.out, shard.rank)
    cascade = None
    for k in shard.claim(len(todo)):
        unit = plan.units[todo[k]]
        cascade = cascade or _load(args, shard, plan)
        begin = time.perf_counter()
        output = _sample(args, cascade, plan, unit, progress.refresh if shard.is_main else None)
        missing = [i for i, job in enumerate(unit) if job.id not in plan.done]
        chosen = dataclasses.replace(
            output, video=output.video[missing], prompts=[unit[i].prompt for i in missing]
        )
        paths = write_outputs(chosen, [unit[i].path for i in missing], plan.fmt, args.scale)
        seconds = time.perf_counter() - begin
        entries = [job_manifest.entry(unit[i], plan.settings, shard.rank, todo[k], seconds) for i in missing]
        job_manifest.append_entries(part, [{**e, "run_seed": plan.seed} for e in entries])
        if not shard.distributed:
            for path in paths:
                print(f"wrote {path}")
            batch = (todo[k] + 1, len(plan.units))
            print(timing_report(output, time.perf_counter() - started, batch))
        progress.finished_batch(len(missing))
    progress.wait_for_all()
    return progress.made


def _load(args: argparse.Namespace, shard: Shard, plan: JobPlan) -> Cascade:
    from imagen_video.cli.generate import load_cascade, text_cache_encoder

    texts = list(dict.fromkeys(job.prompt for job in plan.planned))
    encoder = text_cache_encoder(args, plan.cascade_json, texts)
    return load_cascade(
        plan.model_dir,
        str(shard.device),
        encoder,
        plan.cascade_json,
        verify=not args.no_verify,
        lora=args.lora,
    )


def _sample(
    args: argparse.Namespace, cascade: Cascade, plan: JobPlan, unit: list[VideoJob], refresh: Any
) -> CascadeOutput:
    """One batch through the cascade, each video with its own generator (:func:`jobs.generators`)."""
    from imagen_video.cascade import jobs
    from imagen_video.cli.generate import warnings_as_lines
    from imagen_video.text import TextEncoderUnavailable

    try:
        with warnings_as_lines("generate"):
            return cascade.generate(
                [job.prompt for job in unit],
                generator=jobs.generators(unit),
                overrides=plan.overrides,
                offload=args.offload,
                progress=False,
                callback=None if refresh is None else lambda _: refresh(),
            )
    except (ValueError, TextEncoderUnavailable) as err:  # e.g. an override a stage rejects
        raise UserError(str(err)) from None
