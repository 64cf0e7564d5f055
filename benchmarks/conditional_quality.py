"""Quality of conditional generation in the synthetic world (docs/conditional.md).

Three tasks, each with every conditioning method asked for, on a shipped cascade (default: demo):

- animate: for every (color, shape) and motion, the first frame of a rendered clip is the image and
  the clip's caption the prompt; the world analyzer must read color, shape and motion from the video,
  and frame 0 is compared with the image (PSNR, dB);
- extend: a rendered clip's first 16 frames are extended by 16; the analyzer reads the 16 new frames,
  and the object's velocity across the seam (least-squares slope over frames 15-19) is compared with
  its velocity inside the clip (slope over frames 0-15); the new frames' object area is compared with
  the rendered continuation's (``size_drift``, mean log ratio; 0 when the size carries on right);
- extend_backward: the same with the clip's last 16 frames given and the 16 before them generated,
  measured on the time-reversed videos (the seam slope over frames 12-16, in the clip's own order);
- first/last frame: frames 0 and T-1 of a rendered moving clip are given; the object must move
  monotonically from the first position to the last (no step back by more than half a pixel).

Sampling keeps the model's own reconstruction of the known frames (``keep_input=False``), so frame 0
and the seam are the model's, not a copy of the input; ``--keep-input`` samples as the commands do by
default (every stage keeps the given frames; an extension's output starts with the clip itself either
way, so for extend this changes only what the later stages are conditioned on). Seeds and prompts
are fixed.

    python benchmarks/conditional_quality.py --out benchmarks/results/conditional_quality_demo.json
    python benchmarks/conditional_quality.py --methods reconstruction --weight 5 --limit extend=12
    python benchmarks/conditional_quality.py --merge a.json b.json --out all.json  # runs over --start
    python benchmarks/conditional_quality.py --tasks extend --steps base=32  # a stage's sampling changed
    python benchmarks/conditional_quality.py --tasks extend --keep-input  # as `imagen-video extend` samples
    python benchmarks/conditional_quality.py --tasks extend --keep-input --no-guidance-cap  # own guidance
    python benchmarks/conditional_quality.py --tasks extend --keep-input --anchor off  # SR stages unanchored
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from imagen_video.cascade import Cascade, CascadeStep
from imagen_video.cascade.conditional import EXTEND_GUIDANCE_CAP
from imagen_video.cascade.conditioning import METHODS
from imagen_video.cli._options import GUIDANCE_SYNTAX, parse_overrides
from imagen_video.serialization import atomic_write_json
from imagen_video.world import ALL_COMBOS, ALL_STILLS, MOTIONS, Combo, analyze_clip, render_clip
from imagen_video.world.analyze import measure_frames

CONTEXT = 16  # frames of the clip given to extend
SEAM = slice(CONTEXT - 1, CONTEXT + 4)  # frames whose slope is the velocity across the seam
Cases = list[tuple[Combo, int]]  # (combo, render seed) pairs
MOVING = ("moving left", "moving right", "moving up", "moving down")


def render(combo: Combo, frames: int, height: int, width: int, seed: int) -> torch.Tensor:
    """A rendered clip of ``combo`` as (C, T, H, W) float in [0, 1]."""
    clip, _ = render_clip(combo, frames=frames, height=height, width=width, seed=seed)
    return torch.from_numpy(clip).permute(3, 0, 1, 2).float() / 255.0


def track(video: torch.Tensor, motion: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame position of the object along ``motion``'s axis (frame units; side length in frame
    heights for growing / shrinking) and its presence, from the analyzer's measurements."""
    m = measure_frames(video.permute(1, 2, 3, 0).numpy())
    if motion in ("moving left", "moving right"):
        return m.cx, m.present
    if motion in ("moving up", "moving down"):
        return m.cy, m.present
    return np.sqrt(m.area) / video.shape[2], m.present


def slope(values: np.ndarray) -> float:
    """Least-squares change per frame of ``values``."""
    t = np.arange(len(values), dtype=np.float64)
    tc = t - t.mean()
    return float(tc @ (values - values.mean()) / (tc @ tc))


def seam_ratio(clip: torch.Tensor, video: torch.Tensor, motion: str) -> float | None:
    """The object's velocity across the seam of ``video`` (C, T, H, W), the slope over frames
    ``SEAM``, over its velocity inside the given ``clip`` (C, CONTEXT, H, W); None when the object is
    missing from a seam frame. 1 for a continuation at the clip's own constant speed."""
    inside, _ = track(clip, motion)
    position, present = track(video, motion)
    return slope(position[SEAM]) / slope(inside) if present[SEAM].all() else None


