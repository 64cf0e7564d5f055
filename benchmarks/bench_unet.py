"""Ablations of the video U-Net on the reference workload: which engineering choice buys what.

Runs each named configuration in a fresh process (train steps, then guided sampling steps, like the
peer scripts), interleaved over rounds so machine load drifts hit every configuration alike, and
prints per-configuration medians and the time ratio to the default configuration.

    .venv/bin/python benchmarks/bench_unet.py --rounds 3 --out benchmarks/results/ablations.json
    .venv/bin/python benchmarks/bench_unet.py --only default,groupnorm --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from imagen_video.bench.unet import UNetBenchSpec, run_child
from imagen_video.serialization import atomic_write_json

ABLATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "groupnorm": {"norm": "group"},
    "concat-skip": {"skip": "concat"},
    "no-channels-last": {"channels_last": False},
    "checkpointing": {"gradient_checkpointing": True},
    "ssr": {"variant": "ssr"},
    "tsr": {"variant": "tsr"},
}
"""Named changes to the reference workload (UNetBenchSpec fields)."""

METRICS = ("train_step_s", "guided_sample_step_s", "peak_rss_mb", "params", "fwd_gflop")


def main(argv: list[str] | None = None) -> int:
    """Run the ablations interleaved; print a markdown table and one JSON line of medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(ABLATIONS), help="comma-separated ablation names")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per run (median)")
    parser.add_argument("--out", type=Path, help="write all runs and medians as JSON here")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(ABLATIONS))
    if unknown:
        parser.error(f"unknown ablations {unknown}; allowed: {sorted(ABLATIONS)}")
    base = UNetBenchSpec(threads=args.threads, repeats=args.repeats)
    specs = {n: dataclasses.replace(base, **ABLATIONS[n]) for n in names}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            start = time.perf_counter()
            runs[name].append(run_child(specs[name], "all"))
            print(
                f"round {r + 1}/{args.rounds} {name}: {json.dumps(runs[name][-1])} "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    medians = {n: {m: statistics.median(run[m] for run in rs) for m in METRICS} for n, rs in runs.items()}
    ref = medians.get("default")
    print(
        f"| configuration | params | fwd GFLOP | train step (s) | guided step (s) | peak RSS (MB) |"
        f" time vs default (train / guided) |  (medians of {args.rounds})"
    )
    print("|---|---|---|---|---|---|---|")
    for n, m in medians.items():
        rel = (
            ""
            if ref is None
            else (
                f"{m['train_step_s'] / ref['train_step_s']:.2f}x / "
                f"{m['guided_sample_step_s'] / ref['guided_sample_step_s']:.2f}x"
            )
        )
        print(
            f"| {n} | {m['params'] / 1e6:.2f}M | {m['fwd_gflop']:.1f} | {m['train_step_s']:.2f} | "
            f"{m['guided_sample_step_s']:.2f} | {m['peak_rss_mb']:.0f} | {rel} |"
        )
    print(json.dumps(medians))
    if args.out:
        atomic_write_json(
            args.out, {"specs": {n: s.to_dict() for n, s in specs.items()}, "runs": runs, "medians": medians}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
