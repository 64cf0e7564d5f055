"""An in-domain CLIP for the synthetic world: the paper's Table 1 metrics measured in this domain.

Video side: a tiny (2+1)D conv net maps a clip (B, 3, T, H, W) to one embedding per frame (B, T, D).
Its input is RGB, the frame difference x_t - x_{t-1} and (x, y) coordinate channels; three stages
each apply a spatial 3x3 stride-2 conv (+ GroupNorm, SiLU) and a residual temporal conv of width 3;
each frame's map is pooled globally (mean and max) and an MLP gives its embedding. A frame's
embedding sees +-3 neighbouring frames, so it carries the motion as well as the color and shape.
Text side: the project's frozen text encoder (``"embedded"`` MiniLM by default, paper sec. 2.2),
masked-mean-pooled over tokens, then a small trainable MLP projection to D. Trained contrastively
(InfoNCE) by :mod:`imagen_video.world.clip_train`; the shipped weights live in
``imagen_video/assets/world_clip/``.

Metrics (paper sec. 3.4, Table 1; docs/math.md sec. 13):

- :func:`clip_score`: ``100 * max(cos(E_image(frame), E_text(prompt)), 0)``, averaged over frames;
- :func:`r_precision`: top-1 accuracy of the true prompt among it and 99 distractor prompts drawn
  with a fixed seed from the other tier-1 combinations, per frame, averaged over frames and videos;
- :func:`video_features`: pooled video embeddings for an in-domain Fréchet distance (FVD analogue).

Inputs are clips at the user boundary: float (B, C, T, H, W) in [0, 1] or uint8
(T, H, W, 3) arrays; other sizes than the config's (T, H, W) are resized (antialiased bilinear in
space, linear in time).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imagen_video.serialization import JsonConfig, atomic_write_json, save_safetensors_atomic
from imagen_video.world.analyze import as_clip_list
from imagen_video.world.spec import ALL_COMBOS, ALL_STILLS

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclasses.dataclass(frozen=True)
class WorldClipConfig(JsonConfig):
    """Architecture and input size of the in-domain CLIP, and the frozen text encoder it expects."""

    frames: int = 16
    """Frames the video encoder sees; other frame counts are resampled linearly."""
    height: int = 24
    """Frame height the video encoder sees; other sizes are resized."""
    width: int = 40
    """Frame width the video encoder sees."""
    channels: tuple[int, ...] = (16, 32, 64)
    """Widths of the stride-2 (2+1)D stages; the frame is downsampled by 2 per stage."""
    embed_dim: int = 128
    """Joint embedding width D."""
    text_encoder: str = "embedded"
    """Name passed to ``imagen_video.text.load_text_encoder``."""
    text_max_length: int = 24
    """Token length the text encoder pads to (world captions have at most ~15 tokens)."""
    text_identity: str = ""
    """``encoder.identity`` of the text encoder used in training (checked when prompts are encoded)."""
    cached_prompts: tuple[str, ...] = ()
    """Prompts whose pooled text features ship with the weights (buffer ``cached_text``), so scoring
    them needs no text encoder: by default every canonical tier-1 caption (videos and stills)."""
    text_dim: int = 384
    """Width of the text encoder's token embeddings."""
    text_hidden: int = 256
    """Hidden width of the text projection MLP."""

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of positive widths, got {self.channels}")
        factor = 2 ** len(self.channels)
        if self.height % factor or self.width % factor:
            raise ValueError(
                f"height and width must be multiples of {factor} for {len(self.channels)} stages, "
                f"got {self.height}x{self.width}"
            )
        for name in ("embed_dim", "text_dim", "text_hidden", "text_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class _Stage(nn.Module):
    """Spatial 3x3 conv (stride 2) then a residual temporal conv of width 3: (2+1)D."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.spatial = nn.Conv3d(c_in, c_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.temporal = nn.Conv3d(c_out, c_out, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm(self.spatial(x)))  # (B, C_out, T, H/2, W/2)
        return h + F.silu(self.temporal(h))


class WorldClip(nn.Module):
    """Video encoder and text projection of the in-domain CLIP (see module docstring)."""

    def __init__(self, config: WorldClipConfig) -> None:
        super().__init__()
        self.config = config
        widths = (8, *config.channels)  # RGB + frame-difference RGB + (x, y) coordinate channels
        self.stages = nn.ModuleList(_Stage(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.frame_head = nn.Sequential(
            nn.Linear(2 * config.channels[-1], 2 * config.channels[-1]),
            nn.GELU(),
            nn.Linear(2 * config.channels[-1], config.embed_dim),
        )
        self.text_proj = nn.Sequential(
            nn.Linear(config.text_dim, config.text_hidden),
            nn.GELU(),
            nn.Linear(config.text_hidden, config.embed_dim),
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        self.register_buffer("cached_text", torch.zeros(len(config.cached_prompts), config.text_dim))
        self._cached_index = {p: i for i, p in enumerate(config.cached_prompts)}
        self._text_encoder: Any = None
        self._pooled_cache: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.logit_scale.device

    def frame_embeddings(self, video: torch.Tensor) -> torch.Tensor:
        """Unit-norm per-frame embeddings (B, T, D) of clips (B, 3, T, H, W) in [0, 1] at the config size."""
        b, _, t, h, w = video.shape
        ys = torch.linspace(-1, 1, h, device=video.device).view(1, 1, 1, h, 1).expand(b, 1, t, h, w)
        xs = torch.linspace(-1, 1, w, device=video.device).view(1, 1, 1, 1, w).expand(b, 1, t, h, w)
        diff = torch.diff(video, dim=2, prepend=video[:, :, :1])  # (B, 3, T, H, W), x_t - x_{t-1}
        x = torch.cat([video * 2 - 1, diff, xs, ys], dim=1)  # (B, 8, T, H, W)
        for stage in self.stages:
            x = stage(x)  # (B, C_i, T, H / 2^i, W / 2^i)
        x = x.flatten(3)  # (B, C, T, h * w)
        x = torch.cat([x.mean(dim=3), x.amax(dim=3)], dim=1).transpose(1, 2)  # (B, T, 2C) global pooling
        return F.normalize(self.frame_head(x), dim=-1)  # (B, T, D)

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        """Unit-norm text embeddings (N, D) from masked-mean-pooled text-encoder tokens (N, text_dim)."""
        return F.normalize(self.text_proj(pooled), dim=-1)

    def pooled_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Masked-mean-pooled frozen text-encoder tokens (N, text_dim) of ``prompts``.

        Served from the shipped ``cached_text`` buffer or the in-memory cache when possible; other
        prompts are encoded once (loading the text encoder on first need) and cached.
        """
        known = self._pooled_cache.keys() | self._cached_index.keys()
        missing = sorted({p for p in prompts if p not in known})
        if missing:
            self.cache_text_features(missing, pooled_text_features(self._encoder(), missing))
        rows = [
            self.cached_text[self._cached_index[p]] if p in self._cached_index else self._pooled_cache[p]
            for p in prompts
        ]
        return torch.stack([row.to(self.device) for row in rows])  # (N, text_dim)

    def cache_text_features(self, prompts: Sequence[str], pooled: torch.Tensor) -> None:
        """Remember pooled text features (N, text_dim) of ``prompts`` (in memory, not saved)."""
        if pooled.shape != (len(prompts), self.config.text_dim):
            raise ValueError(
                f"expected pooled features ({len(prompts)}, {self.config.text_dim}), "
                f"got {tuple(pooled.shape)}"
            )
        self._pooled_cache.update(zip(prompts, pooled.detach().float().cpu(), strict=True))

    def use_text_encoder(self, encoder: Any) -> None:
        """Attach an already-loaded frozen text encoder (its identity must match the config's, if set)."""
        self._check_identity(encoder)
        self._text_encoder = encoder

    def embed_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings (N, D) of prompts."""
        return self.project_text(self.pooled_text(prompts))

    def _encoder(self) -> Any:
        if self._text_encoder is None:
            from imagen_video.text import load_text_encoder

            encoder = load_text_encoder(self.config.text_encoder, max_length=self.config.text_max_length)
            self.use_text_encoder(encoder)
        return self._text_encoder

    def _check_identity(self, encoder: Any) -> None:
        if self.config.text_identity and encoder.identity != self.config.text_identity:
            raise ValueError(
                f"world CLIP was trained with text encoder {self.config.text_identity!r}, "
                f"got {encoder.identity!r}"
            )


def canonical_prompts() -> tuple[str, ...]:
    """Every canonical tier-1 caption: the 108 videos, then the 18 stills (the shipped text cache)."""
    return tuple(c.caption for c in (*ALL_COMBOS, *ALL_STILLS))


def pooled_text_features(encoder: Any, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Masked mean over tokens of ``encoder.encode(prompts)``: float32 (N, D_text) on CPU."""
    parts = []
    for start in range(0, len(prompts), batch_size):
        emb = encoder.encode(list(prompts[start : start + batch_size]))
        mask = emb.mask.to(emb.tokens.dtype).unsqueeze(-1)  # (B, L, 1)
        parts.append(((emb.tokens * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu())  # (B, D)
    return torch.cat(parts)


def prepare_videos(videos: Any, config: WorldClipConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """Clips (any accepted layout, see ``analyze.to_thwc``) -> float32 (B, 3, T, H, W) at the config size.

    A 5-D batch whose layout is unambiguous ((B, 3, T, H, W) or (B, T, H, W, 3)) is converted in one
    go; anything else clip by clip.
    """
    size = (config.frames, config.height, config.width)
    batch = _as_bcthw(videos)
    if batch is not None:
        return resize_video(batch.to(device), size)
    clips = []
    for clip in as_clip_list(videos):  # each float64 (T, H, W, 3)
        x = torch.from_numpy(clip).float().permute(3, 0, 1, 2).unsqueeze(0).to(device)  # (1, 3, T, H, W)
        clips.append(resize_video(x, size))
    return torch.cat(clips)


def _as_bcthw(videos: Any) -> torch.Tensor | None:
    """A 5-D batch as float32 (B, 3, T, H, W) in [0, 1]; ``None`` if not 5-D or the layout is ambiguous."""
    if getattr(videos, "ndim", 0) != 5 or (videos.shape[1] == 3) == (videos.shape[-1] == 3):
        return None
    x = torch.as_tensor(np.asarray(videos)) if isinstance(videos, np.ndarray) else videos.detach()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0)
    return x if x.shape[1] == 3 else x.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)


def resize_video(video: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Resize (B, C, T, H, W) to ``size`` = (T, H, W): antialiased bilinear per frame, then linear in time."""
    b, c, t, h, w = video.shape
    frames, height, width = size
    if (h, w) != (height, width):
        flat = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        flat = F.interpolate(flat, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        video = flat.reshape(b, t, c, height, width).permute(0, 2, 1, 3, 4)
    if t != frames:
        video = F.interpolate(video, size=(frames, height, width), mode="trilinear", align_corners=False)
    return video.clamp(0.0, 1.0)


def embed_videos(videos: Any, *, model: WorldClip | None = None, batch_size: int = 64) -> torch.Tensor:
    """Unit-norm per-frame embeddings (B, T, D) of clips in any accepted layout (resized to the config)."""
    model = _model(model)
    x = prepare_videos(videos, model.config, model.device)  # (B, 3, T, H, W)
    with torch.no_grad():
        parts = [model.frame_embeddings(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(parts)  # (B, T, D)


def _model(model: WorldClip | None) -> WorldClip:
    return load_world_clip() if model is None else model


def clip_score(
    videos: Any, prompts: Sequence[str], *, model: WorldClip | None = None, batch_size: int = 64
) -> float:
    """CLIP score (paper Table 1; docs/math.md sec. 13): mean over videos and frames of
    ``100 * max(cos(E_image(frame), E_text(prompt)), 0)``; in [0, 100]."""
    model = _model(model)
    return clip_score_from_frames(embed_videos(videos, model=model, batch_size=batch_size), prompts, model)


def clip_score_from_frames(frames: torch.Tensor, prompts: Sequence[str], model: WorldClip) -> float:
    """:func:`clip_score` from frame embeddings (B, T, D) given by :func:`embed_videos`."""
    _check_lengths(frames, prompts)
    with torch.no_grad():
        text = model.embed_prompts(list(prompts))  # (B, D)
    cos = torch.einsum("btd,bd->bt", frames, text)  # (B, T)
    return float((100.0 * cos.clamp(min=0.0)).mean())


def distractor_prompts(prompts: Sequence[str], distractors: int = 99, seed: int = 0) -> list[list[str]]:
    """For each prompt, ``distractors`` canonical tier-1 captions other than it, drawn without
    replacement by one numpy generator seeded with ``seed`` (same prompts + seed -> same sets)."""
    pool = [c.caption for c in ALL_COMBOS]
    rng = np.random.default_rng(seed)
    out = []
    for prompt in prompts:
        others = [p for p in pool if p != prompt]
        if distractors > len(others):
            raise ValueError(
                f"distractors must be <= {len(others)} (other tier-1 combinations), got {distractors}"
            )
        out.append([others[i] for i in rng.choice(len(others), size=distractors, replace=False)])
    return out


def r_precision(
    videos: Any,
    prompts: Sequence[str],
    *,
    distractors: int = 99,
    seed: int = 0,
    model: WorldClip | None = None,
    batch_size: int = 64,
) -> float:
    """CLIP R-Precision, R = 1 (paper sec. 3.4; docs/math.md sec. 13): for every frame, whether
    the true prompt has the highest similarity among it and ``distractors`` prompts (see
    :func:`distractor_prompts`); averaged over frames and videos. Ties count as misses."""
    model = _model(model)
    frames = embed_videos(videos, model=model, batch_size=batch_size)  # (B, T, D)
    return r_precision_from_frames(frames, prompts, model, distractors=distractors, seed=seed)


def r_precision_from_frames(
    frames: torch.Tensor, prompts: Sequence[str], model: WorldClip, *, distractors: int = 99, seed: int = 0
) -> float:
    """:func:`r_precision` from frame embeddings (B, T, D) given by :func:`embed_videos`."""
    _check_lengths(frames, prompts)
    candidates = [
        [p, *d] for p, d in zip(prompts, distractor_prompts(prompts, distractors, seed), strict=True)
    ]
    unique = sorted({p for c in candidates for p in c})
    with torch.no_grad():
        table = dict(zip(unique, model.embed_prompts(unique), strict=True))
    hits = []
    for video, cands in zip(frames, candidates, strict=True):
        sims = video @ torch.stack([table[p] for p in cands]).T  # (T, 1 + distractors)
        hits.append((sims[:, 0] > sims[:, 1:].max(dim=1).values).float().mean())
    return float(torch.stack(hits).mean())


def video_features(videos: Any, *, model: WorldClip | None = None, batch_size: int = 64) -> np.ndarray:
    """Video embeddings for an in-domain Fréchet distance: mean of the frame embeddings, float64 (B, D)."""
    return embed_videos(videos, model=model, batch_size=batch_size).mean(dim=1).double().cpu().numpy()


def _check_lengths(frames: torch.Tensor, prompts: Sequence[str]) -> None:
    if isinstance(prompts, str) or len(prompts) != frames.shape[0]:
        count = 1 if isinstance(prompts, str) else len(prompts)
        raise ValueError(f"need one prompt per video: {frames.shape[0]} videos, {count} prompts")


def save_world_clip(model: WorldClip, directory: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` to ``directory`` (atomically); return the directory."""
    directory = Path(directory)
    save_safetensors_atomic(dict(model.state_dict()), directory / WEIGHTS_NAME)
    atomic_write_json(directory / CONFIG_NAME, model.config.to_dict())
    return directory


def default_assets_dir() -> Path:
    """The package directory holding the shipped world-CLIP weights."""
    return Path(str(resources.files("imagen_video") / "assets" / "world_clip"))


def load_world_clip(directory: str | Path | None = None, device: str | torch.device = "cpu") -> WorldClip:
    """Load world-CLIP weights + config (default: the shipped assets), in eval mode on ``device``.

    Without ``directory`` the loaded model is cached per device, so repeated metric calls reuse it.
    """
    if directory is None:
        return _load_default(str(device))
    from safetensors.torch import load_file

    directory = Path(directory)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"world CLIP file missing: {directory / name}")
    config = WorldClipConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8")))
    model = WorldClip(config)
    model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
    return model.to(device).eval()


@functools.lru_cache(maxsize=4)
def world_clip_digest(directory: str | Path | None = None) -> str:
    """The first 12 hex digits of the sha256 of a world CLIP's weights (default: the shipped ones),
    recorded beside the scores it gives, so that results name the evaluator that made them."""
    from imagen_video.integrity import file_sha256

    folder = Path(directory) if directory is not None else default_assets_dir()
    return file_sha256(folder / "model.safetensors")[:12]


def _load_default(device: str) -> WorldClip:
    return load_world_clip(default_assets_dir(), device)
