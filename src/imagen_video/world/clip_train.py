"""Contrastive (InfoNCE) training of the in-domain world CLIP (:mod:`imagen_video.world.clip`).

Each step renders one fresh clip for each of ``batch_size`` distinct combinations (16x24x40),
augments some of them (blur by 2x down/up-sampling, Gaussian noise, dimming, so that imperfect
generated clips still embed sensibly), captions each with its canonical caption or a random
paraphrase, and minimises three cross-entropies with a learned temperature (CLIP, Radford et al.
2021): frame -> batch captions, caption -> batch videos (mean frame embedding), and frame -> all
canonical captions of the training combinations (which is what R-Precision ranks; docs/math.md
sec. 13). The frozen text encoder's pooled features of every possible caption are computed once.

The shipped weights in ``imagen_video/assets/world_clip/`` were produced by::

    .venv/bin/python -m imagen_video.world.clip_train --out src/imagen_video/assets/world_clip \\
        --steps 1500 --max-seconds 1200 --seed 0 --threads 1 --new-color orange

(see ``train_report.json`` there for the time it took and the R-Precision it reached).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from imagen_video.serialization import JsonConfig, atomic_write_json
from imagen_video.world.clip import (
    WorldClip,
    WorldClipConfig,
    canonical_prompts,
    pooled_text_features,
    r_precision,
    save_world_clip,
)
from imagen_video.world.render import render_batch
from imagen_video.world.spec import (
    ALL_COMBOS,
    DEFAULT_HOLDOUT,
    MOTIONS,
    NEW_COLORS,
    SHAPES,
    Combo,
    all_paraphrases,
    parse_combo,
)


@dataclasses.dataclass(frozen=True)
class ClipTrainConfig(JsonConfig):
    """Hyper-parameters of :func:`train_world_clip`."""

    steps: int = 1500
    """Optimiser steps."""
    max_seconds: float = 600.0
    """CPU-time bound (process time, text features included); training stops early when reached."""
    batch_size: int = 36
    """Distinct combinations (one clip each) per step; at most the number of training combinations."""
    lr: float = 2e-3
    """AdamW peak learning rate (cosine decay to 5% of it)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    paraphrase_prob: float = 0.5
    """Probability that a training caption is a random paraphrase rather than the canonical one."""
    augment_prob: float = 0.5
    """Probability of each augmentation (blur, noise, dimming) per clip."""
    seed: int = 0
    """Seed of rendering, captions, augmentation and initialisation."""
    exclude: tuple[str, ...] = ()
    """``color shape motion`` triples left out of training (default none: the evaluator must score
    held-out prompts of the video model too)."""
    new_colors: tuple[str, ...] = ()
    """Colors of ``NEW_COLORS`` (outside the shipped video data) whose combinations are trained on
    too, so that the CLIP can score a cascade fine-tuned on them (docs/finetuning.md)."""
    wordings_per_combo: int = 16
    """Paraphrases per combination (drawn once, seeded) whose text features are precomputed."""
    eval_clips_per_combo: int = 2
    """Rendered clips per combination in the final evaluation."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.max_seconds <= 0:
            raise ValueError(
                f"need steps >= 1, batch_size >= 2, max_seconds > 0; got {self.steps}, {self.batch_size}, "
                f"{self.max_seconds}"
            )
        if not (0 <= self.paraphrase_prob <= 1 and 0 <= self.augment_prob <= 1):
            raise ValueError(
                "paraphrase_prob and augment_prob must be in [0, 1], "
                f"got {self.paraphrase_prob}, {self.augment_prob}"
            )
        unknown = [c for c in self.new_colors if c not in NEW_COLORS]
        if unknown:
            raise ValueError(f"new_colors must be among {', '.join(NEW_COLORS)}, got {', '.join(unknown)}")
        if self.batch_size > len(self.train_combos()):
            raise ValueError(f"batch_size must be <= {len(self.train_combos())} training combinations")

    def train_combos(self) -> tuple[Combo, ...]:
        """The combinations trained on (all 108, and those of ``new_colors``, minus ``exclude``)."""
        excluded = {parse_combo(t) for t in self.exclude}
        new = tuple(Combo(c, s, m) for c, s, m in itertools.product(self.new_colors, SHAPES, MOTIONS))
        return tuple(c for c in (*ALL_COMBOS, *new) if c not in excluded)


def augment(video: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Randomly blur (2x down/up-sampling), add Gaussian noise (sigma <= 0.15) and dim (x0.7-1) clips
    (B, 3, T, H, W) in [0, 1], each with probability ``prob`` per clip."""
    b, c, t, h, w = video.shape
    pick = [torch.rand(b, 1, 1, 1, 1, generator=generator) < prob for _ in range(3)]
    flat = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    blurred = F.interpolate(F.avg_pool2d(flat, 2), size=(h, w), mode="bilinear", align_corners=False)
    blurred = blurred.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    video = torch.where(pick[0], blurred, video)
    sigma = 0.15 * torch.rand(b, 1, 1, 1, 1, generator=generator)
    video = torch.where(pick[1], video + sigma * torch.randn(video.shape, generator=generator), video)
    scale = 0.7 + 0.3 * torch.rand(b, 1, 1, 1, 1, generator=generator)
    return torch.where(pick[2], video * scale, video).clamp(0.0, 1.0)


