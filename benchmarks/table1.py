"""The paper's Table 1 (sec. 3.4) in the synthetic world: original vs distilled cascades, in one run.

Rows: guidance {constant w, oscillate(15, 1)} x {original base + original SR, original base +
distilled SR, fully distilled}, plus the ground-truth row (world renders of the prompts). Columns:
base steps, SR steps, in-domain CLIP score, in-domain CLIP R-Precision, attribute accuracy (each the
mean and standard error over seeds) and the sampling time per batch.

Guidance conventions: ``--constant-w`` is in the eq. 5 convention (w = 0: none; default 5 = Saharia's
6, Table 1's "constant=6"); ``--oscillate 15,1`` is in Saharia's W = 1 + w convention like Table 1, so
the base alternates w = 14 and 0 after its first ``--oscillate-k-fraction`` of steps at 14. As in the
paper, the row's guidance setting applies to the base stage; SR stages keep the cascade's guidance
(its oscillation length rescaled to their step count). Original stages run ``--original-sampler``
(paper: ancestral) with ``--base-steps`` / ``--sr-steps`` (paper: 256 / 128); the distilled cascade's
stages run its own sampling: a distilled stage its sampler and step count (paper: 8 stochastic steps)
with one forward per step and ``guidance_w``, a stage it kept undistilled its own sampler.

Each row's videos are cached under ``OUT/rows/<row>/seed-<s>/`` per batch (``.npz`` + timing), so
an interrupted run resumes where it stopped. Outputs: ``OUT/table1.json`` and ``OUT/table1.md``
(with the command and the machine):

    python benchmarks/table1.py --original demo --distilled demo-distilled --out results/t1 --retime 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imagen_video.cascade import Cascade, StageConfig, StageOverride
from imagen_video.diffusion.config import (
    GuidanceConfig,
    constant_guidance,
    oscillating_guidance,
    saharia_to_eq5,
)
from imagen_video.distill import mixed_cascade, rescale_guidance
from imagen_video.metrics.evaluate import summarize
from imagen_video.metrics.videos import load_video_dir, save_video_npz
from imagen_video.serialization import atomic_write_json, atomic_write_text

GUIDANCES = ("constant", "oscillate")
COMBINATIONS = ("original", "distilled_sr", "distilled")
METRIC_KEYS = ("world_clip_score", "world_clip_r_precision", "world_attribute_accuracy")
COMBINATION_LABELS = {
    "original": "original base + original SR",
    "distilled_sr": "original base + distilled SR",
    "distilled": "fully distilled",
}


@dataclasses.dataclass(frozen=True)
class TableSettings:
    """What the table samples and how (see the module docstring for the conventions)."""

    prompts: tuple[str, ...]  # canonical world captions, one video per prompt and seed
    seeds: tuple[int, ...]  # one run per seed (mean and standard error over them)
    base_steps: int = 256  # original base steps (Table 1)
    sr_steps: int = 128  # original SR steps (Table 1)
    original_sampler: str = "ancestral"  # sampler of the original stages (paper sec. 2.1)
    constant_w: float = 5.0  # eq. 5 convention (Saharia's 6)
    oscillate: tuple[float, float] = (15.0, 1.0)  # Saharia convention (W_high, W_low)
    oscillate_k_fraction: float = 0.125  # share of the base's steps held at the high weight
    batch_size: int = 4  # prompts per cascade call (the unit of "sampling time per batch")
    retime: int = 0  # > 0: time column = median of this many fresh runs of each row's first batch


@dataclasses.dataclass(frozen=True)
class Row:
    """One generated row of the table."""

    guidance: str  # "constant" or "oscillate"
    combination: str  # "original", "distilled_sr" or "distilled"

    @property
    def key(self) -> str:
        """Cache folder name, e.g. ``oscillate-distilled_sr``."""
        return f"{self.guidance}-{self.combination}"


ROWS = tuple(Row(g, c) for g in GUIDANCES for c in COMBINATIONS)


def default_prompts(count: int) -> list[str]:
    """``count`` canonical captions: the 12 held-out combinations first, then a fixed shuffle of the rest."""
    from imagen_video.world.spec import ALL_COMBOS, DEFAULT_HOLDOUT

    rest = [c for c in ALL_COMBOS if c not in DEFAULT_HOLDOUT]
    order = np.random.default_rng(0).permutation(len(rest))
    combos = list(DEFAULT_HOLDOUT) + [rest[i] for i in order]
    if not 1 <= count <= len(combos):
        raise ValueError(f"prompt count must be in 1..{len(combos)}, got {count}")
    return [c.caption for c in combos[:count]]


def base_guidance(guidance: str, settings: TableSettings, steps: int) -> GuidanceConfig:
    """The row's base-stage guidance for a ``steps``-step sampler (eq. 5 convention)."""
    if guidance == "constant":
        return constant_guidance(settings.constant_w)
    high, low = (saharia_to_eq5(w) for w in settings.oscillate)
    return oscillating_guidance(high, low, max(1, round(settings.oscillate_k_fraction * steps)))


