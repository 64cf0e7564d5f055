"""Dense bf16 peak throughput of known accelerators, for model FLOP utilisation (MFU).

MFU = achieved FLOP/s / the device's dense (no structured sparsity) bf16 tensor-core peak, from the
vendors' data sheets. Devices not in the table (and CPUs) have no peak: their MFU is ``None``.
"""

from __future__ import annotations

import torch

PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("A100", 312.0),  # SXM and PCIe alike
)
"""(substring of ``torch.cuda.get_device_name``, dense bf16 TFLOP/s); the first match wins, so the
specific names come before the generic ones."""


def peak_bf16_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of the device named ``device_name``; None when it is not in the table."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def device_name(device: torch.device) -> str:
    """The accelerator's marketing name (``torch.cuda.get_device_name``), or "cpu"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def mfu(flops: float, seconds: float, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation of ``flops`` done in ``seconds`` on a device of ``peak_tflops``."""
    if peak_tflops is None or seconds <= 0:
        return None
    return flops / seconds / (peak_tflops * 1e12)