@dataclasses.dataclass
class _TextBank:
    """Pooled frozen-encoder features of every caption wording of every training combination."""

    features: torch.Tensor  # (N, text_dim)
    rows: list[list[int]]  # per combo: rows of its wordings
    canonical: list[int]  # per combo: row of its canonical caption


def _text_bank(
    encoder: Any, combos: Sequence[Combo], per_combo: int, rng: np.random.Generator
) -> tuple[_TextBank, list[str]]:
    prompts: list[str] = []
    rows, canonical = [], []
    for combo in combos:
        others = [w for w in all_paraphrases(combo) if w != combo.caption]
        picks = rng.choice(len(others), size=min(per_combo, len(others)), replace=False)
        wordings = [combo.caption, *(others[i] for i in sorted(picks))]
        rows.append(list(range(len(prompts), len(prompts) + len(wordings))))
        canonical.append(len(prompts) + wordings.index(combo.caption))
        prompts.extend(wordings)
    return _TextBank(pooled_text_features(encoder, prompts), rows, canonical), prompts


def _loss(
    model: WorldClip,
    video: torch.Tensor,
    text_pooled: torch.Tensor,
    canon_pooled: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    frames = model.frame_embeddings(video)  # (B, T, D)
    b, t, _ = frames.shape
    text = model.project_text(text_pooled)  # (B, D)
    canon = model.project_text(canon_pooled)  # (K, D)
    scale = model.logit_scale.exp().clamp(max=100.0)
    flat = frames.reshape(b * t, -1)  # (B * T, D)
    clip_index = torch.arange(b).repeat_interleave(t)
    pooled = F.normalize(frames.mean(dim=1), dim=-1)  # (B, D)
    loss_frame = F.cross_entropy(scale * flat @ text.T, clip_index)
    loss_text = F.cross_entropy(scale * text @ pooled.T, torch.arange(b))
    loss_canon = F.cross_entropy(scale * flat @ canon.T, targets.repeat_interleave(t))
    return loss_frame + loss_text + loss_canon


def train_world_clip(
    config: ClipTrainConfig, clip_config: WorldClipConfig | None = None, *, progress: bool = True
) -> tuple[WorldClip, dict[str, Any]]:
    """Train a world CLIP from scratch on freshly rendered clips; return (model in eval mode, report).

    The report holds the steps run, seconds, final loss and R-Precision on rendered clips of all
    combinations, of the training combinations and of :data:`DEFAULT_HOLDOUT` (paper sec. 3.4).
    """
    from tqdm import tqdm

    from imagen_video.text import load_text_encoder

    clip_config = clip_config or WorldClipConfig()
    encoder = load_text_encoder(clip_config.text_encoder, max_length=clip_config.text_max_length)
    clip_config = clip_config.replace(
        text_identity=encoder.identity, text_dim=encoder.dim, cached_prompts=canonical_prompts()
    )
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the global RNG
        torch.manual_seed(config.seed)
        model = WorldClip(clip_config)
    model.use_text_encoder(encoder)
    combos = config.train_combos()
    wall_start = time.monotonic()
    rng = np.random.default_rng(config.seed)
    start = time.process_time()
    bank, prompts = _text_bank(encoder, combos, config.wordings_per_combo, rng)
    model.cache_text_features(prompts, bank.features)
    model.cached_text.copy_(pooled_text_features(encoder, clip_config.cached_prompts))
    text_seconds = time.process_time() - start
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(s / config.steps, 1.0)))
    )
    generator = torch.Generator().manual_seed(config.seed)
    canon_pooled = bank.features[bank.canonical]  # (K, text_dim)
    model.train()
    step, losses = 0, []
    bar = tqdm(total=config.steps, desc="world clip", disable=not progress)
    while step < config.steps and time.process_time() - start < config.max_seconds:
        picks = rng.choice(len(combos), size=config.batch_size, replace=False)
        clips = render_batch(
            [combos[i] for i in picks],
            frames=clip_config.frames,
            height=clip_config.height,
            width=clip_config.width,
            seed=rng,
        )  # (B, T, H, W, 3) uint8
        video = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 255.0  # (B, 3, T, H, W)
        video = augment(video, config.augment_prob, generator)
        rows = [
            int(rng.choice(bank.rows[i])) if rng.random() < config.paraphrase_prob else bank.canonical[i]
            for i in picks
        ]
        loss = _loss(model, video, bank.features[rows], canon_pooled, torch.from_numpy(picks))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    bar.close()
    model.eval()
    report = {
        "steps": step,
        "cpu_seconds": round(time.process_time() - start, 1),
        "wall_seconds": round(time.monotonic() - wall_start, 1),
        "text_feature_cpu_seconds": round(text_seconds, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "train_config": config.to_dict(),
        **evaluate_clip(model, combos, config.eval_clips_per_combo, seed=10_000 + config.seed),
    }
    return model, report


def evaluate_clip(
    model: WorldClip, train_combos: Sequence[Combo], clips_per_combo: int, seed: int
) -> dict[str, Any]:
    """R-Precision (99 distractors) of ``model`` on rendered 16x24x40 clips: all 108 tier-1
    combinations, the training combinations, the default held-out set (they may overlap) and the
    trained combinations of new colors, if any."""
    cfg = model.config
    new = tuple(c for c in train_combos if c.color in NEW_COLORS)
    groups = {"all": ALL_COMBOS, "trained": tuple(train_combos), "default_holdout": DEFAULT_HOLDOUT}
    if new:
        groups["new_colors"] = new
    out: dict[str, Any] = {}
    for name, group in groups.items():
        combos = [c for c in group for _ in range(clips_per_combo)]
        clips = render_batch(combos, frames=cfg.frames, height=cfg.height, width=cfg.width, seed=seed)
        out[f"r_precision_{name}"] = round(r_precision(clips, [c.caption for c in combos], model=model), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: train the world CLIP and write weights, config and ``train_report.json`` to --out."""
    parser = argparse.ArgumentParser(description="Train the in-domain world CLIP (docs/world.md).")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=ClipTrainConfig.steps)
    parser.add_argument("--max-seconds", type=float, default=ClipTrainConfig.max_seconds)
    parser.add_argument("--batch-size", type=int, default=ClipTrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=ClipTrainConfig.seed)
    parser.add_argument(
        "--exclude-default-holdout",
        action="store_true",
        help="leave DEFAULT_HOLDOUT out of training (to measure the CLIP's own generalisation)",
    )
    parser.add_argument(
        "--new-color",
        action="append",
        default=[],
        choices=sorted(NEW_COLORS),
        help="also train on this color's combinations (repeatable; e.g. orange)",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    exclude = tuple(c.as_text() for c in DEFAULT_HOLDOUT) if args.exclude_default_holdout else ()
    config = ClipTrainConfig(
        steps=args.steps,
        max_seconds=args.max_seconds,
        batch_size=args.batch_size,
        seed=args.seed,
        exclude=exclude,
        new_colors=tuple(args.new_color),
    )
    model, report = train_world_clip(config)
    save_world_clip(model, args.out)
    atomic_write_json(args.out / "train_report.json", report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