def size_drift(clip: torch.Tensor, video: torch.Tensor) -> float | None:
    """Mean over the new frames (from ``CONTEXT`` on) of log(object area in ``video`` / area in the
    rendered ``clip``), both (C, T, H, W); None when the object is missing from a new frame. Positive
    when the continuation draws the object larger than it is."""
    made, truth = (measure_frames(v[:, CONTEXT:].permute(1, 2, 3, 0).numpy()) for v in (video, clip))
    if not (made.present.all() and truth.present.all()):
        return None
    return float(np.mean(np.log(made.area / truth.area)))


def stage_positions(stages: dict[str, torch.Tensor], clip: torch.Tensor, motion: str) -> dict[str, object]:
    """Where each stage put the object in an extension of ``clip``'s first ``CONTEXT`` frames.

    ``stages``: each stage's output (C, T_stage, H, W) in [-1, 1]; ``clip`` the whole rendered clip
    (C, T, H, W). Positions are in frames of the clip's own motion, from its frame 0: stage frame k
    stands for clip frame k F (F = T / T_stage), where a continuation at the clip's speed reads k F.
    ``base_ratio``: the first stage's velocity from its last known frame on, over the clip's."""
    truth, _ = track(clip, motion)
    speed = slope(truth[:CONTEXT])
    positions = {}
    for name, video in stages.items():
        position, _ = track(((video + 1.0) / 2.0).clamp(0.0, 1.0), motion)
        positions[name] = [round(float(p), 2) for p in (position - truth[0]) / speed]
    base = np.array(next(iter(positions.values())))
    factor = clip.shape[1] // len(base)
    return {"stage_positions": positions, "base_ratio": slope(base[CONTEXT // factor - 1 :]) / factor}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two images in [0, 1]."""
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def in_batches(items: list, size: int, work: Callable[[list, int], list[dict]]) -> list[dict]:
    """``work(batch, batch_index)`` over ``items`` in batches of ``size``, results concatenated."""
    rows: list[dict] = []
    for index, first in enumerate(range(0, len(items), size)):
        rows += work(items[first : first + size], index)
        print(f"  {len(rows)}/{len(items)}", file=sys.stderr, flush=True)
    return rows


def sampling(method: str, args: argparse.Namespace, index: int) -> dict:
    """The options every task samples with: the method, ``w_r``, the model's own known frames, the
    stages' sampling overrides, and batch ``index``'s generator (so a run split with ``--start`` draws
    what one run would)."""
    options = {
        "method": method,
        "keep_input": args.keep_input,
        "overrides": args.overrides,
        "generator": torch.Generator().manual_seed(args.seed + args.start // args.batch + index),
        "progress": False,
    }
    return options if args.weight is None else {**options, "weight": args.weight}


def run_animate(cascade: Cascade, combos: Cases, method: str, args: argparse.Namespace) -> list[dict]:
    """Animate the first frame of each combo's rendered clip; analyzer match and frame-0 PSNR."""
    top = cascade.config.stages[-1]

    def work(batch: Cases, index: int) -> list[dict]:
        clips = [render(c, top.frames, top.height, top.width, seed) for c, seed in batch]
        images = torch.stack([clip[:, 0] for clip in clips])  # (B, C, H, W)
        out = cascade.animate(
            images,
            [c.caption for c, _ in batch],
            **sampling(method, args, index),
        ).video
        return [
            {
                "prompt": c.caption,
                "match": analyze_clip(video, "CTHW").matches(c),
                "psnr_frame0": psnr(video[:, 0], image),
            }
            for (c, _), video, image in zip(batch, out, images, strict=True)
        ]

    return in_batches(combos, args.batch, work)


def run_extend(
    cascade: Cascade, combos: Cases, method: str, args: argparse.Namespace, backward: bool = False
) -> list[dict]:
    """Extend each combo's first 16 rendered frames by 16 (``backward``: its last 16 by the 16 before
    them); analyzer on the new frames, seam speed and size drift. Backward is measured on the
    time-reversed videos, where the given frames, the seam and the new frames sit as forward."""
    top = cascade.config.stages[-1]
    added = top.frames - CONTEXT

    def work(batch: Cases, index: int) -> list[dict]:
        clips = torch.stack([render(c, top.frames, top.height, top.width, seed) for c, seed in batch])
        stages: dict[str, torch.Tensor] = {}  # each stage's last x_hat, (B, C, T, H, W) in [-1, 1]

        def keep_last(step: CascadeStep) -> None:
            if step.step == step.steps - 1:
                stages[step.stage] = step.x_hat.detach().float().cpu()

        out = cascade.extend(
            clips[:, :, added:] if backward else clips[:, :, :CONTEXT],
            [c.caption for c, _ in batch],
            frames=added,
            backward=backward,
            guidance_cap=None if args.no_guidance_cap else EXTEND_GUIDANCE_CAP,
            anchor={"auto": None, "on": True, "off": False}[args.anchor],
            callback=keep_last if args.stage_positions and not backward else None,
            **sampling(method, args, index),
        ).video
        rows = []
        for i, ((c, _), video, clip) in enumerate(zip(batch, out, clips, strict=True)):
            new = video[:, :added] if backward else video[:, CONTEXT:]
            seen, truth = (video.flip(1), clip.flip(1)) if backward else (video, clip)
            ratio = seam_ratio(truth[:, :CONTEXT], seen, c.motion)  # type: ignore[arg-type]
            rows.append(
                {
                    "prompt": c.caption,
                    "match": analyze_clip(new, "CTHW").matches(c),
                    "seam_ratio": ratio,
                    "seam_ok": ratio is not None and abs(ratio - 1.0) <= 0.25,
                    "size_drift": size_drift(truth, seen),  # type: ignore[arg-type]
                }
            )
            if stages:
                rows[-1].update(stage_positions({k: v[i] for k, v in stages.items()}, clip, c.motion))  # type: ignore[arg-type]
        return rows

    return in_batches(combos, args.batch, work)


def run_extend_backward(cascade: Cascade, combos: Cases, method: str, args: argparse.Namespace) -> list[dict]:
    """:func:`run_extend` with ``backward``: the 16 frames before each combo's last 16."""
    return run_extend(cascade, combos, method, args, backward=True)


def run_first_last(cascade: Cascade, combos: Cases, method: str, args: argparse.Namespace) -> list[dict]:
    """Give frames 0 and T-1 of each moving clip; the object must move monotonically between them."""
    top = cascade.config.stages[-1]

    def work(batch: Cases, index: int) -> list[dict]:
        clips = torch.stack([render(c, top.frames, top.height, top.width, seed) for c, seed in batch])
        out = cascade.animate(
            clips[:, :, 0],
            [c.caption for c, _ in batch],
            last_frame=clips[:, :, -1],
            **sampling(method, args, index),
        ).video
        rows = []
        for (c, _), video, clip in zip(batch, out, clips, strict=True):
            position, present = track(video, c.motion)  # type: ignore[arg-type]
            truth, _ = track(clip, c.motion)  # type: ignore[arg-type]
            direction = np.sign(truth[-1] - truth[0])
            tolerance = 0.5 / (top.width if c.motion in MOVING[:2] else top.height)  # half a pixel
            steps = np.diff(position) * direction
            monotone = bool(present.all() and (steps >= -tolerance).all())
            rows.append({"prompt": c.caption, "monotone": monotone, "worst_step": float(steps.min())})
        return rows

    return in_batches(combos, args.batch, work)


def summarize(rows: list[dict]) -> dict[str, object]:
    """Fractions and means over a cell's rows (booleans as fractions)."""
    summary: dict[str, object] = {"videos": len(rows)}
    for key in ("match", "seam_ok", "monotone"):
        if key in rows[0]:
            summary[key] = float(np.mean([r[key] for r in rows]))
    if "psnr_frame0" in rows[0]:
        values = np.array([r["psnr_frame0"] for r in rows])
        summary["psnr_frame0_mean"] = float(values.mean())
        summary["psnr_frame0_min"] = float(values.min())
        summary["psnr_frame0_ge_30db"] = float((values >= 30.0).mean())
    if "seam_ratio" in rows[0]:
        ratios = [r["seam_ratio"] for r in rows if r["seam_ratio"] is not None]
        summary["seam_ratio_median"] = float(np.median(ratios)) if ratios else None
    drifts = [r["size_drift"] for r in rows if r.get("size_drift") is not None]
    if drifts:
        summary["size_drift_mean"] = float(np.mean(drifts))
    if "base_ratio" in rows[0]:
        base = np.array([r["base_ratio"] for r in rows])
        summary["base_within_25"] = float((abs(base - 1.0) <= 0.25).mean())
        pairs = np.array([(r["base_ratio"], r["seam_ratio"]) for r in rows if r["seam_ratio"] is not None])
        summary["base_seam_correlation"] = float(np.corrcoef(pairs.T)[0, 1])
    return summary


TASKS = {
    "animate": run_animate,
    "extend": run_extend,
    "extend_backward": run_extend_backward,
    "first_last": run_first_last,
}


def task_combos(task: str, limit: int | None, start: int = 0) -> Cases:
    """(combo, render seed) pairs of a task: every combo (moving ones for first/last) with the motions
    taking turns and the (color, shape) stills in a fixed shuffled order per motion; the cases
    ``start`` to ``limit`` (exclusive) of that order."""
    motions = MOVING if task == "first_last" else MOTIONS
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(ALL_STILLS)) for _ in motions]
    combos = [
        Combo(ALL_STILLS[order[k]].color, ALL_STILLS[order[k]].shape, motion)
        for k in range(len(ALL_STILLS))
        for motion, order in zip(motions, orders, strict=True)
    ]
    return [(c, 1000 + ALL_COMBOS.index(c)) for c in combos[start:limit]]


def parse_limits(values: list[str]) -> dict[str, int]:
    """``--limit N`` (every task) or ``--limit TASK=N`` (repeatable) as {task: N}."""
    limits: dict[str, int] = {}
    for value in values:
        task, _, count = value.rpartition("=")
        for name in [task] if task else list(TASKS):
            limits[name] = int(count)
    return limits


def merge(paths: list[str]) -> dict[str, object]:
    """Results of several runs over disjoint cases (``--start``) as one: rows joined per cell and
    summarized again, seconds added, every command kept."""
    runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    cells: dict[str, dict[str, object]] = {}
    for run in runs:
        for name, cell in run["cells"].items():
            rows = cells.get(name, {}).get("rows", []) + cell["rows"]  # type: ignore[operator]
            seconds = cells.get(name, {}).get("seconds", 0.0) + cell["seconds"]  # type: ignore[operator]
            cells[name] = {**summarize(rows), "seconds": round(seconds, 1), "rows": rows}
    return {**runs[0], "command": [r["command"] for r in runs], "cells": cells}


def main() -> None:
    """Run the requested tasks and methods; print a table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="cascade directory or shipped name (default demo)")
    parser.add_argument(
        "--methods", help="comma-separated methods (default: every method the cascade supports)"
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    parser.add_argument(
        "--weight", type=float, help="w_r of reconstruction guidance (default: the command's, 2; extend 4)"
    )
    parser.add_argument(
        "--limit", action="append", default=[], help="cases per task end at N (N or TASK=N; default: all)"
    )
    parser.add_argument("--batch", type=int, default=12, help="videos sampled together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default cpu)")
    parser.add_argument(
        "--steps", action="append", default=[], metavar="[STAGE=]N", help="sampler steps (as generate's)"
    )
    parser.add_argument("--guidance", action="append", default=[], metavar="SPEC", help=GUIDANCE_SYNTAX)
    parser.add_argument(
        "--stage-positions",
        action="store_true",
        help="extend (forward only): record where every stage puts the object (rows' stage_positions, "
        "base_ratio)",
    )
    parser.add_argument(
        "--keep-input",
        action="store_true",
        help="every stage keeps the given frames, as the commands' default (default: the model's own)",
    )
    parser.add_argument(
        "--no-guidance-cap",
        action="store_true",
        help="extend: sample every stage with its own guidance (default: capped at w = 1, as extend does)",
    )
    parser.add_argument(
        "--anchor",
        choices=("auto", "on", "off"),
        default="auto",
        help="extend: guide the SR stages' new frames to their input (default auto: as extend does, "
        "with reconstruction guidance only)",
    )
    parser.add_argument("--start", type=int, default=0, help="skip the first N cases of every task")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="join the results of these runs instead")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.merge:
        atomic_write_json(args.out, merge(args.merge))
        return
    torch.set_num_threads(args.threads)
    cascade = Cascade.from_pretrained(args.model, device=args.device)
    args.overrides = parse_overrides(cascade.config, steps=args.steps, guidance=args.guidance)
    limits = parse_limits(args.limit)
    cells: dict[str, dict[str, object]] = {}
    methods = [m for m in METHODS if m != "finetuned" or cascade.frame_base is not None]
    for method in args.methods.split(",") if args.methods else methods:
        for task in args.tasks.split(","):
            print(f"{method} / {task}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            rows = TASKS[task](cascade, task_combos(task, limits.get(task), args.start), method, args)  # type: ignore[arg-type]
            cells[f"{method}/{task}"] = {
                **summarize(rows),
                "seconds": round(time.perf_counter() - start, 1),
                "rows": rows,
            }
            print(json.dumps({k: v for k, v in cells[f"{method}/{task}"].items() if k != "rows"}))
    result = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {args.device}, {args.threads} thread(s), torch {torch.__version__}",
        "cascade": str(args.model),
        "weight_w_r": args.weight,
        "steps": args.steps,
        "guidance": args.guidance,
        "keep_input": args.keep_input,
        "anchor": args.anchor,
        "cells": cells,
    }
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
