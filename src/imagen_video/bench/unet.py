"""Benchmark harness of the video U-Net: train step, guided sampling step, peak memory, forward FLOPs.

Each measurement runs in a fresh child process (``python -m imagen_video.bench.unet SPEC_JSON
MODE``) so that its peak RSS (``ru_maxrss``) covers only that work: importing torch, building the
model and running it. The parent collects one JSON dict. The workload and the reported keys follow
the peer scripts in benchmarks/peers/ (train step = forward + backward + AdamW step, median of
``repeats`` after ``warmup``; guided sampling step = one batched conditional + unconditional forward).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagen_video.bench.timing import median_time
from imagen_video.serialization import JsonConfig

MODES = ("train", "guided", "all")
"""Child measurements: train steps, guided sampling steps (+ FLOPs), or both in one process (like the
peer scripts, which train and then sample in one process)."""

CLOCKS = ("wall", "cpu")
"""Timers: wall-clock time or the process's CPU time."""

VARIANTS = ("base", "ssr", "tsr")
"""Benchmark variants: base (temporal attention at the attention levels, :func:`base_temporal`);
ssr / tsr (conditioning video + aug log-SNR, temporal convolution at every level)."""


@dataclass(frozen=True)
class UNetBenchSpec(JsonConfig):
    """One benchmark workload (defaults: the peers' reference workload, CPU fp32)."""

    variant: str = "base"
    channels: tuple[int, ...] = (64, 128, 256)
    res_blocks: int = 2
    attn_levels: tuple[int, ...] = (1, 2)
    frames: int = 16
    height: int = 24
    width: int = 40
    batch: int = 2
    text_dim: int = 768
    text_tokens: int = 16
    head_dim: int = 64
    norm_groups: int = 32
    repeats: int = 3
    warmup: int = 1
    device: str = "cpu"
    norm: str = "layer"
    skip: str = "add"
    channels_last: bool = True
    gradient_checkpointing: bool = False
    compile: bool = False
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    clock: str = "wall"
    """"wall" (perf_counter, what a user waits) or "cpu" (process CPU time: with threads=1 this is the
    work itself, robust to other processes sharing the machine)."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        positive = ("res_blocks", "frames", "height", "width", "batch", "text_dim", "text_tokens", "repeats")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.threads < 0:
            raise ValueError(f"warmup and threads must be >= 0, got {self.warmup}, {self.threads}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {self.clock!r}")
        if self.clock == "cpu" and self.device != "cpu":
            raise ValueError(f"clock 'cpu' needs device 'cpu', got {self.device!r}")

    def unet_config(self) -> Any:
        """The :class:`UNetConfig` of this workload (SR variants: 3 conditioning channels, temporal conv)."""
        from imagen_video.models.config import TextConfig, base_temporal, unet_config

        sr = self.variant != "base"
        return unet_config(
            self.channels,
            res_blocks=self.res_blocks,
            attn_levels=self.attn_levels,
            temporal="conv" if sr else base_temporal(len(self.channels), self.attn_levels),
            cond_channels=3 if sr else 0,
            text=TextConfig(dim=self.text_dim),
            norm=self.norm,
            skip=self.skip,
            head_dim=self.head_dim,
            norm_groups=self.norm_groups,
            channels_last=self.channels_last,
            gradient_checkpointing=self.gradient_checkpointing,
        )


def run_unet_benchmark(spec: UNetBenchSpec) -> dict[str, Any]:
    """Measure ``spec`` in two fresh child processes (train, guided sampling) and merge their results.

    Returns params, train_step_s, guided_sample_step_s, fwd_gflop, peak_rss_mb (the larger of the two
    children's peaks) and the children's separate peaks, plus the workload.
    """
    train = run_child(spec, "train")
    guided = run_child(spec, "guided")
    return {
        "params": train["params"],
        "train_step_s": train["train_step_s"],
        "guided_sample_step_s": guided["guided_sample_step_s"],
        "fwd_gflop": guided["fwd_gflop"],
        "peak_rss_mb": max(train["peak_rss_mb"], guided["peak_rss_mb"]),
        "train_peak_rss_mb": train["peak_rss_mb"],
        "guided_peak_rss_mb": guided["peak_rss_mb"],
        "import_rss_mb": train["import_rss_mb"],
        **(
            {"peak_gpu_mb": max(train["peak_gpu_mb"], guided["peak_gpu_mb"])}
            if "peak_gpu_mb" in train
            else {}
        ),
        "device": train["device"],
        "threads": train["threads"],
        "optimizer": train["optimizer"],
        "clock": train["clock"],
        "spec": spec.to_dict(),
    }


def run_child(spec: UNetBenchSpec, mode: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and parse its last stdout line as JSON."""
    cmd = [sys.executable, "-m", "imagen_video.bench.unet", spec.to_json(indent=None), mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"benchmark child ({mode}) failed with exit code {proc.returncode}: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(spec: UNetBenchSpec, mode: str) -> dict[str, Any]:
    """Measure in this process: ``mode`` "train" (AdamW steps), "guided" (guided forward + FLOPs) or "all"."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    import_rss = _peak_rss_mb()
    device = torch.device(spec.device)
    inputs = _inputs(spec, device)
    from imagen_video.models.unet import VideoUNet

    net = VideoUNet(spec.unet_config(), generator=torch.Generator().manual_seed(0)).to(device)
    model: Callable[..., Any] = torch.compile(net) if spec.compile else net
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    result: dict[str, Any] = {
        "params": net.num_parameters(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "import_rss_mb": import_rss,
        "optimizer": "AdamW",
        "clock": spec.clock,
    }
    if mode in ("train", "all"):
        # torch's default AdamW implementation: the fused CPU kernel measured 50x slower with 2 threads
        # on a shared machine (docs/performance.md).
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step() -> None:
            with autocast:
                loss = (model(*inputs["args"], **inputs["kwargs"]).float() - inputs["target"]).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        result["train_step_s"] = median_time(
            step, repeats=spec.repeats, warmup=spec.warmup, device=device, clock=_clock(spec)
        )
    if mode in ("guided", "all"):
        net.eval()
        guided = _guided_inputs(inputs)

        def sample_step() -> None:
            with torch.inference_mode(), autocast:
                model(*guided["args"], **guided["kwargs"])

        result["guided_sample_step_s"] = median_time(
            sample_step, repeats=spec.repeats, warmup=spec.warmup, device=device, clock=_clock(spec)
        )
        result["fwd_gflop"] = _forward_gflop(net, inputs, autocast)
    result["peak_rss_mb"] = _peak_rss_mb()
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _inputs(spec: UNetBenchSpec, device: Any) -> dict[str, Any]:
    """Random inputs of the workload (seeded generator): positional args, keyword args, target."""
    import torch

    g = torch.Generator().manual_seed(1)
    b, shape = spec.batch, (spec.batch, 3, spec.frames, spec.height, spec.width)

    def randn(*size: int) -> Any:
        return torch.randn(*size, generator=g).to(device)

    args = (
        randn(*shape),
        randn(b) * 5,
        randn(b, spec.text_tokens, spec.text_dim),
        torch.ones(b, spec.text_tokens, dtype=torch.bool, device=device),
    )
    kwargs: dict[str, Any] = {}
    if spec.variant != "base":
        kwargs = {"cond_video": randn(*shape), "aug_logsnr": randn(b)}
    return {"args": args, "kwargs": kwargs, "target": randn(*shape)}


def _guided_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Classifier-free guidance batch: the conditional and the unconditional (null-text) halves at once."""
    import torch

    args = tuple(torch.cat([a, a]) for a in inputs["args"])
    b = inputs["args"][0].shape[0]
    drop = torch.arange(2 * b, device=args[0].device) >= b
    kwargs = {k: torch.cat([v, v]) for k, v in inputs["kwargs"].items()}
    return {"args": args, "kwargs": {**kwargs, "drop_text": drop}}



def _forward_gflop(net: Any, inputs: dict[str, Any], autocast: Any) -> float:
    """GFLOP of one forward at the workload's batch, counted by torch.utils.flop_counter.

    The CPU fused attention kernel has no formula in torch's registry; it is counted like the CUDA ones.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(q, k, v)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with torch.inference_mode(), autocast, counter:
        net(*inputs["args"], **inputs["kwargs"])
    return counter.get_total_flops() / 1e9


def _clock(spec: UNetBenchSpec) -> Callable[[], float]:
    """The clock of ``spec.clock``: process CPU time ("cpu") or wall time."""
    return time.process_time if spec.clock == "cpu" else time.perf_counter


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _main(argv: list[str]) -> int:
    """Child-process entry: ``python -m imagen_video.bench.unet SPEC_JSON MODE`` prints one JSON line."""
    spec = UNetBenchSpec.from_json(argv[0])
    print(json.dumps(measure(spec, argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
