"""CLIP score and CLIP R-Precision over video frames (paper sec. 3.4, Table 1; docs/math.md sec. 13).

- CLIP score: 100 * max(cos(E_image(frame), E_text(prompt)), 0), averaged over all frames of a video,
  then over videos (Hessel et al. 2021; the paper reports about 25 on this 0-100 scale).
- CLIP R-Precision, R = 1 (Park et al. 2021): for every frame, the true prompt is ranked among
  ``num_distractors`` distractor prompts drawn without replacement (numpy Generator, fixed seed) from
  the other distinct prompts of the evaluation set; a frame counts as correct when the true prompt's
  similarity is strictly the highest (ties count as misses). Averaged over frames, then videos, and
  reported on a 0-100 scale like Table 1.

The CLIP model is loaded through transformers (``CLIPModel``, ``AutoTokenizer``,
``CLIPImageProcessor``) from a local directory, or from a hub name already in the Hugging Face cache
(``local_files_only=True``: nothing is downloaded). Frames are quantised to uint8 and preprocessed by
the model's own image processor (resize, center crop, normalisation), as for any image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imagen_video.metrics.base import Features, MetricResult, MetricsConfig, video_sizes
from imagen_video.metrics.networks import file_sha256

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def projected_features(features: torch.Tensor | Any) -> torch.Tensor:
    """The projected CLIP embeddings (N, D) from ``get_text_features`` / ``get_image_features``.

    transformers 4.x returns the projected embeddings as a tensor; 5.x returns a
    ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds the same projected embeddings.
    """
    if isinstance(features, torch.Tensor):
        return features
    pooled = getattr(features, "pooler_output", None)
    if not isinstance(pooled, torch.Tensor):
        raise TypeError(
            f"CLIP features: expected a tensor or an output with pooler_output, got {type(features).__name__}"
        )
    return pooled


@dataclass
class ClipBundle:
    """A CLIP model with its tokenizer and image processor, and the identity of its weights."""

    model: Any
    tokenizer: Any
    image_processor: Any
    identity: dict[str, str]
    device: torch.device

    @property
    def max_tokens(self) -> int:
        """Longest token sequence the text tower takes (77 for OpenAI CLIP); longer prompts are cut."""
        return int(self.model.config.text_config.max_position_embeddings)

    def truncated(self, prompts: Sequence[str]) -> list[str]:
        """The prompts longer than :attr:`max_tokens` tokens (CLIP sees only their beginning)."""
        lengths = [len(ids) for ids in self.tokenizer(list(prompts))["input_ids"]]
        return [p for p, n in zip(prompts, lengths, strict=True) if n > self.max_tokens]

    @torch.no_grad()
    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings (P, D) of ``prompts`` (cut to :attr:`max_tokens` tokens)."""
        tokens = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        feats = self.model.get_text_features(
            input_ids=tokens["input_ids"].to(self.device),
            attention_mask=tokens["attention_mask"].to(self.device),
        )
        return torch.nn.functional.normalize(projected_features(feats).float(), dim=-1).cpu()

    @torch.no_grad()
    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (N, D) of frames (N, 3, H, W) float in [0, 1]."""
        images = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        pixels = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        feats = self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype))
        return torch.nn.functional.normalize(projected_features(feats).float(), dim=-1).cpu()


def load_clip(name_or_path: str, device: str | torch.device = "cpu") -> ClipBundle:
    """Load a transformers CLIP from a local directory or the HF cache (offline; no downloads)."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    from imagen_video.text.hf import quiet_weight_loading

    local = Path(name_or_path)
    kwargs: dict[str, Any] = {} if local.is_dir() else {"local_files_only": True}
    try:
        with quiet_weight_loading():
            model = CLIPModel.from_pretrained(name_or_path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        processor = CLIPImageProcessor.from_pretrained(name_or_path, **kwargs)
    except OSError as err:
        raise FileNotFoundError(
            f"CLIP model {name_or_path!r} not found: give a local directory or a hub name already in the "
            f"Hugging Face cache (nothing is downloaded); {str(err).splitlines()[0]}"
        ) from err
    identity = {"model": str(name_or_path)}
    weights = [local / f for f in _WEIGHT_FILES if (local / f).is_file()] if local.is_dir() else []
    if weights:
        identity.update(weights=weights[0].name, sha256=file_sha256(weights[0]))
    elif getattr(model.config, "_commit_hash", None):
        identity["revision"] = str(model.config._commit_hash)
    return ClipBundle(model.eval().to(device), tokenizer, processor, identity, torch.device(device))


def draw_distractors(prompts: Sequence[str], num_distractors: int, seed: int) -> tuple[list[list[str]], int]:
    """For every prompt, ``num_distractors`` other distinct prompts drawn without replacement.

    Returns the per-video distractor lists and the number actually used per video (fewer when the
    set has fewer other distinct prompts; then all of them are used). Raises when there are none.
    """
    unique = list(dict.fromkeys(prompts))
    if len(unique) < 2:
        raise ValueError(
            f"CLIP R-Precision needs distractor prompts, but the prompt set has {len(unique)} "
            "distinct prompt(s); give at least 2 different prompts"
        )
    used = min(num_distractors, len(unique) - 1)
    rng = np.random.default_rng(seed)
    drawn = []
    for prompt in prompts:
        others = [p for p in unique if p != prompt]
        drawn.append([others[i] for i in rng.choice(len(others), size=used, replace=False)])
    return drawn, used


def clip_score(frame_embeds: torch.Tensor, text_embed: torch.Tensor) -> torch.Tensor:
    """Per-frame CLIP score 100 * max(cos, 0): frame_embeds (T, D), text_embed (D,) -> (T,)."""
    return 100.0 * (frame_embeds @ text_embed).clamp(min=0)


def r_precision_hits(
    frame_embeds: torch.Tensor, true_embed: torch.Tensor, distractors: torch.Tensor
) -> torch.Tensor:
    """Top-1 hits per frame: (T, D), (D,), (K, D) -> bool (T,), true prompt strictly most similar."""
    true_sim = frame_embeds @ true_embed  # (T,)
    distractor_sim = frame_embeds @ distractors.T  # (T, K)
    return true_sim > distractor_sim.max(dim=1).values


class ClipMetrics:
    """CLIP score and/or CLIP R-Precision from one pass of CLIP over the frames (Table 1)."""

    requires_reference = False

    def __init__(
        self,
        clip: ClipBundle,
        *,
        score: bool = True,
        rprecision: bool = True,
        num_distractors: int = 99,
        seed: int = 0,
        batch_size: int = 8,
    ) -> None:
        if not (score or rprecision):
            raise ValueError("ClipMetrics needs score=True or rprecision=True")
        self.clip, self.score, self.rprecision = clip, score, rprecision
        self.num_distractors, self.seed, self.batch_size = num_distractors, seed, batch_size
        self.name = ",".join(n for n, on in (("clip", score), ("rprec", rprecision)) if on)

    def frame_embeddings(self, videos: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) in [0, 1] -> (N, T, D) normalised CLIP image embeddings."""
        n, c, t, h, w = videos.shape
        frames = videos.transpose(1, 2).reshape(n * t, c, h, w)  # (N * T, C, H, W)
        step = self.batch_size * t
        embeds = [self.clip.embed_frames(frames[i : i + step]) for i in range(0, n * t, step)]
        return torch.cat(embeds).reshape(n, t, -1)

    def features(self, videos: torch.Tensor, prompts: Sequence[str] | None, name: str = "videos") -> Features:
        """``frames``: normalised CLIP image embeddings (N, T, D) of ``videos`` (N, 3, T, H, W) in [0, 1],
        in batches of ``batch_size`` videos; ``size``: (N, 3) = (T, H, W)."""
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(f"clip: {name} must be (N, 3, T, H, W), got {tuple(videos.shape)}")
        return {"frames": self.frame_embeddings(videos), "size": video_sizes(videos)}

    def _check_prompts(self, prompts: Sequence[str], videos: int) -> tuple[list[list[str]], int]:
        """One prompt per video, and the R-Precision distractors (raises on a one-prompt set)."""
        if len(prompts) != videos:
            raise ValueError(f"clip: {videos} videos but {len(prompts)} prompts; one prompt per video")
        if self.rprecision:
            return draw_distractors(prompts, self.num_distractors, self.seed)
        return [], 0

    def compute_from_features(
        self, features: Features, prompts: Sequence[str], reference: Features | None
    ) -> MetricResult:
        """CLIP score / R-Precision from the frame embeddings of :meth:`features` and the prompts."""
        image = features["frames"]  # (N, T, D)
        distractors, used = self._check_prompts(prompts, image.shape[0])
        unique = list(dict.fromkeys(prompts))
        text = dict(zip(unique, self.clip.embed_text(unique), strict=True))  # prompt -> (D,)
        t, h, w = features["size"][0].tolist()
        values: dict[str, float] = {}
        details: dict[str, Any] = {
            "clip_model": self.clip.identity,
            "videos": image.shape[0],
            "frames_per_video": t,
            "resolution": f"{h}x{w}",
            "truncated_prompts": len(self.clip.truncated(unique)),
        }
        if self.score:
            per_video = [clip_score(image[i], text[p]).mean() for i, p in enumerate(prompts)]
            values["clip_score"] = float(torch.stack(per_video).mean())
        if self.rprecision:
            hits = [
                r_precision_hits(image[i], text[p], torch.stack([text[d] for d in distractors[i]]))
                .float()
                .mean()
                for i, p in enumerate(prompts)
            ]
            values["clip_r_precision"] = 100.0 * float(torch.stack(hits).mean())
            details.update(num_distractors=used, distractor_seed=self.seed)
            if used < self.num_distractors:
                details["distractor_note"] = (
                    f"requested {self.num_distractors} distractors, the prompt set has only {used} "
                    "other distinct prompts per video; all of them were used"
                )
        return MetricResult(values, details)

    def compute(
        self, videos: torch.Tensor, prompts: Sequence[str], reference: torch.Tensor | None
    ) -> MetricResult:
        """CLIP score / R-Precision of ``videos`` (N, 3, T, H, W) against their prompts (one per video)."""
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(f"clip: videos must be (N, 3, T, H, W), got {tuple(videos.shape)}")
        self._check_prompts(prompts, videos.shape[0])  # fail on a one-prompt set before any CLIP work
        return self.compute_from_features(self.features(videos, prompts), prompts, None)


def build_clip_metrics(config: MetricsConfig) -> ClipMetrics:
    """Registry factory for "clip" and "rprec" (one CLIP pass computes whichever were requested)."""
    if config.clip_model is None:
        raise ValueError("clip/rprec need --clip-model PATH_OR_CACHED_HUB_NAME (nothing is downloaded)")
    return ClipMetrics(
        load_clip(config.clip_model, config.device),
        score="clip" in config.metrics,
        rprecision="rprec" in config.metrics,
        num_distractors=config.num_distractors,
        seed=config.distractor_seed,
        batch_size=config.batch_size,
    )
