"""``load_text_encoder``: one entry point for every frozen text encoder (paper sec. 2.2).

Names: ``"embedded"`` (offline MiniLM default of the demo cascade), ``"t5:<hub-name-or-dir>"``
(the paper's T5, e.g. ``"t5:google/t5-v1_1-xxl"``), or a plain local directory holding a T5 model.
Nothing is loaded until this function is called.
"""

from __future__ import annotations

from pathlib import Path

import torch

from imagen_video.text.base import TextEncoder
from imagen_video.text.embedded import load_embedded_encoder
from imagen_video.text.t5 import is_t5_directory, load_t5_encoder

ENCODER_NAMES = "'embedded', 't5:<hub-name-or-local-dir>' or a local T5 model directory"


def load_text_encoder(
    name: str,
    *,
    max_length: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
) -> TextEncoder:
    """Load the frozen text encoder ``name`` (paper sec. 2.2).

    ``max_length`` is the fixed token length L (default 64 for both kinds); ``device`` where the
    network runs and outputs live; ``dtype`` the compute dtype: None/float32, or bfloat16 on GPUs.
    Raises ValueError for an unknown name and TextEncoderUnavailable when weights cannot be found.
    """
    if not isinstance(name, str):
        raise TypeError(f"text encoder name must be a str ({ENCODER_NAMES}), got {name!r}")
    options = {"max_length": max_length, "device": device, "dtype": dtype}
    if name == "embedded":
        return load_embedded_encoder(**options)
    if name.startswith("t5:"):
        source = name[len("t5:") :]
        if not source:
            raise ValueError(f"text encoder {name!r} names no model; expected 't5:<hub-name-or-local-dir>'")
        return load_t5_encoder(source, **options)
    path = Path(name).expanduser()
    if path.is_dir():
        if is_t5_directory(path):
            return load_t5_encoder(str(path), **options)
        raise ValueError(
            f"directory {name!r} is not a T5 model (its config.json must say model_type 't5'); "
            f"allowed encoders: {ENCODER_NAMES}"
        )
    raise ValueError(f"unknown text encoder {name!r} (not a directory either); allowed: {ENCODER_NAMES}")
