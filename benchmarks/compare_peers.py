"""Compare our video U-Net with imagen-pytorch and diffusers on the reference workload.

Runs ours, imagen-pytorch and diffusers interleaved (one of each per round, rotating the order so no
system always runs first), each in a fresh process, and reports per-system medians and the ratios
the targets are stated in (peer time / our time; our peak memory / peer peak memory). The peers
are measured by the scripts in benchmarks/peers/, from the virtualenv that benchmarks/peers/setup.sh
builds (pass it as --peer-venv or $PEER_VENV; default .peer-venv in the repository).

    .venv/bin/python benchmarks/compare_peers.py --rounds 3 --out benchmarks/results/compare_peers.json
    .venv/bin/python benchmarks/compare_peers.py --device cuda --rounds 1   # bf16 on a GPU, GPU memory
    .venv/bin/python benchmarks/compare_peers.py --env OMP_WAIT_POLICY=PASSIVE   # same env for all three
    .venv/bin/python benchmarks/compare_peers.py --clock cpu   # one thread each, CPU time (shared machines)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from imagen_video.bench.unet import UNetBenchSpec
from imagen_video.serialization import atomic_write_json

PEER_SCRIPTS = {"imagen-pytorch": "unet3d_imagen_pytorch.py", "diffusers": "unet3d_diffusers.py"}
PEER_DIR = Path(__file__).resolve().parent / "peers"
DEFAULT_PEER_VENV = Path(__file__).resolve().parent.parent / ".peer-venv"
TARGETS = {"imagen-pytorch": 6.0, "diffusers": 3.0}  # minimum speed-up of train and guided steps
MEMORY_TARGET = 0.35  # maximum peak-RSS ratio ours / peer
METRICS = ("train_step_s", "guided_sample_step_s", "peak_rss_mb", "params")
"""Keys of every run; each also has ``peak_mb``: peak GPU memory on CUDA, else the peak RSS."""


def run_ours(spec: UNetBenchSpec, env: dict[str, str]) -> dict[str, Any]:
    """One fresh process that trains then samples, like the peer scripts (peak memory covers both)."""
    cmd = [sys.executable, "-m", "imagen_video.bench.unet", spec.to_json(indent=None), "all"]
    raw = _last_json_line(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout)
    return {m: raw[m] for m in METRICS} | {"peak_mb": raw.get("peak_gpu_mb", raw["peak_rss_mb"])}


def run_peer(python: Path, script: Path, env: dict[str, str], clock: str, device: str) -> dict[str, Any]:
    """Run a peer script on ``device`` and normalise its keys to ours (params, peak memory).

    With ``clock == "cpu"`` the script runs through peer_cpu_clock.py: one thread, CPU-time timer.
    """
    wrapper = [str(Path(__file__).with_name("peer_cpu_clock.py"))] if clock == "cpu" else []
    out = subprocess.run(
        [str(python), *wrapper, str(script), "--device", device],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    raw = _last_json_line(out)
    return {
        "train_step_s": raw["train_step_s"],
        "guided_sample_step_s": raw["guided_sample_step_s"],
        "peak_rss_mb": raw["peak_rss_MB"],
        "params": raw["params_M"] * 1e6,
        "peak_mb": raw.get("peak_gpu_MB", raw["peak_rss_MB"]),
    }


def _last_json_line(text: str) -> dict[str, Any]:
    return json.loads(text.strip().splitlines()[-1])


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per system and the target ratios against each peer."""
    keys = (*METRICS, "peak_mb")
    medians = {name: {m: statistics.median(r[m] for r in rs) for m in keys} for name, rs in runs.items()}
    ours = medians["ours"]
    ratios = {}
    for peer, speedup in TARGETS.items():
        if peer not in medians:
            continue
        p = medians[peer]
        r = {
            "train_speedup": p["train_step_s"] / ours["train_step_s"],
            "guided_speedup": p["guided_sample_step_s"] / ours["guided_sample_step_s"],
            "rss_ratio": ours["peak_mb"] / p["peak_mb"],
            "params_ratio": ours["params"] / p["params"],
        }
        r["meets_targets"] = (
            r["train_speedup"] >= speedup
            and r["guided_speedup"] >= speedup
            and r["rss_ratio"] <= MEMORY_TARGET
        )
        ratios[peer] = r
    return {"medians": medians, "ratios": ratios}


