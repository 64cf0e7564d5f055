"""Data-parallel training of the tiny base stage, shared by the FSDP equivalence tests.

Run under ``torchrun --nproc_per_node N`` (``python tests/fsdp_equivalence.py OUT``) it trains with the
``train --fsdp`` wrapping (:func:`imagen_video.train.distributed.wrap_model`), each rank on its slice of
the global batch with its own noise generator, and rank 0 writes the losses and final weights. In one
process :func:`reference_run` computes the same optimisation without sharding: the mean of the ranks'
losses, whose gradient is what the ranks' averaged gradients are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.models import VideoUNet
from imagen_video.text.base import TextEmbeddings

STEPS = 3
GLOBAL_BATCH = 2
LR = 1e-3


def stage() -> object:
    """The tiny cascade's base stage (two levels of 8 and 16 channels)."""
    return get_cascade_preset("tiny").stage("base")


def fresh_model() -> VideoUNet:
    """The seeded initial network every run starts from."""
    return VideoUNet(stage().unet, generator=torch.Generator().manual_seed(0))


def rank_batch(step: int, rank: int, world: int) -> tuple[dict[str, torch.Tensor], TextEmbeddings]:
    """Rank ``rank``'s slice of the global batch of ``step`` (clips in [-1, 1] and text embeddings)."""
    cfg = stage()
    g = torch.Generator().manual_seed(1000 + step)
    video = torch.rand(GLOBAL_BATCH, 3, cfg.frames, cfg.height, cfg.width, generator=g) * 2 - 1
    tokens = torch.randn(GLOBAL_BATCH, 5, cfg.unet.text.dim, generator=g)
    per = GLOBAL_BATCH // world
    rows = slice(rank * per, (rank + 1) * per)
    mask = torch.ones(per, 5, dtype=torch.bool)
    return {"video": video[rows]}, TextEmbeddings(tokens[rows], mask, [False] * per)


def noise_generator(step: int, rank: int) -> torch.Generator:
    """The noise generator of ``rank`` at ``step`` (diffusion time, eps, text dropout)."""
    return torch.Generator().manual_seed(10_000 * step + rank)


def reference_run(world: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Single-process AdamW on the mean of the ``world`` ranks' losses: losses per step, final weights."""
    from imagen_video.train.step import stage_loss

    model = fresh_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for rank in range(world):
            batch, text = rank_batch(step, rank, world)
            loss = stage_loss(model, batch, text, stage(), generator=noise_generator(step, rank)).mean()
            (loss / world).backward()
            total += float(loss) / world
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(total)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _main(out: Path) -> int:
    """torchrun entry: sharded training, then rank 0 writes ``losses.json`` and ``weights.pt``."""
    from imagen_video.train import distributed as dist_utils
    from imagen_video.train.fsdp import make_optimizer
    from imagen_video.train.state import model_tensors
    from imagen_video.train.step import train_step

    ctx = dist_utils.init_distributed("cpu")
    model = dist_utils.wrap_model(fresh_model(), ctx, fsdp=True)
    optimizer = make_optimizer(model.parameters(), "adamw", lr=LR)
    losses = []
    for step in range(STEPS):
        batch, text = rank_batch(step, ctx.rank, ctx.world_size)
        result = train_step(
            model, batch, text, stage(), optimizer=optimizer,
            generator=noise_generator(step, ctx.rank), grad_clip=1.0,
        )  # fmt: skip
        losses.append(dist_utils.mean_over_ranks([result["loss"]], ctx)[0])
    weights = model_tensors(model)
    if ctx.is_main:
        (out / "losses.json").write_text(json.dumps(losses))
        torch.save(weights, out / "weights.pt")
    dist_utils.shutdown_distributed(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1])))