def _original_override(stage: StageConfig, steps: int, sampler: str) -> StageOverride:
    """Original stage at ``steps`` steps of ``sampler``, its guidance's oscillation length rescaled."""
    return StageOverride(
        steps=steps, sampler=sampler, guidance=rescale_guidance(stage.guidance, stage.sampler.steps, steps)
    )


def row_overrides(row: Row, cascade: Cascade, settings: TableSettings) -> dict[str, StageOverride]:
    """Per-stage sampling of ``row`` on its (original, mixed or distilled) cascade: stages taken from
    the original cascade run the original sampler at base / SR steps; stages taken from the distilled
    cascade keep its sampling (a distilled stage its sampler, steps and one forward per step; a stage
    the distillation kept as it was, e.g. an unguided 2-step SR stage, its own sampler). The row's
    guidance goes to the base."""
    overrides = {}
    for index, stage in enumerate(cascade.config.stages):
        from_distilled = row.combination == "distilled" or (row.combination == "distilled_sr" and index > 0)
        if from_distilled:
            override = StageOverride()
        else:
            steps = settings.base_steps if index == 0 else settings.sr_steps
            override = _original_override(stage, steps, settings.original_sampler)
        if index == 0:
            steps = stage.sampler.steps if from_distilled else settings.base_steps
            override = dataclasses.replace(override, guidance=base_guidance(row.guidance, settings, steps))
        overrides[stage.name] = override
    return overrides


def row_cascade(row: Row, original: Cascade, distilled: Cascade | None) -> Cascade:
    """The cascade of a row: original, original base + distilled SR stages, or fully distilled
    (``distilled`` may be None for the original rows only; :func:`row_sources` checks that first)."""
    if row.combination == "original":
        return original
    assert distilled is not None
    if row.combination == "distilled":
        return distilled
    return mixed_cascade(original, distilled, [s.name for s in original.config.stages[1:]])


def _steps_label(steps: Sequence[int]) -> str:
    return "/".join(str(s) for s in dict.fromkeys(steps))


def sample_row(
    cascade: Cascade,
    overrides: dict[str, StageOverride],
    settings: TableSettings,
    row_dir: Path,
    key: dict[str, Any],
    progress: bool,
) -> tuple[list[torch.Tensor], list[float], int]:
    """Videos (N, C, T, H, W) in [0, 1] per seed, the per-batch sampling seconds, batches sampled now.

    Batch ``[i, i + batch_size)`` of seed ``s`` uses ``Generator.manual_seed(s * 1_000_003 + i)``; a
    batch whose videos and timing exist is read from the cache (a resumed run samples the rest).
    """
    prompts, runs, seconds, sampled = list(settings.prompts), [], [], 0
    for seed in settings.seeds:
        seed_dir = row_dir / f"seed-{seed}"
        _check_key(seed_dir, {**key, "seed": seed})
        for start in range(0, len(prompts), settings.batch_size):
            names = [f"{i:05d}.npz" for i in range(start, min(start + settings.batch_size, len(prompts)))]
            timing = seed_dir / f"batch-{start:05d}.json"
            if not (timing.is_file() and all((seed_dir / n).is_file() for n in names)):
                generator = torch.Generator(cascade.device).manual_seed(seed * 1_000_003 + start)
                begin = time.perf_counter()
                out = cascade.generate(
                    prompts[start : start + len(names)],
                    generator=generator,
                    overrides=overrides,
                    progress=progress,
                )
                elapsed = time.perf_counter() - begin
                for name, video in zip(names, out.video, strict=True):  # (C, T, H, W)
                    save_video_npz(seed_dir / name, video, out.fps)
                atomic_write_json(
                    timing, {"seconds": elapsed, "stage_seconds": out.timings, "videos": len(names)}
                )
                sampled += 1
            seconds.append(json.loads(timing.read_text(encoding="utf-8"))["seconds"])
        runs.append(load_video_dir(seed_dir, expected=len(prompts)))
    return runs, seconds, sampled


