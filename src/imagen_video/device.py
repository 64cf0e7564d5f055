"""``device="auto"``: the best accelerator this machine has (CUDA, then Apple MPS, then the CPU).

The choice is printed once per process (on stderr), so a user sees where the networks run without a
line per call.
"""

from __future__ import annotations

import sys

import torch

AUTO = "auto"
_announced: set[str] = set()


def auto_device() -> torch.device:
    """CUDA when available, else MPS when available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) to :func:`auto_device`, announced once on stderr; anything else to
    ``torch.device(device)`` unchanged."""
    if device is not None and str(device) != AUTO:
        return torch.device(device)
    chosen = auto_device()
    if str(chosen) not in _announced:
        _announced.add(str(chosen))
        note = "device='auto': CUDA, then MPS, then CPU"
        print(f"imagen-video: using device {chosen} ({note})", file=sys.stderr)
    return chosen