def markdown(summary: dict[str, Any], rounds: int) -> str:
    """A table of medians and ratios for docs/performance.md."""
    lines = [
        f"| system | params | train step (s) | guided step (s) | peak memory (MB) |  (medians of {rounds})",
        "|---|---|---|---|---|",
    ]
    for name, m in summary["medians"].items():
        lines.append(
            f"| {name} | {m['params'] / 1e6:.1f}M | {m['train_step_s']:.2f} | "
            f"{m['guided_sample_step_s']:.2f} | {m['peak_mb']:.0f} |"
        )
    lines += [
        "",
        "| vs peer | train speed-up | guided speed-up | memory ratio | meets targets |",
        "|---|---|---|---|---|",
    ]
    for peer, r in summary["ratios"].items():
        lines.append(
            f"| {peer} | {r['train_speedup']:.2f}x | {r['guided_speedup']:.2f}x | "
            f"{r['rss_ratio']:.3f} | {r['meets_targets']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run the interleaved rounds, print the summary (and write it with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--peer-venv",
        type=Path,
        default=Path(os.environ.get("PEER_VENV", DEFAULT_PEER_VENV)),
    )
    parser.add_argument("--peer-dir", type=Path, default=PEER_DIR, help="folder of the peer scripts")
    parser.add_argument("--device", default="cpu", help='"cpu" (fp32) or "cuda" (bf16 autocast, GPU memory)')
    parser.add_argument("--peers", default="imagen-pytorch,diffusers", help="comma-separated subset")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: every system with its default threads, wall-clock timing (the original "
        "protocol); cpu: every system on one thread, timed by process CPU time",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable set for all three systems alike "
        "(e.g. OMP_WAIT_POLICY=PASSIVE); repeatable",
    )
    parser.add_argument("--out", type=Path, help="write runs and summary as JSON here")
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEER_SCRIPTS))
    if unknown:
        parser.error(f"unknown peers {unknown}; allowed: {sorted(PEER_SCRIPTS)}")
    python = args.peer_venv / "bin" / "python"
    if peers and not python.exists():
        parser.error(f"no peer virtualenv at {args.peer_venv}: run bash benchmarks/peers/setup.sh")
    if args.clock == "cpu" and args.device != "cpu":
        parser.error("--clock cpu times CPU work: use it with --device cpu")
    bad_env = [e for e in args.env if "=" not in e]
    if bad_env:
        parser.error(f"--env needs KEY=VALUE, got {bad_env}")
    overrides = dict(e.split("=", 1) for e in args.env)
    env = {**os.environ, **overrides}
    spec = UNetBenchSpec(threads=1, clock="cpu") if args.clock == "cpu" else UNetBenchSpec(device=args.device)
    systems = ["ours", *peers]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for r in range(args.rounds):
        order = systems[r % len(systems) :] + systems[: r % len(systems)]
        for name in order:
            start = time.perf_counter()
            if name == "ours":
                result = run_ours(spec, env)
            else:
                result = run_peer(python, args.peer_dir / PEER_SCRIPTS[name], env, args.clock, args.device)
            runs[name].append(result)
            print(
                f"round {r + 1}/{args.rounds} {name}: {json.dumps(result)} "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    summary = summarize(runs)
    print(markdown(summary, args.rounds))
    print(json.dumps(summary))
    if args.out:
        atomic_write_json(args.out, {"spec": spec.to_dict(), "env": overrides, "runs": runs, **summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
