"""The memory model: closed forms of the per-device budget and the meta-device activation profile."""

from __future__ import annotations

import pytest
import torch

from imagen_video.bench import memory as mem
from imagen_video.models import VideoUNet
from imagen_video.models.presets import tiny_unet


def test_replicated_fp32_training_is_sixteen_bytes_per_parameter_plus_activations() -> None:
    est = mem.train_memory(1000, 100, batch=3)
    assert (est.params_bytes, est.grads_bytes, est.optimizer_bytes) == (4000, 4000, 8000)
    assert (est.working_params_bytes, est.activations_bytes, est.host_bytes) == (0, 300, 0)
    assert est.total_bytes == 16_300


def test_bf16_autocast_without_fsdp_caches_a_bf16_weight_copy() -> None:
    assert mem.train_memory(1000, 0, batch=1, precision="bf16").working_params_bytes == 2000


def test_fsdp_divides_the_state_and_holds_the_unsharded_blocks() -> None:
    est = mem.train_memory(1000, 10, batch=2, gpus=4, fsdp=True, precision="bf16", largest_blocks_params=300)
    assert (est.params_bytes, est.grads_bytes, est.optimizer_bytes) == (1000, 1000, 2000)
    assert est.working_params_bytes == 600 and est.activations_bytes == 20
    eight_bit = mem.train_memory(1024, 0, batch=1, gpus=2, fsdp=True, optimizer_bytes_per_param=2.03125)
    assert eight_bit.optimizer_bytes == 1040  # ceil(1024 * 2.03125 / 2)


def test_cpu_offload_moves_the_sharded_state_to_the_host() -> None:
    est = mem.train_memory(1000, 10, batch=1, gpus=2, fsdp=True, cpu_offload=True, largest_blocks_params=50)
    assert est.host_bytes == 8000 and est.params_bytes == est.grads_bytes == est.optimizer_bytes == 0
    assert est.total_bytes == 50 * 4 + 10
    with pytest.raises(ValueError, match="cpu_offload needs fsdp"):
        mem.train_memory(1000, 10, batch=1, cpu_offload=True)


def test_devices_needed_is_the_smallest_power_of_two_that_fits() -> None:
    def estimate(n: int) -> mem.MemoryEstimate:
        return mem.train_memory(1000, 0, batch=1, gpus=n, fsdp=True)

    assert mem.devices_needed(estimate, 16_000) == 1
    assert mem.devices_needed(estimate, 4_000) == 4  # 16000 / 4
    assert mem.devices_needed(estimate, 100, max_devices=8) is None


def test_checkpointing_keeps_block_inputs_and_one_block() -> None:
    profile = mem.ActivationProfile(saved_bytes=100, block_saved_bytes=(30, 20), block_input_bytes=(5, 6))
    assert profile.per_sample(False) == 100
    assert profile.per_sample(True) == 50 + 11 + 30


def test_to_dict_reports_gib() -> None:
    est = mem.MemoryEstimate(mem.GIB, 0, 2 * mem.GIB, 0, mem.GIB // 2)
    assert est.to_dict()["total_gib"] == 3.5 and est.to_dict()["params_gib"] == 1.0


def _real_saved_bytes(config, shape: tuple[int, int, int], tokens: int) -> int:
    """Saved activations of a real CPU forward, deduplicated by storage, parameters excluded."""
    net = VideoUNet(config, generator=torch.Generator().manual_seed(0)).train()
    args, kwargs = mem.meta_inputs(config, 1, shape, tokens, torch.float32)
    args = tuple(torch.ones(a.shape, dtype=a.dtype) for a in args)
    kwargs = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in kwargs.items()}
    seen = {p.untyped_storage().data_ptr() for p in net.parameters()}
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(*args, **kwargs)
    del out
    return total[0]


@pytest.mark.parametrize("variant", ["base", "ssr"])
def test_meta_profile_equals_a_real_forward(variant: str) -> None:
    config = tiny_unet(variant)
    profile = mem.activation_profile(config, (4, 16, 16), text_tokens=5)
    assert profile.saved_bytes == _real_saved_bytes(config, (4, 16, 16), 5)
    blocks = sum(len(level) for level in (*VideoUNet(config).down, *VideoUNet(config).up)) + 2
    assert len(profile.block_saved_bytes) == len(profile.block_input_bytes) == blocks
    assert sum(profile.block_saved_bytes) < profile.saved_bytes
    assert profile.per_sample(True) < profile.per_sample(False)


def test_profile_scales_with_the_frames_and_halves_in_bf16() -> None:
    config = tiny_unet("ssr")
    four = mem.activation_profile(config, (4, 16, 16), text_tokens=5).saved_bytes
    eight = mem.activation_profile(config, (8, 16, 16), text_tokens=5).saved_bytes
    assert 1.9 < eight / four <= 2.0  # per-frame activations double; text and embeddings do not
    half = mem.activation_profile(config, (8, 16, 16), text_tokens=5, precision="bf16").saved_bytes
    assert 0.45 < half / eight < 0.55


def test_sampling_peak_grows_with_the_batch() -> None:
    config = tiny_unet("base")
    one = mem.sampling_activation_bytes(config, (4, 16, 16), batch=1, text_tokens=5)
    two = mem.sampling_activation_bytes(config, (4, 16, 16), batch=2, text_tokens=5)
    assert one > 0 and 1.8 < two / one <= 2.0
