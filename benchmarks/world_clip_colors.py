"""Which color words the shipped world CLIP tells apart: for a rendered clip of every shape and motion
of each palette color, the caption it ranks first among the captions that differ only in the color
word (mean frame-text cosine, paper sec. 3.4's CLIP features). Orange, a color outside the CLIP's
training data, shows whether the CLIP can score a fine-tuned new color (docs/finetuning.md).

    python benchmarks/world_clip_colors.py [--seed 3] [--world-clip DIR]
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter

import torch
import torch.nn.functional as F

from imagen_video.world.clip import embed_videos, load_world_clip
from imagen_video.world.render import render_clip
from imagen_video.world.spec import MOTIONS, PALETTE, SHAPES, Combo


def color_picks(color: str, seed: int, directory: str | None = None) -> Counter:
    """How often each palette color's caption ranks first for the 18 clips of ``color`` (the shipped
    world CLIP, or the one in ``directory``)."""
    model = load_world_clip(directory)
    combos = [Combo(color, s, m) for s, m in itertools.product(SHAPES, MOTIONS)]
    clips = [torch.from_numpy(render_clip(c, frames=16, height=24, width=40, seed=seed)[0]) for c in combos]
    frames = embed_videos(torch.stack(clips).permute(0, 4, 1, 2, 3).float() / 255, model=model)  # (B, T, D)
    picks: Counter = Counter()
    for clip_frames, combo in zip(frames, combos, strict=True):
        prompts = [Combo(name, combo.shape, combo.motion).caption for name in PALETTE]
        text = F.normalize(model.embed_prompts(prompts), dim=-1)  # (7, D)
        cosine = (F.normalize(clip_frames, dim=-1) @ text.T).mean(0)  # (7,)
        picks[list(PALETTE)[int(cosine.argmax())]] += 1
    return picks


def main() -> None:
    """Print one line per palette color: how many of its 18 clips the CLIP gives the right color."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=3, help="render seed (default 3)")
    p.add_argument("--world-clip", metavar="DIR", help="a world CLIP directory (default: the shipped one)")
    args = p.parse_args()
    torch.set_num_threads(1)
    for color in PALETTE:
        picks = color_picks(color, args.seed, args.world_clip)
        print(f"{color:8s} right color {picks[color]:2d}/18; ranked first: {dict(picks.most_common())}")


if __name__ == "__main__":
    main()
