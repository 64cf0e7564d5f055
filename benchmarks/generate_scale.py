"""Videos per minute of ``imagen-video generate --prompts`` on 1 and on N torchrun ranks (docs/scale.md).

Each configuration is a fresh command (``python -m imagen_video.cli`` alone, or under
``torch.distributed.run --standalone --nproc-per-node N``) with one torch thread per rank, making the
same videos of the shipped demo cascade into a fresh directory; the wall time includes process start
and the cascade load on every rank, so the ratio is what a user gets, load time included. From the
manifest's batch times it also reports the cost model's inputs (docs/scale.md): the videos per minute
of one busy rank and the start-up and load seconds (wall time minus the busiest rank's batch time). The
machine's load average (``os.getloadavg``) is recorded before and after each run: on a shared machine
it says how much the other processes took.

    python benchmarks/generate_scale.py --videos 8 --ranks 2
    python benchmarks/generate_scale.py --videos 16 --ranks 1 --device cuda   # one GPU rank
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPTS = Path(__file__).with_name("world_prompts.txt")


def run_once(ranks: int, videos: int, device: str, batch_size: int, out: Path) -> dict[str, Any]:
    """One ``generate --prompts`` job on ``ranks`` ranks; its wall seconds, videos per minute, load."""
    prompts = out.with_suffix(".txt")
    lines = [line for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts.write_text("\n".join((lines * videos)[:videos]) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "imagen_video.cli", "generate", "--prompts", str(prompts)]
    command += ["-o", str(out), "--model", "demo", "--seed", "0", "--batch-size", str(batch_size)]
    command += ["--device", device, "--threads", "1", "--quiet"]
    if ranks > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={ranks}",
        ]
        command = [*launcher, *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    busy = rank_seconds(records)
    return {
        "ranks": ranks,
        "device": device,
        "videos": len(records),
        "seconds": round(seconds, 2),
        "videos_per_minute": round(len(records) / seconds * 60, 2),
        "rank_batch_seconds": busy,
        "per_rank_videos_per_minute": round(len(records) / sum(busy.values()) * 60, 2),
        "start_and_load_seconds": round(seconds - max(busy.values()), 2),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def rank_seconds(records: list[dict[str, Any]]) -> dict[int, float]:
    """Seconds each rank spent in its batches (sampling and writing), from the manifest's lines: the
    cost model's per-rank rate is videos over their sum; the rest of the wall time is start and load."""
    batches = {(r["rank"], r["batch"]): r["batch_seconds"] for r in records}
    busy: dict[int, float] = {}
    for (rank, _), spent in batches.items():
        busy[rank] = round(busy.get(rank, 0.0) + spent, 2)
    return dict(sorted(busy.items()))


def main(argv: list[str] | None = None) -> int:
    """Run 1 rank, then ``--ranks`` ranks; print each run as JSON and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8, help="videos per run (default 8)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the second run (default 2)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per claimed batch (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (each rank takes cuda:LOCAL_RANK)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in dict.fromkeys((1, args.ranks)):
            result = run_once(ranks, args.videos, args.device, args.batch_size, Path(tmp) / f"r{ranks}")
            print(json.dumps(result))
            results.append(result)
    if len(results) == 2:
        ratio = results[1]["videos_per_minute"] / results[0]["videos_per_minute"]
        print(f"{args.ranks} ranks / 1 rank: {ratio:.2f}x videos per minute")
    return 0


if __name__ == "__main__":
    sys.exit(main())
