"""Attribute accuracy of a cascade with LoRA adapters: a new color, and the colors it already knew.

Generates one video per prompt and seed with the cascade's sampling defaults, with the given adapters
merged (``generate --lora``), and scores it with the world analyzer (color, shape and motion all
right; docs/world.md). Two prompt sets: ``new`` (every shape and motion of ``--color``, 18 prompts,
e.g. "an orange triangle moving left") and ``world`` (benchmarks/world_prompts.txt, the 36 prompts of
benchmarks/demo_quality.py). Prints one line per set and writes the rows as JSON with ``--out``.

    python benchmarks/finetune_orange.py --lora runs/orange/adapter --seeds 0 1 --out results/o.json
    python benchmarks/finetune_orange.py --model runs/orange/full_cascade --seeds 0 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from imagen_video.cascade import Cascade
from imagen_video.cascade.registry import resolve_model_dir
from imagen_video.finetune.adapter import apply_adapters, parse_lora_option
from imagen_video.world.analyze import analyze_clip, as_clip_list
from imagen_video.world.spec import MOTIONS, SHAPES, Combo, parse_caption

WORLD_PROMPTS = Path(__file__).with_name("world_prompts.txt")
ATTRIBUTES = ("color", "shape", "motion")


def prompt_sets(color: str) -> dict[str, list[str]]:
    """``new``: the 18 shape x motion captions of ``color``; ``world``: the 36 demo-quality prompts."""
    new = [Combo(color, s, m).caption for s, m in itertools.product(SHAPES, MOTIONS)]
    world = [line.strip() for line in WORLD_PROMPTS.read_text().splitlines() if line.strip()]
    return {"new": new, "world": world}


def score(cascade: Cascade, prompts: list[str], seeds: list[int]) -> dict:
    """Sample every prompt once per seed; the analyzer's accuracy over all of them (overall and per
    attribute), the misses with what was recognised, and the sampling time."""
    clips, targets, start = [], [], time.perf_counter()
    for seed in seeds:
        out = cascade.generate(prompts, generator=torch.Generator().manual_seed(seed), progress=False)
        clips.extend(as_clip_list(out.video))
        targets.extend(parse_caption(p) for p in prompts)
    seconds = time.perf_counter() - start
    found = [analyze_clip(clip, "THWC") for clip in clips]
    pairs = list(zip(found, targets, strict=True))
    row = {
        "attribute_accuracy": float(np.mean([f.matches(t) for f, t in pairs])),
        **{k: float(np.mean([getattr(f, k) == getattr(t, k) for f, t in pairs])) for k in ATTRIBUTES},
    }
    wrong = [f"{t.caption} -> {f.color} {f.shape} {f.motion}" for f, t in pairs if not f.matches(t)]
    return {**row, "videos": len(clips), "seconds": seconds, "wrong": wrong}


def main() -> None:
    """Parse the arguments, load the cascade with its adapters, score both prompt sets."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="cascade directory or shipped name (default: demo)")
    p.add_argument("--lora", action="append", default=[], metavar="DIR[:SCALE]", help="adapter; repeatable")
    p.add_argument("--color", default="orange", help="the new color (default orange)")
    p.add_argument("--sets", nargs="+", default=["new", "world"], choices=("new", "world"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--out", type=Path, default=None, help="write the rows and settings as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = resolve_model_dir(args.model)
    cascade = Cascade.from_pretrained(model)
    apply_adapters(cascade, model, [parse_lora_option(text) for text in args.lora])
    sets = prompt_sets(args.color)
    rows = {name: score(cascade, sets[name], args.seeds) for name in args.sets}
    machine = platform.processor() or platform.machine()
    print(f"{model} + {args.lora or 'no adapter'}, seeds {args.seeds}, {machine}, {args.threads} thread(s)")
    for name, row in rows.items():
        print(
            f"{name:6s} {row['videos']:3d} videos: accuracy {row['attribute_accuracy']:.3f} (color "
            f"{row['color']:.3f}, shape {row['shape']:.3f}, motion {row['motion']:.3f}), "
            f"{row['seconds']:.0f} s"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = {"model": str(model), "lora": args.lora, "color": args.color, "seeds": args.seeds}
        args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