def _check_key(seed_dir: Path, key: dict[str, Any]) -> None:
    """Refuse cached videos of other settings (cascades, sampling, prompts, seed, batching). Stage
    configs are compared as :class:`StageConfig` objects, so a cache written before a config field
    with a default existed still matches."""
    path = seed_dir / "cache.json"
    if path.is_file():
        if _normalized(json.loads(path.read_text(encoding="utf-8"))) != _normalized(key):
            raise ValueError(f"{seed_dir} holds videos made with other settings; use another --out")
    else:
        atomic_write_json(path, key)


def _normalized(key: dict[str, Any]) -> dict[str, Any]:
    """A cache key with its ``stages`` read back into :class:`StageConfig` objects."""
    return {**key, "stages": [StageConfig.from_dict(s) for s in key.get("stages", [])]}


def ground_truth_runs(settings: TableSettings, shape: tuple[int, int, int]) -> list[torch.Tensor]:
    """World renders of the prompts at the cascade's output (T, H, W), one set per seed, in [0, 1]."""
    from imagen_video.world.render import render_clip
    from imagen_video.world.spec import parse_caption

    frames, height, width = shape
    runs = []
    for seed in settings.seeds:
        clips = [
            render_clip(
                parse_caption(p), frames=frames, height=height, width=width, seed=seed * 1_000_003 + i
            )[0]
            for i, p in enumerate(settings.prompts)
        ]
        runs.append(
            torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 255.0
        )  # (N, C, T, H, W)
    return runs


def score_runs(metric: Any, runs: Sequence[torch.Tensor], prompts: Sequence[str]) -> dict[str, Any]:
    """World metrics of every seed's videos, then mean and standard error over seeds (paper sec. 3.4)."""
    per_seed = [{"values": metric.compute(videos, list(prompts), None).values} for videos in runs]
    return {"per_seed": [r["values"] for r in per_seed], "summary": summarize(per_seed)}


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine the table ran on (its timings are only comparable within one run)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def weights_digest(cascade_dir: Path) -> dict[str, str]:
    """Digest (16 hex digits of :func:`~imagen_video.train.state.tensors_digest`) of every stage's
    tensors, by stage folder name: part of a row's cache key, so videos of retrained or re-distilled
    weights in the same directory are not reused. (The file bytes are no fingerprint: safetensors
    writes the metadata keys in varying order.)"""
    from safetensors.torch import load_file

    from imagen_video.train.state import tensors_digest

    return {
        weights.parent.name: tensors_digest(load_file(str(weights)))[:16]
        for weights in sorted(Path(cascade_dir).glob("*/model.safetensors"))
    }


def row_sources(row: Row, original_dir: Path, distilled_dir: Path | None) -> dict[str, Any]:
    """The cascades a row samples from, by directory and weights digest (its cache key: other rows'
    cascades do not matter)."""
    used = {"original": original_dir} if row.combination != "distilled" else {}
    if row.combination != "original":
        if distilled_dir is None:
            raise ValueError(f"row {row.key} needs the distilled cascade (--distilled)")
        used["distilled"] = distilled_dir
    sources: dict[str, Any] = {name: str(Path(path).resolve()) for name, path in used.items()}
    sources["weights"] = {name: weights_digest(Path(path)) for name, path in used.items()}
    return sources


def retime_row(cascade: Cascade, overrides: dict[str, StageOverride], settings: TableSettings) -> float:
    """Median wall time of ``settings.retime`` fresh runs of the row's first batch (seed 0's prompts),
    all rows timed back to back in this process, so their ratio compares like with like even when the
    cached batches were sampled at different times or on a busy machine."""
    prompts = list(settings.prompts[: settings.batch_size])
    times = []
    for _ in range(settings.retime):
        generator = torch.Generator(cascade.device).manual_seed(0)
        begin = time.perf_counter()
        cascade.generate(prompts, generator=generator, overrides=overrides, progress=False)
        times.append(time.perf_counter() - begin)
    return float(np.median(times))


def sample_rows(
    rows: Sequence[Row],
    original: Cascade,
    distilled: Cascade | None,
    sources: tuple[Path, Path | None],
    settings: TableSettings,
    out_dir: Path,
    progress: bool,
) -> list[tuple[Row, list[torch.Tensor], list[float], int, list[StageConfig]]]:
    """Sample (or read from the cache) the videos of ``rows``: (row, runs, seconds, sampled, stages)."""
    results = []
    for row in rows:
        key_sources = row_sources(row, *sources)  # refuses a missing distilled cascade
        cascade = row_cascade(row, original, distilled)
        overrides = row_overrides(row, cascade, settings)
        stages = [overrides[s.name].apply(s) for s in cascade.config.stages]
        key = {
            "row": row.key,
            **key_sources,
            "stages": [s.to_dict() for s in stages],
            "prompts": list(settings.prompts),
            "batch_size": settings.batch_size,
        }
        runs, seconds, sampled = sample_row(
            cascade, overrides, settings, out_dir / "rows" / row.key, key, progress
        )
        if settings.retime > 0:
            seconds = [retime_row(cascade, overrides, settings)]
        results.append((row, runs, seconds, sampled, stages))
    return results


