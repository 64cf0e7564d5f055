"""``imagen-video bench stage``: one cascade stage at its published shape, measured (paper sec. 2.2).

A train step is forward + v-prediction loss (sec. 2.4) + backward + gradient clipping + optimizer step
at the stage's output shape (T, H, W); a sample step is one call of the stage's own denoiser
(:func:`imagen_video.cascade.sampling.make_stage_denoiser`: frame windows, spatial tiles, classifier-free
guidance as one batched cond + uncond forward, sec. 2.6.1, and thresholding), timed once guided and
once as a distilled student's single forward (sec. 2.7). On CUDA the network runs in bf16 (autocast, or
FSDP2's mixed precision). FLOPs come from ``torch.utils.flop_counter`` on a meta-device copy of the
network (forward and backward, or the forwards of every tile), so they cost nothing to count;
:mod:`imagen_video.bench.memory` predicts the memory, printed beside the measured peak.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
from collections.abc import Callable
from typing import Any

import torch

from imagen_video.bench import memory as mem
from imagen_video.bench.devices import device_name, mfu, peak_bf16_tflops
from imagen_video.bench.timing import median_time
from imagen_video.cascade.config import StageConfig
from imagen_video.models.config import LevelConfig, UNetConfig
from imagen_video.serialization import JsonConfig
from imagen_video.train.fsdp import OPTIMIZERS, optimizer_state_bytes_per_param

MODES = ("train", "sample")
CAPACITY_GIB = 80
"""Device memory the predictions plan for (an 80 GB H100 or A100)."""


@dataclasses.dataclass(frozen=True)
class StageBenchSpec(JsonConfig):
    """One stage measurement (defaults: the paper base, one train step of batch 1 on the CPU)."""

    preset: str = "paper"
    stage: str = "base"
    mode: str = "train"
    batch: int = 1
    device: str = "cpu"
    width_scale: float = 1.0
    """Multiplies every channel count of the stage's U-Net (1.0: the preset); see :func:`scale_unet`."""
    fsdp: bool = False
    checkpointing: bool = False
    compile: bool = False
    cpu_offload: bool = False
    optimizer: str = "adamw"
    tile: tuple[int, int] | None = None
    """Sampling: spatial tiles (h, w) of the stage's denoiser (None: the stage's ``sample_tile``)."""
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    predict_only: bool = False
    """Run no step: report params, FLOPs and the memory model (for a CUDA device, bf16) only."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.batch < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"batch, repeats >= 1 and warmup >= 0, got {self.batch}, {self.repeats}, {self.warmup}"
            )
        if not 0.0 < self.width_scale <= 1.0:
            raise ValueError(f"width_scale must be in (0, 1], got {self.width_scale}")
        if self.cpu_offload and not self.fsdp:
            raise ValueError("cpu_offload needs fsdp (FSDP2's CPUOffloadPolicy)")
        if self.mode == "sample" and (self.fsdp or self.optimizer != "adamw" or self.checkpointing):
            raise ValueError("fsdp, cpu_offload, checkpointing and optimizer apply to mode 'train' only")
        if self.cpu_offload and torch.device(self.device).type != "cuda" and not self.predict_only:
            raise ValueError("cpu_offload moves device memory to the host: it needs a cuda device")

    def stage_config(self) -> StageConfig:
        """The preset's stage with the scaled U-Net, checkpointing and the sampling tile applied."""
        from imagen_video.cascade.presets import get_cascade_preset

        stage = get_cascade_preset(self.preset).stage(self.stage)
        unet = scale_unet(stage.unet, self.width_scale).replace(gradient_checkpointing=self.checkpointing)
        tile = self.tile if self.tile is not None else stage.sample_tile
        return stage.replace(unet=unet, sample_tile=tile)


def scale_unet(config: UNetConfig, factor: float) -> UNetConfig:
    """``config`` with every channel count times ``factor`` (1.0: unchanged).

    Attention heads keep their count where possible: head_dim becomes ``max(8, 64 * factor)`` rounded
    to a multiple of 8, every level's width a positive multiple of it, and GroupNorm groups divide it.
    The text width (the frozen encoder's) is not a channel count of the U-Net and stays.
    """
    if factor == 1.0:
        return config
    head = max(8, round(config.head_dim * factor / 8) * 8)
    levels = tuple(
        LevelConfig(
            max(head, round(level.channels * factor / head) * head),
            level.res_blocks,
            spatial_attention=level.spatial_attention,
            cross_attention=level.cross_attention,
            temporal=level.temporal,
        )
        for level in config.levels
    )
    return config.replace(levels=levels, head_dim=head, norm_groups=math.gcd(config.norm_groups, head))


