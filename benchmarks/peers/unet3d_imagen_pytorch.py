"""imagen-pytorch's ``Unet3D`` on the reference base workload (see common.py); one JSON line.

    $PEER_VENV/bin/python benchmarks/peers/unet3d_imagen_pytorch.py [--device cuda] [--batch 2]

imagen-pytorch reads a T5 config from the Hugging Face hub when imported and imports torchvision for
image output only; both are replaced by local stand-ins first, so the script runs offline and without
torchvision (setup.sh installs the package without it).
"""

from __future__ import annotations

import sys
import types

import torch
from common import autocast, parse_args, report


def _import_unet3d() -> type:
    """``imagen_pytorch.imagen_video.Unet3D`` with the hub lookup and torchvision stubbed out."""
    import datasets  # noqa: F401  (imported before the stub: it probes for torchvision)
    from transformers import T5Config

    T5Config.from_pretrained = classmethod(lambda cls, name, **kw: T5Config(d_model=768))
    vision = types.ModuleType("torchvision")
    vision.transforms = types.ModuleType("torchvision.transforms")
    sys.modules.setdefault("torchvision", vision)
    sys.modules.setdefault("torchvision.transforms", vision.transforms)
    from imagen_pytorch.imagen_video import Unet3D

    return Unet3D


def main() -> None:
    """Build the peer at the workload's width, time a train step and a guided step, print the result."""
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = _import_unet3d()(
        dim=64,
        dim_mults=(1, 2, 4),
        text_embed_dim=768,
        cond_images_channels=0,
        layer_attns=(False, True, True),
        layer_cross_attns=(False, True, True),
    ).to(device)
    x = torch.randn(args.batch, 3, args.frames, args.height, args.width, device=device)
    t = torch.rand(args.batch, device=device)
    text = torch.randn(args.batch, args.tokens, 768, device=device)
    mask = torch.ones(args.batch, args.tokens, dtype=torch.bool, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def train_step() -> None:
        with autocast(device):
            loss = (net(x, t, text_embeds=text, text_mask=mask).float() - x).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sample_step() -> None:  # its guided call: conditional and unconditional passes
        with torch.no_grad(), autocast(device):
            net.forward_with_cond_scale(x, t, text_embeds=text, text_mask=mask, cond_scale=5.0)

    report(net, train_step, sample_step, args, "imagen-pytorch")


if __name__ == "__main__":
    main()