def run_table(
    original_dir: Path,
    distilled_dir: Path | None,
    settings: TableSettings,
    out_dir: Path,
    *,
    world_clip: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    command: str = "",
    rows: Sequence[Row] = ROWS,
) -> dict[str, Any] | None:
    """Sample (or read cached) every row, score it with the world evaluators, write table1.json / .md.

    With a subset of ``rows`` (e.g. only the slow original rows, before the distilled cascade exists)
    the rows are sampled into the cache and no table is written (returns None).
    """
    from imagen_video.world.clip import world_clip_digest
    from imagen_video.world.metric import WorldMetrics

    torch_device = torch.device(device)
    original = Cascade.from_pretrained(original_dir, device=torch_device)
    distilled = None
    if distilled_dir is not None:
        distilled = Cascade.from_pretrained(
            distilled_dir, device=torch_device, text_encoder=original.text_encoder
        )
    sampled_rows = sample_rows(
        rows, original, distilled, (original_dir, distilled_dir), settings, out_dir, progress
    )
    if tuple(rows) != ROWS:
        return None
    metric = WorldMetrics(clip_dir=world_clip, device=torch_device)
    table_rows = [
        {
            "row": row.key,
            "guidance": row.guidance,
            "combination": row.combination,
            "base_steps": stages[0].sampler.steps,
            "sr_steps": _steps_label([s.sampler.steps for s in stages[1:]]),
            "samplers": {s.name: s.sampler.name for s in stages},
            "sampling_seconds_per_batch": sum(seconds) / len(seconds),
            "batches_sampled_now": sampled,
            **score_runs(metric, runs, settings.prompts),
        }
        for row, runs, seconds, sampled, stages in sampled_rows
    ]
    truth = score_runs(metric, ground_truth_runs(settings, original.config.output_shape), settings.prompts)
    table = {
        "command": command,
        "machine": machine_info(torch_device),
        "settings": dataclasses.asdict(settings),
        "world_clip": f"{world_clip or 'shipped assets'} (weights sha256 {world_clip_digest(world_clip)})",
        "rows": table_rows,
        "ground_truth": truth,
        "speedup": _speedups(table_rows),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "table1.json", table)
    atomic_write_text(out_dir / "table1.md", render_markdown(table))
    return table


