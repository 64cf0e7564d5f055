"""Argument parsing and output naming shared by the ``generate`` and ``upsample`` commands.

Everything here validates user input without loading a network, so the commands can reject bad
arguments before the (slow) model load; errors are ValueError with one line naming the bad value and
what is allowed. Guidance weights use the paper's eq. 5 convention (w = 0: no guidance).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagen_video.cascade.config import CascadeConfig
from imagen_video.cascade.export import default_suffix, resolve_format
from imagen_video.cascade.runner import CascadeOutput
from imagen_video.cascade.sampling import StageOverride
from imagen_video.diffusion.config import (
    SAMPLER_NAMES,
    START_FROM,
    GuidanceConfig,
    constant_guidance,
    oscillating_guidance,
)
from imagen_video.text.cache import CachedTextEncoder, EmbeddingCache

SHIPPED_CASCADES = {"demo": "demo_cascade", "demo-distilled": "demo_cascade_distilled"}  # name -> asset
DEFAULT_CASCADE = "demo"  # what `generate` runs without --model (see docs/demo-cascade.md)
DEMO_CASCADE_ASSET = SHIPPED_CASCADES["demo"]
GUIDANCE_SYNTAX = "W, STAGE=W, oscillate:HIGH,LOW[,K] or STAGE=oscillate:HIGH,LOW[,K]"
MAX_SLUG = 40


def shipped_cascade_dir(name: str) -> Path:
    """Directory of a cascade that ships inside the package: ``demo`` (the trained demo cascade,
    ``imagen_video/assets/demo_cascade``) or ``demo-distilled`` (its distilled stages, paper sec. 2.7)."""
    from importlib.resources import files

    if name not in SHIPPED_CASCADES:
        raise ValueError(f"no shipped cascade {name!r}; shipped: {', '.join(SHIPPED_CASCADES)}")
    return Path(str(files("imagen_video"))) / "assets" / SHIPPED_CASCADES[name]


def default_model_dir() -> Path:
    """The cascade ``generate`` runs without ``--model``: the shipped ``DEFAULT_CASCADE``."""
    return shipped_cascade_dir(DEFAULT_CASCADE)


def resolve_model_dir(value: str | os.PathLike[str] | None) -> Path:
    """``--model`` to a directory: None -> the default cascade; a shipped name (``demo``,
    ``demo-distilled``) -> its asset directory unless a path of that name exists; else the path."""
    if value is None:
        return default_model_dir()
    path = Path(value)
    if str(value) in SHIPPED_CASCADES and not path.exists():
        return shipped_cascade_dir(str(value))
    return path


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
    directory: str | os.PathLike[str], model_dir: Path, prompts: Sequence[str], *, device: str = "cpu"
) -> CachedTextEncoder:
    """The embedding cache at ``directory`` as the text encoder of the cascade at ``model_dir`` (the
    frozen encoder's outputs of sec. 2.2, computed ahead).

    ValueError when the cache was built by another encoder than the cascade's (its recorded identity,
    or else its token length) or lacks one of ``prompts``; FileNotFoundError when it is no cache.
    """
    from imagen_video.cascade.directory import read_cascade_json

    manifest = read_cascade_json(model_dir)
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


def read_prompts_file(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """``(line number, prompt)`` for each line of a prompts file (one prompt per line, UTF-8).

    A blank line is an error naming its line number (a final newline is fine); so is an empty file.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read prompts file {str(source)!r}: {err}") from err
    lines = text.splitlines()
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"prompts file {str(source)!r}: line {number} is blank (one prompt per line)")
        prompts.append((number, line.strip()))
    if not prompts:
        raise ValueError(f"prompts file {str(source)!r} holds no prompts")
    return prompts


def slugify(prompt: str) -> str:
    """A short file-name-safe form of a prompt: lowercase words joined by '-', at most 40 characters."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = "-".join(words)[:MAX_SLUG].strip("-")
    return slug or "video"


@dataclass(frozen=True)
class OutputPlan:
    """Where each generated video goes: ``paths[i]`` for video i, and the export format."""

    paths: list[Path]
    format: str


def plan_outputs(
    out: str | None,
    fmt: str | None,
    prompts: Sequence[tuple[int | None, str]],
    num_videos: int,
    *,
    batch: bool,
) -> OutputPlan:
    """Output paths for ``num_videos`` videos of each prompt, checked before any work is done.

    Single prompt: ``-o`` is the file (or PNG folder); default ``<prompt slug>.<format>``; with several
    videos, ``_<k>`` is added to its stem. Batch (``--prompts``): ``-o`` is a directory (default
    ``videos``) and each file is named ``<line number>-<slug>[_<k>].<format>``.
    """
    if batch:
        directory = Path(out if out is not None else "videos")
        if out is not None and Path(out).suffix and not out.endswith(("/", os.sep)):
            raise ValueError(f"with --prompts, -o names a directory; got {out!r}")
        fmt = fmt or "mp4"
        suffix = default_suffix(fmt)
        paths = []
        for line, prompt in prompts:
            stem = f"{line:04d}-{slugify(prompt)}"
            paths.extend(directory / f"{stem}{_index(k, num_videos)}{suffix}" for k in range(num_videos))
        return OutputPlan(paths, fmt)
    _, prompt = prompts[0]
    if out is None:
        fmt = fmt or "mp4"
        base = Path(f"{slugify(prompt)}{default_suffix(fmt)}")
    else:
        base = Path(out)
        by_path = resolve_format(out)
        if fmt is None:
            fmt = by_path
        elif Path(out).suffix and by_path != fmt:
            raise ValueError(f"-o {out!r} has the suffix of {by_path}, but --format is {fmt}")
        elif not Path(out).suffix:
            base = Path(f"{out.rstrip('/' + os.sep)}{default_suffix(fmt)}")
    paths = [base.with_name(f"{base.stem}{_index(k, num_videos)}{base.suffix}") for k in range(num_videos)]
    return OutputPlan(paths, fmt)


def _index(k: int, count: int) -> str:
    return f"_{k}" if count > 1 else ""


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


def process_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``), None where unknown.

    The kernel's start time is the fork's: when a shell execs the command in place (the last command
    of ``bash -c 'pip install . && imagen-video generate ...'``), it includes what the shell ran first.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in clock ticks
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


def timing_report(output: CascadeOutput, total: float, batch: tuple[int, int] | None = None) -> str:
    """One line: text encoding, each stage's seconds, the total, and the process's age.

    With ``batch = (k, n)`` and n > 1 the stage seconds are batch k's and the line says so; the
    elapsed time counts from the start of the command.
    """
    parts = [f"text {output.text_seconds:.2f}s"]  # 2 decimals: a stage on a GPU takes 0.02-0.2 s
    parts += [f"{name} {seconds:.2f}s" for name, seconds in output.timings.items()]
    if batch is not None and batch[1] > 1:
        line = f"batch {batch[0]}/{batch[1]} timings: {', '.join(parts)}; elapsed {total:.1f}s"
    else:
        line = f"timings: {', '.join(parts)}; total {total:.1f}s"
    process = process_seconds()
    return line + (f" ({process:.1f}s including process start)" if process is not None else "")