def _rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024



def _count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn`` by ``torch.utils.flop_counter`` (matmuls, convolutions, attention), attention
    through the fused kernel's op (:func:`imagen_video.bench.memory.fused_attention`), counted with
    torch's own SDPA formulas (its registry has none for that op)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def forward(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(
        grad: Any, query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kw: Any
    ) -> int:
        return sdpa_backward_flop_count(grad, query, key, value)

    ops = torch.ops.aten
    mapping = {
        ops._scaled_dot_product_flash_attention_for_cpu: forward,
        ops._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter, mem.fused_attention():
        fn()
    return int(counter.get_total_flops())


def train_flops(unet: UNetConfig, shape: tuple[int, int, int], batch: int, text_tokens: int) -> int:
    """Forward + backward FLOPs of one train step at ``batch`` and ``shape`` (meta device)."""
    net = mem.meta_network(unet, torch.float32)
    args, kwargs = mem.meta_inputs(unet, batch, shape, text_tokens, torch.float32)
    return _count_flops(lambda: net(*args, **kwargs).square().mean().backward())


def forward_flops(unet: UNetConfig, shape: tuple[int, int, int], batch: int, text_tokens: int) -> int:
    """FLOPs of one forward at ``batch`` and ``shape`` (meta device, no grad)."""
    net = mem.meta_network(unet, torch.float32)
    args, kwargs = mem.meta_inputs(unet, batch, shape, text_tokens, torch.float32)
    with torch.no_grad():
        return _count_flops(lambda: net(*args, **kwargs))


def step_shape(stage: StageConfig, mode: str) -> tuple[int, int, int]:
    """(T, H, W) of one step: the output shape, or for training a stage's ``train_crop`` when it has
    one (the fully convolutional top stage trains on crops, paper sec. 2.3)."""
    if mode == "train" and stage.train_crop is not None:
        return (stage.frames, *stage.train_crop)
    return (stage.frames, stage.height, stage.width)


def sample_regions(stage: StageConfig) -> tuple[int, tuple[int, int, int]]:
    """(number of network regions per denoiser call, region shape (T, h, w)): spatial tiles x one
    frame window (the bench samples exactly the stage's frame count)."""
    from imagen_video.cascade.sampling import spatial_tiles

    tiles = spatial_tiles(stage.height, stage.width, stage.sample_tile)
    rows, cols = tiles[0]
    return len(tiles), (stage.frames, rows.stop - rows.start, cols.stop - cols.start)


def _is_guided(stage: StageConfig) -> bool:
    """True when the stage's first sampler step runs the batched cond + uncond forward."""
    from imagen_video.diffusion.guidance import GuidanceSchedule

    return GuidanceSchedule(stage.guidance).weight(0) != 0.0


def _text(batch: int, length: int, dim: int, device: torch.device, generator: torch.Generator) -> Any:
    """Random T5-like token embeddings (B, L, D) and an all-True mask."""
    tokens = torch.randn(batch, length, dim, generator=generator).to(device)
    return tokens, torch.ones(batch, length, dtype=torch.bool, device=device)


def _build(stage: StageConfig, device: torch.device, seed: int) -> torch.nn.Module:
    """The stage's U-Net, initialised directly on ``device`` (a 5.6B network is slow to build on a CPU);
    the seed generator lives on that device, where the constructor draws from it."""
    from imagen_video.models.unet import VideoUNet

    with torch.device(device):
        return VideoUNet(stage.unet, generator=torch.Generator(device).manual_seed(seed))


def measure_train(
    spec: StageBenchSpec, stage: StageConfig, device: torch.device, text_tokens: int
) -> dict[str, Any]:
    """Time train steps of ``spec`` (see the module docstring); returns step_s and the loss of every
    step run, warm-up included (the same draws with and without ``compile``)."""
    from imagen_video.diffusion import diffusion_loss
    from imagen_video.train.fsdp import make_optimizer, shard_unet, single_process_group

    cuda = device.type == "cuda"
    gen = torch.Generator().manual_seed(spec.seed)
    shape = (spec.batch, 3, *step_shape(stage, spec.mode))
    x = torch.randn(shape, generator=gen).clamp(-1, 1).to(device)
    tokens, mask = _text(spec.batch, text_tokens, stage.unet.text.dim, device, gen)
    extra: dict[str, Any] = {}
    if stage.unet.is_super_resolution:
        extra = {
            "cond_video": torch.randn(shape, generator=gen).to(device),
            "aug_logsnr": torch.zeros(spec.batch, device=device),
        }
    noise_gen = torch.Generator(device).manual_seed(spec.seed)
    group = single_process_group(device) if spec.fsdp else contextlib.nullcontext()
    with group:
        model = _build(stage, device, spec.seed)
        if spec.fsdp:
            shard_unet(model, mixed_precision=cuda, cpu_offload=spec.cpu_offload)
        net = torch.compile(model) if spec.compile else model
        optimizer = make_optimizer(model.parameters(), spec.optimizer)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and not spec.fsdp)

        def predict(z_t: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
            with amp:
                return net(z_t, logsnr, tokens, mask, **extra).float()

        losses: list[torch.Tensor] = []

        def step() -> None:
            loss = diffusion_loss(predict, x, stage.diffusion, generator=noise_gen).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.detach())  # read after timing: no device sync inside a timed step

        model.train()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        step_s = median_time(step, repeats=spec.repeats, warmup=spec.warmup, device=device)
        return {"step_s": step_s, "losses": [float(loss) for loss in losses]}


