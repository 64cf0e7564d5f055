"""Shared harness of the peer U-Net benchmarks: flags, timing and the JSON line.

The workload is the reference base workload of ``imagen-video bench unet`` (docs/performance.md): pixel
space, 3 channels, 16 frames of 24x40, batch 2, three levels of 64/128/256 channels, attention at the
two lower-resolution levels, 16 text tokens of width 768. A train step is forward + MSE + backward +
Adam step; a guided sampling step one batched conditional + unconditional forward. Median of
``--repeats`` after one warm-up. On CUDA both run under bf16 autocast, as ours does.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def parse_args(description: str) -> argparse.Namespace:
    """The flags every peer script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cpu", help='torch device: "cpu" or "cuda"')
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=24)
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def median_time(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up, synchronised on CUDA."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA, disabled on the CPU (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def report(
    net: torch.nn.Module,
    train_step: Callable[[], Any],
    sample_step: Callable[[], Any],
    args: argparse.Namespace,
    name: str,
) -> None:
    """Time both steps and print one JSON line (train_step_s, guided_sample_step_s, params_M, memory)."""
    device = torch.device(args.device)
    result: dict[str, Any] = {"system": name, "device": args.device}
    result["train_step_s"] = median_time(train_step, args.repeats, device)
    result["guided_sample_step_s"] = median_time(sample_step, args.repeats, device)
    result["params_M"] = sum(p.numel() for p in net.parameters()) / 1e6
    result["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result["peak_gpu_MB"] = torch.cuda.max_memory_allocated(device) / 2**20
    result["workload"] = f"b{args.batch} f{args.frames} {args.height}x{args.width} ch64-128-256"
    print(json.dumps(result))
