"""Option types and parsers shared by the commands (``generate``, ``upsample``, ``train``, ...).

Everything here validates user input without loading a network, so a command can reject a bad
argument before the (slow) model load; errors are ValueError (or argparse's ArgumentTypeError for a
``type=``) with one line naming the bad value and what is allowed. Guidance weights use the paper's
eq. 5 convention (w = 0: no guidance).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from imagen_video.cascade.config import CascadeConfig
from imagen_video.cascade.directory import CascadeManifest
from imagen_video.cascade.sampling import StageOverride
from imagen_video.diffusion.config import (
    SAMPLER_NAMES,
    START_FROM,
    GuidanceConfig,
    constant_guidance,
    oscillating_guidance,
)
from imagen_video.text.cache import CachedTextEncoder, EmbeddingCache

GUIDANCE_SYNTAX = "W, STAGE=W, oscillate:HIGH,LOW[,K] or STAGE=oscillate:HIGH,LOW[,K]"


def _split_stage(spec: str, scope: Sequence[str], option: str) -> tuple[list[str], str]:
    """``"STAGE=VALUE"`` -> ([STAGE], VALUE); a bare ``"VALUE"`` applies to every stage in ``scope``."""
    if "=" not in spec:
        return list(scope), spec
    stage, value = spec.split("=", 1)
    if stage not in scope:
        raise ValueError(f"{option} {spec!r}: unknown stage {stage!r}; stages: {', '.join(scope)}")
    return [stage], value


def parse_guidance(value: str) -> GuidanceConfig:
    """``"W"`` -> constant w; ``"oscillate:HIGH,LOW[,K]"`` -> w_high for K steps (default 0), then
    alternating LOW, HIGH, ... (paper sec. 2.6.2); eq. 5 convention."""
    try:
        if value.startswith("oscillate:"):
            parts = value[len("oscillate:") :].split(",")
            if len(parts) not in (2, 3):
                raise ValueError("expected 2 or 3 numbers")
            steps = int(parts[2]) if len(parts) == 3 else 0
            return oscillating_guidance(float(parts[0]), float(parts[1]), steps)
        return constant_guidance(float(value))
    except ValueError as err:
        raise ValueError(f"--guidance {value!r} is invalid ({err}); use {GUIDANCE_SYNTAX}") from None


def parse_overrides(
    config: CascadeConfig,
    *,
    steps: Sequence[str] = (),
    samplers: Sequence[str] = (),
    guidance: Sequence[str] = (),
    tiles: Sequence[str] = (),
    starts: Sequence[str] = (),
    start_from: Sequence[str] = (),
    stages: Sequence[str] | None = None,
) -> dict[str, StageOverride]:
    """Per-stage :class:`StageOverride` from ``--steps STAGE=N``, ``--sampler STAGE=NAME``,
    ``--guidance``, ``--tile STAGE=HxW``, ``--t-start STAGE=T`` and ``--start-from STAGE=FRAMES``
    values. ``stages``: the stages being run (default: all); a value without ``STAGE=`` applies to
    each of them; later values win."""
    scope = list(stages) if stages is not None else list(config.stage_names)
    changes: dict[str, dict[str, object]] = {}
    for spec in steps:
        names, value = _split_stage(spec, scope, "--steps")
        if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
            raise ValueError(f"--steps {spec!r}: the step count must be an integer >= 1")
        for name in names:
            changes.setdefault(name, {})["steps"] = int(value)
    for spec in samplers:
        names, value = _split_stage(spec, scope, "--sampler")
        if value not in SAMPLER_NAMES:
            allowed = ", ".join(SAMPLER_NAMES)
            raise ValueError(f"--sampler {spec!r}: unknown sampler {value!r}; allowed: {allowed}")
        for name in names:
            changes.setdefault(name, {})["sampler"] = value
    for spec in guidance:
        names, value = _split_stage(spec, scope, "--guidance")
        parsed = parse_guidance(value)
        for name in names:
            changes.setdefault(name, {})["guidance"] = parsed
    for spec in tiles:
        names, value = _split_stage(spec, scope, "--tile")
        match = re.fullmatch(r"([0-9]+)x([0-9]+)", value)
        if match is None or min(int(match[1]), int(match[2])) < 1:
            raise ValueError(f"--tile {spec!r}: expected HxW with positive integers, e.g. 24x40")
        for name in names:
            changes.setdefault(name, {})["tile"] = (int(match[1]), int(match[2]))
    for spec in starts:
        names, value = _split_stage(spec, scope, "--t-start")
        try:
            start = float(value)
        except ValueError:
            start = float("nan")
        if not 0.0 < start <= 1.0:
            raise ValueError(f"--t-start {spec!r}: expected a time in (0, 1], e.g. ssr1=0.4")
        for name in names:
            changes.setdefault(name, {})["t_start"] = start
    for spec in start_from:
        names, value = _split_stage(spec, scope, "--start-from")
        if value not in START_FROM:
            raise ValueError(f"--start-from {spec!r}: expected one of {', '.join(START_FROM)}")
        for name in names:
            changes.setdefault(name, {})["start_from"] = value
    overrides = {name: StageOverride(**fields) for name, fields in changes.items()}  # type: ignore[arg-type]
    for name, override in overrides.items():
        override.apply(config.stage(name))  # a tile that does not fit the stage fails here, by name
    return overrides


def open_text_cache(
    directory: str | os.PathLike[str],
    manifest: CascadeManifest,
    prompts: Sequence[str],
    *,
    device: str = "cpu",
) -> CachedTextEncoder:
    """The embedding cache at ``directory`` as the text encoder of the cascade whose ``cascade.json``
    is ``manifest`` (the frozen encoder's outputs of sec. 2.2, computed ahead).

    ValueError when the cache was built by another encoder than the cascade's (its recorded identity,
    or else its token length) or lacks one of ``prompts``; FileNotFoundError when it is no cache.
    """
    cache = EmbeddingCache.open(directory, expect_identity=manifest.text_encoder_identity)
    if cache.max_length != manifest.config.text_max_length:
        raise ValueError(
            f"text embedding cache {directory} holds {cache.max_length}-token embeddings; the cascade "
            f"takes {manifest.config.text_max_length}"
        )
    missing = cache.missing(prompts)
    if missing:
        raise ValueError(
            f"{len(missing)} prompt(s) are not in the text embedding cache {directory} (first: "
            f"{missing[0]!r}); add them with `imagen-video encode-text --captions FILE --out {directory}`"
        )
    return CachedTextEncoder(cache, device=device)


def parse_stage_list(spec: str | None, config: CascadeConfig) -> list[str] | None:
    """``"a,b,c"`` -> the stage names (each must exist); None stays None."""
    if spec is None:
        return None
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in config.stage_names]
    if not names or unknown:
        raise ValueError(f"--stages {spec!r}: unknown or no stages; stages: {', '.join(config.stage_names)}")
    return names


def check_positive(name: str, value: int | None, *, allow_zero: bool = False) -> None:
    """ValueError unless ``value`` is None or an integer >= 1 (>= 0 with ``allow_zero``)."""
    low = 0 if allow_zero else 1
    if value is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")


def resolve_device(name: str) -> str:
    """Check a ``--device`` value ("cpu", "cuda", "cuda:N", "mps") against what this machine has;
    "auto" becomes the best one there is (CUDA, then MPS, then CPU)."""
    import torch

    if name == "auto":
        from imagen_video.device import resolve_device as pick

        return str(pick(name))
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a device; use cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name!r}: MPS is not available on this machine")
    return name