def measure_sample(
    spec: StageBenchSpec, stage: StageConfig, device: torch.device, text_tokens: int
) -> dict[str, Any]:
    """Time one guided denoiser call and one single-forward (distilled-student) call of the stage."""
    from imagen_video.cascade.sampling import TextCondition, make_stage_denoiser
    from imagen_video.diffusion.config import no_guidance

    cuda = device.type == "cuda"
    gen = torch.Generator().manual_seed(spec.seed)
    shape = (spec.batch, 3, stage.frames, stage.height, stage.width)
    z = torch.randn(shape, generator=gen).to(device)
    tokens, mask = _text(spec.batch, text_tokens, stage.unet.text.dim, device, gen)
    text = TextCondition(tokens, mask, torch.zeros(spec.batch, dtype=torch.bool, device=device))
    cond = aug = None
    if stage.unet.is_super_resolution:
        cond = torch.randn(shape, generator=gen).clamp(-1, 1).to(device)
        aug = torch.full((spec.batch,), stage.aug_logsnr, device=device)
    model = _build(stage, device, spec.seed).eval()
    net = torch.compile(model) if spec.compile else model
    dtype = torch.bfloat16 if cuda else None
    logsnr = torch.zeros(spec.batch, device=device)
    result = {}
    for key, variant in (("step_s", stage), ("single_step_s", stage.replace(guidance=no_guidance()))):
        denoise = make_stage_denoiser(net, variant, text, cond, aug, autocast_dtype=dtype)

        def step(denoise: Any = denoise) -> None:
            with torch.inference_mode():
                denoise(z, logsnr, 0)

        if cuda and key == "step_s":
            torch.cuda.reset_peak_memory_stats(device)
        result[key] = median_time(step, repeats=spec.repeats, warmup=spec.warmup, device=device)
        if cuda and key == "step_s":
            result["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / mem.GIB
    return result


def predict_memory(
    spec: StageBenchSpec, stage: StageConfig, params: int, text_tokens: int, precision: str
) -> tuple[mem.MemoryEstimate, int | None]:
    """The memory model's per-device prediction for ``spec`` in ``precision`` ("bf16" or "fp32"), and
    (train) the fewest devices of 80 GiB that FSDP needs for it at this per-device batch (None for
    sampling, or if 64 do not suffice)."""
    shape = step_shape(stage, spec.mode)
    if spec.mode == "sample":
        _, region = sample_regions(stage)
        batch = 2 * spec.batch if _is_guided(stage) else spec.batch
        peak = mem.sampling_activation_bytes(
            stage.unet, region, batch=batch, text_tokens=text_tokens, precision=precision
        )
        video = spec.batch * 3 * math.prod(shape) * 4
        return mem.sample_memory(params, peak, io_bytes=6 * video), None
    profile = mem.activation_profile(stage.unet, shape, text_tokens=text_tokens, precision=precision)
    blocks = sorted(mem.block_parameters(stage.unet), reverse=True)

    def estimate(gpus: int, fsdp: bool) -> mem.MemoryEstimate:
        return mem.train_memory(
            params,
            profile.per_sample(spec.checkpointing),
            batch=spec.batch,
            gpus=gpus,
            optimizer_bytes_per_param=optimizer_state_bytes_per_param(spec.optimizer),
            precision=precision,
            fsdp=fsdp,
            cpu_offload=spec.cpu_offload,
            largest_blocks_params=sum(blocks[:2]),
        )

    needed = mem.devices_needed(lambda n: estimate(n, True), CAPACITY_GIB * mem.GIB)
    return estimate(1, spec.fsdp), needed


def max_batch(estimate: mem.MemoryEstimate, batch: int, capacity_bytes: int) -> int:
    """Largest per-device batch whose predicted training memory fits ``capacity_bytes``, from the
    estimate at ``batch`` (activations are linear in the batch, the rest does not depend on it)."""
    per_sample = estimate.activations_bytes // batch
    fixed = estimate.total_bytes - estimate.activations_bytes
    return max(0, (capacity_bytes - fixed) // per_sample) if per_sample else 0


def run_stage_bench(spec: StageBenchSpec) -> dict[str, Any]:
    """Measure ``spec`` in this process; the dict of the command's JSON line (module docstring).

    With ``spec.predict_only`` no step runs: params, FLOPs and the memory model's prediction for a CUDA
    device (bf16), with the timing fields None.
    """
    from imagen_video.cascade.presets import get_cascade_preset

    device = torch.device(spec.device)
    rss_before = _rss_mb()
    stage = spec.stage_config()
    text_tokens = get_cascade_preset(spec.preset).text_max_length
    shape = step_shape(stage, spec.mode)
    params = mem.meta_network(stage.unet, torch.float32).num_parameters()
    if spec.mode == "train":
        flops = train_flops(stage.unet, shape, spec.batch, text_tokens)
    else:
        regions, region = sample_regions(stage)
        guided = 2 * spec.batch if _is_guided(stage) else spec.batch
        flops = regions * forward_flops(stage.unet, region, guided, text_tokens)
    measured: dict[str, Any] = {"step_s": None}
    if not spec.predict_only:
        measure = measure_train if spec.mode == "train" else measure_sample
        measured = measure(spec, stage, device, text_tokens)
    cuda = device.type == "cuda" or spec.predict_only
    estimate, needed = predict_memory(spec, stage, params, text_tokens, "bf16" if cuda else "fp32")
    name = device_name(device)
    peak = peak_bf16_tflops(name) if device.type == "cuda" else None
    step_s = measured["step_s"]
    result: dict[str, Any] = {
        "preset": spec.preset,
        "stage": spec.stage,
        "mode": spec.mode,
        "shape": list(shape),
        "batch": spec.batch,
        "params": params,
        "step_s": step_s,
        "samples_per_s": None if step_s is None else spec.batch / step_s,
        "flops_per_step": flops,
        "achieved_tflops": None if step_s is None else flops / step_s / 1e12,
        "mfu": None if step_s is None else mfu(flops, step_s, peak),
        "device": name,
        "peak_bf16_tflops": peak,
        **{k: v for k, v in measured.items() if k != "step_s"},
    }
    if device.type == "cuda" and not spec.predict_only and "peak_gpu_gib" not in result:
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / mem.GIB
    result["peak_rss_mb"] = _rss_mb()
    result["rss_before_mb"] = rss_before
    result["predicted"] = estimate.to_dict()
    if needed is not None:
        result["predicted_fsdp_gpus_80gib"] = needed
        result["predicted_max_batch_80gib"] = max_batch(estimate, spec.batch, CAPACITY_GIB * mem.GIB)
    result["settings"] = spec.to_dict()
    return result
