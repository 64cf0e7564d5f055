"""Whole-cascade cost per video: the original sampler settings against the distilled 8-step ones.

Paper sec. 3 (Table 1): the original cascade (256 base steps, 128 per SR stage, every step guided, i.e.
a conditional and an unconditional forward) takes 618 s per batch on TPU v4, the distilled one (8 steps
per stage, guidance distilled into one forward, sec. 2.7) 35 s, and needs about 36x fewer FLOPs.
Here FLOPs per stage forward are counted by ``torch.utils.flop_counter`` on a meta-device network at
the stage's full output shape; a step at which the guidance weight is 0 runs one forward, others two
(:func:`imagen_video.diffusion.guidance.guided_denoiser`). Times are the sum over stages of measured
step times (``bench stage --mode sample``: ``step_s`` guided, ``single_step_s`` one forward) times
steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PAPER_SECONDS = {"original": 618.0, "distilled": 35.0}
"""Seconds per batch of samples on TPU v4 (paper sec. 3, Table 1 caption)."""
PAPER_FLOP_RATIO = 36.0
"""Original / distilled FLOPs (paper sec. 3)."""
DISTILLED_STEPS = 8
"""Sampler steps of every distilled stage (paper sec. 3)."""


def forwards_per_step(guidance: Any, steps: int) -> list[int]:
    """Network forwards at each of ``steps`` sampler steps: 1 where the guidance weight is 0, else 2."""
    from imagen_video.diffusion.guidance import GuidanceSchedule

    return [1 if w == 0.0 else 2 for w in GuidanceSchedule(guidance).weights(steps)]


def stage_forward_flops(preset: str) -> dict[str, int]:
    """FLOPs of one forward of each stage at batch 1 and its full output shape (meta device)."""
    from imagen_video.bench.stage import forward_flops
    from imagen_video.cascade.presets import get_cascade_preset

    cascade = get_cascade_preset(preset)
    return {
        s.name: forward_flops(s.unet, (s.frames, s.height, s.width), 1, cascade.text_max_length)
        for s in cascade.stages
    }


def cascade_totals(
    preset: str,
    step_times: Mapping[str, Mapping[str, float]] | None = None,
    flops: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """FLOPs (and, with ``step_times`` for every stage, seconds) per video of both settings.

    ``step_times[stage]`` holds ``step_s`` (guided step) and ``single_step_s`` (one forward);
    ``flops`` defaults to :func:`stage_forward_flops`.
    """
    from imagen_video.cascade.presets import get_cascade_preset

    cascade = get_cascade_preset(preset)
    flops = dict(flops) if flops is not None else stage_forward_flops(preset)
    stages: dict[str, Any] = {}
    for stage in cascade.stages:
        forwards = forwards_per_step(stage.guidance, stage.sampler.steps)
        row: dict[str, Any] = {
            "steps": stage.sampler.steps,
            "forwards": sum(forwards),
            "forward_flops": flops[stage.name],
            "original_flops": sum(forwards) * flops[stage.name],
            "distilled_flops": DISTILLED_STEPS * flops[stage.name],
        }
        if step_times is not None and stage.name in step_times:
            times = step_times[stage.name]
            row["original_s"] = sum(times["step_s"] if f == 2 else times["single_step_s"] for f in forwards)
            row["distilled_s"] = DISTILLED_STEPS * times["single_step_s"]
        stages[stage.name] = row
    totals: dict[str, Any] = {"preset": preset, "stages": stages}
    for setting in ("original", "distilled"):
        totals[f"{setting}_flops"] = sum(r[f"{setting}_flops"] for r in stages.values())
        if all(f"{setting}_s" in r for r in stages.values()):
            totals[f"{setting}_s"] = sum(r[f"{setting}_s"] for r in stages.values())
    totals["flop_ratio"] = totals["original_flops"] / totals["distilled_flops"]
    if "original_s" in totals and "distilled_s" in totals:
        totals["time_ratio"] = totals["original_s"] / totals["distilled_s"]
    totals["paper"] = {**{f"{k}_s": v for k, v in PAPER_SECONDS.items()}, "flop_ratio": PAPER_FLOP_RATIO}
    return totals


def read_step_times(paths: list[Path]) -> dict[str, dict[str, float]]:
    """``step_s`` and ``single_step_s`` per stage from ``bench stage --mode sample`` JSON lines (files
    of one or more lines; other modes are skipped)."""
    times: dict[str, dict[str, float]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("mode") == "sample":
                times[row["stage"]] = {"step_s": row["step_s"], "single_step_s": row["single_step_s"]}
    return times
