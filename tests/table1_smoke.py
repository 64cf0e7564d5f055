"""A tiny original cascade and its distillation, to run Table 1's benchmark (paper sec. 3.4) end to end
on a CPU in the tests.

Random weights, a tiny T5 over the world's vocabulary, every stage distilled for a few steps by the
real loop (:func:`~imagen_video.distill.loop.distill_stage`) on a small synthetic world dataset, and
a random tiny in-domain CLIP. Nothing is downloaded; ``tests/test_distill_table1.py`` passes the
directories to ``benchmarks/table1.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from imagen_video.cascade import Cascade


def build_smoke_cascades(out: Path, *, progress: bool = False) -> tuple[Path, Path, str]:
    """Tiny cascade (random weights, tiny T5), every stage distilled for a few steps on a synthetic
    world dataset, a random tiny world CLIP: returns (original dir, distilled dir, world CLIP dir)."""
    from imagen_video.cascade.presets import tiny_cascade
    from imagen_video.distill import DistillConfig, assemble_distilled_cascade, distill_stage
    from imagen_video.world.clip import WorldClip, WorldClipConfig, save_world_clip
    from imagen_video.world.spec import ALL_COMBOS
    from imagen_video.world.synth import SynthConfig, synthesize
    from tiny_t5 import save_tiny_t5

    words = sorted({w for c in ALL_COMBOS for w in c.caption.split()})
    encoder = f"t5:{save_tiny_t5(out / 't5', words=words)}"
    config = tiny_cascade(text_encoder=encoder, text_dim=32)
    Cascade.from_config(config, generator=torch.Generator().manual_seed(0)).save_pretrained(out / "original")
    data = synthesize(
        out / "data",
        SynthConfig(num_videos=8, frames=16, height=16, width=16, paraphrase_prob=0.0),
        overwrite=True,
        progress=False,
    )
    distill_cfg = DistillConfig(
        guidance_steps=1,
        start_steps=4,
        target_steps=2,
        steps_per_round=1,
        batch_size=2,
        warmup_steps=0,
        checkpoint_every=10,
        keep_checkpoints=1,
    )
    runs, cascade = {}, Cascade.from_pretrained(out / "original")
    for stage in config.stages:
        runs[stage.name] = out / "runs" / stage.name
        if not (runs[stage.name] / "stage").is_dir():
            distill_stage(
                cascade.config.stage(stage.name),
                cascade.models[stage.name],
                data.parent,
                runs[stage.name],
                distill_cfg,
                text_encoder=encoder,
                text_max_length=config.text_max_length,
                text_cache=out / "text_cache",
                progress=progress,
            )
    assemble_distilled_cascade(out / "distilled", out / "original", runs)
    clip_cfg = WorldClipConfig(
        frames=8,
        height=16,
        width=16,
        channels=(8, 16),
        embed_dim=16,
        text_encoder=encoder,
        text_max_length=16,
        text_dim=32,
        text_hidden=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip = WorldClip(clip_cfg)
    return out / "original", out / "distilled", str(save_world_clip(clip, out / "world_clip"))
