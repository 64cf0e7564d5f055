"""The speed of ``imagen-video generate`` end to end, each run a fresh process.

Times the whole command from outside (process start, imports, model and encoder loading, sampling,
writing the file) and reads the command's own timing line for the split per stage. Prints a Markdown
table of every run and one JSON line of medians; ``--out`` writes both as JSON.

    python benchmarks/generate_speed.py                          # shipped default, CPU, 1 thread
    python benchmarks/generate_speed.py --device cuda --threads 0 --runs 3
    python benchmarks/generate_speed.py --model demo-distilled -- --steps base=16
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMING = re.compile(
    r"^timings: (?P<parts>.*); total (?P<total>[0-9.]+)s(?: \((?P<process>[0-9.]+)s including)?"
)


def parse_timing(stdout: str) -> dict[str, float]:
    """The ``timings:`` line of ``generate``'s output as {"text": s, <stage>: s, ..., "total": s}."""
    for line in stdout.splitlines():
        match = TIMING.match(line)
        if match:
            parts = dict(part.rsplit(" ", 1) for part in match["parts"].split(", "))
            seconds = {name: float(value.rstrip("s")) for name, value in parts.items()}
            seconds["total"] = float(match["total"])
            if match["process"] is not None:
                seconds["process"] = float(match["process"])
            return seconds
    raise ValueError(f"no timings line in generate's output:\n{stdout}")


def run_once(prompt: str, args: argparse.Namespace, extra: list[str], out_dir: Path) -> dict[str, float]:
    """One fresh ``generate`` process: its wall time from outside and its own split."""
    output = out_dir / ("frames" if args.format == "png" else f"v.{args.format}")
    command = [sys.executable, "-m", "imagen_video.cli", "generate", prompt, "-o", str(output)]
    command += ["--format", args.format, "--seed", "0", "--quiet", "--device", args.device, *extra]
    if args.model:
        command += ["--model", args.model]
    if args.threads:
        command += ["--threads", str(args.threads)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"generate failed ({done.returncode}): {done.stderr.strip()}")
    return {"wall": wall, **parse_timing(done.stdout)}


def main(argv: list[str] | None = None) -> int:
    """Run ``--runs`` fresh generate processes (after ``--warmup`` untimed ones) and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt", default="a red circle moving right")
    parser.add_argument("--model", help="cascade directory or shipped name (default: the default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--format", choices=("mp4", "gif", "webp", "png"), default="mp4")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (file cache)")
    parser.add_argument("--out", type=Path, help="write the runs and medians as JSON")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.warmup):
            run_once(args.prompt, args, extra, Path(tmp))
        runs = [run_once(args.prompt, args, extra, Path(tmp)) for _ in range(args.runs)]
    keys = list(runs[0])
    print("| run | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for i, run in enumerate(runs):
        print(f"| {i} | " + " | ".join(f"{run[k]:.2f}" for k in keys) + " |")
    medians = {k: round(statistics.median(run[k] for run in runs), 3) for k in keys}
    print(json.dumps({"medians": medians, "device": args.device, "machine": platform.machine()}))
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k != "out"} | {"extra": extra}
        args.out.write_text(json.dumps({"settings": settings, "runs": runs, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
