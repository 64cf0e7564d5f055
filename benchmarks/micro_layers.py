"""Micro-benchmarks behind two layer choices of the video U-Net (level-0 shapes of the reference workload).

1. Temporal convolution: Conv3d with a (k, 1, 1) kernel on (B, C, T, H, W) versus a Conv2d with a
   (k, 1) kernel on the free (B, C, T, H*W) channels-last view (what TemporalConv does).
2. Normalisation on channels-last frames: GroupNorm versus LayerNorm over channels.

Prints the minimum CPU time (ms) over repeats of forward and forward+backward, one thread by default
(CPU time is robust to other processes on a shared machine).

    .venv/bin/python benchmarks/micro_layers.py --threads 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    """Minimum CPU time of ``fn`` in milliseconds over ``repeats`` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best * 1e3


def report(name: str, fn: Callable[[], torch.Tensor], repeats: int) -> None:
    """Print forward and forward+backward CPU time of ``fn`` (which must return a tensor)."""
    grad = torch.randn_like(fn())
    fwd = cpu_ms(lambda: fn().detach(), repeats)
    both = cpu_ms(lambda: fn().backward(grad), repeats)
    print(f"{name:44s} fwd {fwd:7.2f} ms   fwd+bwd {both:7.2f} ms")


def main() -> None:
    """Run both comparisons at the level-0 shape (B=2, T=16, C=64, 24x40)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    b, t, c, h, w = 2, 16, 64, 24, 40
    x = torch.randn(b * t, c, h, w).contiguous(memory_format=torch.channels_last).requires_grad_()

    conv3d = nn.Conv3d(c, c, (3, 1, 1), padding=(1, 0, 0)).to(memory_format=torch.channels_last_3d)
    conv2d = nn.Conv2d(c, c, (3, 1), padding=(1, 0)).to(memory_format=torch.channels_last)
    report(
        "temporal Conv3d (3,1,1) on (B,C,T,H,W)",
        lambda: conv3d(x.unflatten(0, (b, t)).transpose(1, 2)).transpose(1, 2).flatten(0, 1),
        args.repeats,
    )
    report(
        "temporal Conv2d (3,1) on (B,C,T,H*W) view",
        lambda: conv2d(x.permute(0, 2, 3, 1).reshape(b, t, h * w, c).permute(0, 3, 1, 2)),
        args.repeats,
    )

    weight, bias = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
    report("GroupNorm(32) channels-last", lambda: F.group_norm(x, 32, weight, bias), args.repeats)
    report(
        "LayerNorm over channels, channels-last",
        lambda: F.layer_norm(x.permute(0, 2, 3, 1), (c,), weight, bias).permute(0, 3, 1, 2),
        args.repeats,
    )


if __name__ == "__main__":
    main()
