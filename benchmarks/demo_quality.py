"""The quality of a cascade in the synthetic world (docs/demo-cascade.md), with the rendered ground-truth row.

Samples one video per prompt and seed with the cascade's own sampling defaults (or per-stage
overrides, as ``generate`` takes them) and scores it with both in-domain evaluators (docs/world.md):
attribute accuracy (color, shape and motion all right) and the world-CLIP score / R-Precision (99
distractors) / Fréchet distance, and the motion's unevenness (``motion_step_cv``: about 0 for constant
speed, about 1 for frames repeated in pairs). The ground-truth row scores world renders of the same
prompts.
Prints a Markdown table and writes it with the settings as JSON when ``--out`` is given.

    python benchmarks/demo_quality.py                      # the shipped demo cascade
    python benchmarks/demo_quality.py --model DIR --seeds 0 1 --steps ssr2=16 --out results/q.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from imagen_video.cascade import Cascade, StageOverride
from imagen_video.cascade.registry import resolve_model_dir
from imagen_video.prompts import read_prompt_file
from imagen_video.world.evaluate import evaluate_world, ground_truth_row

PROMPTS = Path(__file__).with_name("world_prompts.txt")
KEYS = ("attribute_accuracy", "clip_score", "r_precision", "fd", "motion_step_cv")


def score(cascade: Cascade, prompts: list[str], seed: int, overrides: dict) -> dict:
    """One seed: sample every prompt, score the videos (world evaluators), and time the sampling."""
    start = time.perf_counter()
    out = cascade.generate(
        prompts, generator=torch.Generator().manual_seed(seed), overrides=overrides, progress=False
    )
    seconds = time.perf_counter() - start
    return {
        **flatten(evaluate_world(out.video, prompts, seed=seed)),
        "seconds": seconds,
        "stage_seconds": out.timings,
    }


def flatten(row: dict) -> dict:
    """The table's columns of an :func:`evaluate_world` row: per-attribute accuracies lifted up, and
    the accuracy on the held-out combinations (compositional generalisation) apart."""
    from imagen_video.world.spec import DEFAULT_HOLDOUT

    per_prompt = row["attributes"]["per_prompt"]
    held_out = [per_prompt[c.caption] for c in DEFAULT_HOLDOUT if c.caption in per_prompt]
    return {
        **{k: row[k] for k in KEYS},
        **{k: row["attributes"][k] for k in ("color", "shape", "motion")},
        "held_out_accuracy": float(np.mean(held_out)) if held_out else None,
        "per_prompt": per_prompt,
    }


def table(rows: dict[str, list[dict]]) -> str:
    """Markdown: mean (and standard error over seeds when there are several) of every column."""
    columns = (
        "attribute_accuracy",
        "held_out_accuracy",
        "color",
        "shape",
        "motion",
        "clip_score",
        "r_precision",
        "fd",
        "motion_step_cv",
    )
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, runs in rows.items():
        cells = []
        for column in columns:
            values = np.array([r[column] for r in runs if r.get(column) is not None], dtype=float)
            if values.size == 0:
                cells.append("")
                continue
            error = f" ± {values.std(ddof=1) / np.sqrt(values.size):.3f}" if values.size > 1 else ""
            cells.append(f"{values.mean():.3f}{error}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def step_overrides(cascade: Cascade, specs: list[str]) -> dict[str, StageOverride]:
    """``STAGE=N`` values to per-stage step overrides (the stage must exist)."""
    overrides = {}
    for spec in specs:
        stage, _, steps = spec.partition("=")
        cascade.config.stage(stage)
        overrides[stage] = StageOverride(steps=int(steps))
    return overrides


def main() -> None:
    """Parse the arguments, evaluate the cascade and the ground truth, print (and write) the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="cascade directory or shipped name (default: the default)")
    p.add_argument("--prompts", type=Path, default=PROMPTS, help="canonical captions, one per line")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", action="append", default=[], metavar="STAGE=N", help="sampler steps of a stage")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--out", type=Path, default=None, help="write the rows and settings as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = resolve_model_dir(args.model)
    prompts = [prompt for _, prompt in read_prompt_file(args.prompts)]
    cascade = Cascade.from_pretrained(model)
    overrides = step_overrides(cascade, args.steps)
    rows = {"cascade": [score(cascade, prompts, seed, overrides) for seed in args.seeds]}
    frames, height, width = cascade.config.stages[-1].shape
    rows["rendered ground truth"] = [
        flatten(ground_truth_row(prompts, frames, height, width, seed=seed)) for seed in args.seeds
    ]
    text = table(rows)
    machine = platform.processor() or platform.machine()
    print(f"{len(prompts)} prompts x {len(args.seeds)} seeds, {model}, {machine}, {args.threads} thread(s)")
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = {"model": str(model), "prompts": prompts, "seeds": args.seeds, "steps": args.steps}
        result = {"settings": settings, "rows": rows, "table": text}
        args.out.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
