"""What a client may ask the server for: the request body of ``POST /v1/videos`` and its checks.

A request names a prompt, a seed, a number of videos and optional per-stage sampling settings (steps,
guidance weight in the eq. 5 convention, sampler; paper secs. 2.1 and 2.6). :func:`normalize` checks
it against the loaded cascades and turns it into the stored form, in which every setting is spelled
out per stage, so two requests with the same settings have the same :func:`batch_key` and can share
one batch (their prompts and seeds differ, every video keeps its own seed).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imagen_video.cascade.config import CascadeConfig
from imagen_video.cascade.sampling import StageOverride
from imagen_video.diffusion.config import constant_guidance

MAX_VIDEOS = 16
MAX_STEPS = 1024
MAX_SEED = 2**63 - 1
Sampler = Literal["ancestral", "ddim", "stochastic"]
VideoFormat = Literal["mp4", "gif", "png"]


class RequestError(ValueError):
    """A request the server refuses (HTTP 422); the message is one line naming the bad field."""


class VideoRequest(BaseModel):
    """Body of ``POST /v1/videos``. ``steps``, ``guidance`` and ``sampler`` take one value for every
    stage or an object ``{stage name: value}``; ``format`` is what ``/content`` returns by default."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="the text prompt")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="video k uses seed + k; default: random")
    num_videos: int = Field(1, ge=1, le=MAX_VIDEOS, description="videos for this prompt")
    steps: int | dict[str, int] | None = Field(None, description=f"sampler steps, 1..{MAX_STEPS}")
    guidance: float | dict[str, float] | None = Field(None, description="guidance weight w >= 0 (eq. 5)")
    sampler: Sampler | dict[str, Sampler] | None = Field(None, description="ancestral, ddim or stochastic")
    format: VideoFormat = Field("mp4", description="the default variant of /content")
    model: str | None = Field(None, description="a loaded cascade (default: the first one)")


def _per_stage(name: str, value: Any, stages: tuple[str, ...]) -> dict[str, Any]:
    """``value`` for every stage, or the given ``{stage: value}`` after checking the stage names."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return dict.fromkeys(stages, value)
    unknown = [stage for stage in value if stage not in stages]
    if unknown:
        raise RequestError(f"{name}: unknown stage {unknown[0]!r}; stages: {', '.join(stages)}")
    return dict(value)


def normalize(body: VideoRequest, cascades: Mapping[str, CascadeConfig]) -> dict[str, Any]:
    """The stored request: checked against ``cascades`` (name -> config of each loaded cascade), the
    seed drawn when absent, and ``steps``/``guidance``/``sampler`` spelled out per stage."""
    if not body.prompt.strip():
        raise RequestError("prompt is empty")
    model = body.model if body.model is not None else next(iter(cascades))
    if model not in cascades:
        raise RequestError(f"model {model!r} is not loaded; loaded: {', '.join(cascades)}")
    stages = cascades[model].stage_names
    steps = _per_stage("steps", body.steps, stages)
    for stage, count in steps.items():
        if not 1 <= count <= MAX_STEPS:
            raise RequestError(f"steps: {count} for stage {stage!r} is outside 1..{MAX_STEPS}")
    guidance = _per_stage("guidance", body.guidance, stages)
    for stage, weight in guidance.items():
        if not 0.0 <= weight < float("inf"):
            raise RequestError(f"guidance: {weight} for stage {stage!r} must be a finite number >= 0")
    return {
        "prompt": body.prompt,
        "seed": body.seed if body.seed is not None else secrets.randbelow(2**31),
        "num_videos": body.num_videos,
        "steps": steps,
        "guidance": guidance,
        "sampler": _per_stage("sampler", body.sampler, stages),
        "format": body.format,
        "model": model,
    }


def batch_key(request: Mapping[str, Any]) -> str:
    """Requests with equal keys sample with the same cascade and settings, so they can share a batch."""
    settings = {name: request[name] for name in ("model", "steps", "guidance", "sampler")}
    return json.dumps(settings, sort_keys=True)


def overrides(request: Mapping[str, Any]) -> dict[str, StageOverride]:
    """The per-stage :class:`StageOverride` of a stored request (for ``Cascade.generate``)."""
    stages = set(request["steps"]) | set(request["guidance"]) | set(request["sampler"])
    return {
        stage: StageOverride(
            steps=request["steps"].get(stage),
            sampler=request["sampler"].get(stage),
            guidance=constant_guidance(request["guidance"][stage]) if stage in request["guidance"] else None,
        )
        for stage in stages
    }