def _speedups(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Wall-time ratio original / fully distilled per guidance setting (issue target: >= 15x)."""
    time_of = {r["row"]: r["sampling_seconds_per_batch"] for r in rows}
    return {g: time_of[f"{g}-original"] / time_of[f"{g}-distilled"] for g in GUIDANCES}


def _cell(summary: dict[str, Any], key: str) -> str:
    stats = summary.get(key)
    if stats is None:
        return ""
    stderr = "" if stats["stderr"] is None else f" ± {stats['stderr']:.2f}"
    return f"{stats['mean']:.2f}{stderr}"


def render_markdown(table: dict[str, Any]) -> str:
    """Table 1 as Markdown, with the conventions, the command and the machine."""
    s = table["settings"]
    labels = {
        "constant": f"constant w={s['constant_w']:g} (Saharia {s['constant_w'] + 1:g})",
        "oscillate": "oscillate({:g}, {:g}) (Saharia)".format(*s["oscillate"]),
    }
    lines = [
        "# Table 1 in the synthetic world (paper sec. 3.4)",
        "",
        "| Guidance | Cascade | Base steps | SR steps | CLIP score | CLIP R-Precision | Attribute accuracy "
        "| Sampling time / batch (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        cells = [
            labels[r["guidance"]],
            COMBINATION_LABELS[r["combination"]],
            str(r["base_steps"]),
            r["sr_steps"],
        ]
        cells += [_cell(r["summary"], k) for k in METRIC_KEYS] + [f"{r['sampling_seconds_per_batch']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    truth = table["ground_truth"]["summary"]
    lines.append("| ground truth | | | | " + " | ".join(_cell(truth, k) for k in METRIC_KEYS) + " | |")
    speed = ", ".join(f"{g}: {v:.1f}x" for g, v in table["speedup"].items())
    lines += [
        "",
        f"{len(s['prompts'])} prompts x {len(s['seeds'])} seed(s) "
        + ("(mean ± standard error over seeds); " if len(s["seeds"]) > 1 else "(one seed: no error bars); ")
        + f"{s['batch_size']} prompts per batch; "
        + (
            f"sampling time: median of {s['retime']} back-to-back runs of each row's first batch. "
            if s.get("retime")
            else "sampling time: mean over the sampled batches. "
        )
        + f"Original stages: {s['original_sampler']} sampler; stages of the distilled cascade: its own "
        "sampler and steps, one forward per step with guidance_w where guidance-distilled. Guidance applies "
        "to the base stage; w in the eq. 5 convention unless marked Saharia (W = 1 + w).",
        f"Fully distilled vs original wall time per batch: {speed}. In-domain CLIP: {table['world_clip']}.",
        "",
        f"Command: `{table['command']}`",
        "",
        f"Machine: `{json.dumps(table['machine'], sort_keys=True)}`",
        "",
    ]
    return "\n".join(lines)


def _cascade_dir(text: str) -> Path:
    from imagen_video.cascade.registry import resolve_model_dir

    return resolve_model_dir(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--original", type=_cascade_dir, help="original cascade directory (or shipped name: demo)")
    p.add_argument(
        "--distilled",
        type=_cascade_dir,
        help="fully distilled cascade directory, same stage names (or shipped name: demo-distilled)",
    )
    p.add_argument("--out", type=Path, required=True, help="output / cache directory")
    p.add_argument("--prompts", type=int, default=12, help="number of in-domain prompts (default 12)")
    p.add_argument("--seeds", default="0,1", help="comma-separated sampling seeds (default 0,1; paper: 4)")
    p.add_argument("--base-steps", type=int, default=256, help="original base steps (default 256)")
    p.add_argument("--sr-steps", type=int, default=128, help="original SR steps (default 128)")
    p.add_argument("--original-sampler", default="ancestral", choices=("ancestral", "ddim", "stochastic"))
    p.add_argument(
        "--constant-w", type=float, default=5.0, help="constant guidance, eq. 5 convention (default 5)"
    )
    p.add_argument(
        "--oscillate", default="15,1", help="oscillating W_high,W_low, Saharia convention (default 15,1)"
    )
    p.add_argument("--oscillate-k-fraction", type=float, default=0.125, help="share of base steps at W_high")
    p.add_argument("--batch-size", type=int, default=4, help="prompts per cascade call (default 4)")
    p.add_argument(
        "--retime",
        type=int,
        default=0,
        help="time each row by the median of N fresh runs of its first batch, back to back (default 0: "
        "the mean sampling time of the cached batches)",
    )
    p.add_argument("--world-clip", help="in-domain CLIP directory (default: the shipped weights)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--rows",
        help="comma-separated row keys to sample into the cache only, e.g. constant-original,"
        "oscillate-original (no table is written; default: every row and the table)",
    )
    return p.parse_args(argv)


def parse_rows(text: str | None) -> tuple[Row, ...]:
    """``--rows`` keys to rows (all rows when None); unknown keys raise ValueError."""
    if text is None:
        return ROWS
    by_key = {row.key: row for row in ROWS}
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in by_key]
    if unknown or not keys:
        raise ValueError(f"unknown --rows {unknown or text!r}; choose from {', '.join(by_key)}")
    return tuple(by_key[k] for k in keys)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the table; print the Markdown table."""
    args = parse_args(argv)
    progress = not args.no_progress
    high, low = (float(v) for v in args.oscillate.split(","))
    settings = TableSettings(
        prompts=tuple(default_prompts(args.prompts)),
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        base_steps=args.base_steps,
        sr_steps=args.sr_steps,
        original_sampler=args.original_sampler,
        constant_w=args.constant_w,
        oscillate=(high, low),
        oscillate_k_fraction=args.oscillate_k_fraction,
        batch_size=args.batch_size,
        retime=args.retime,
    )
    original, distilled, world_clip = args.original, args.distilled, args.world_clip
    try:
        rows = parse_rows(args.rows)
    except ValueError as error:
        print(f"table1: {error}", file=sys.stderr)
        return 2
    needs_distilled = any(r.combination != "original" for r in rows)
    if original is None or (distilled is None and needs_distilled):
        print("table1: --original and --distilled are required", file=sys.stderr)
        return 2
    command = shlex.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    table = run_table(
        original,
        distilled,
        settings,
        args.out,
        world_clip=world_clip,
        device=args.device,
        progress=progress,
        command=command,
        rows=rows,
    )
    if table is None:
        print(f"table1: sampled rows {', '.join(r.key for r in rows)} into {args.out / 'rows'}")
        return 0
    print(render_markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
