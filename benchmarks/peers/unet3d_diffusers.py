"""diffusers' ``UNet3DConditionModel`` on the reference base workload (see common.py); one JSON line.

    $PEER_VENV/bin/python benchmarks/peers/unet3d_diffusers.py [--device cuda] [--batch 2]
"""

from __future__ import annotations

import torch
from common import autocast, parse_args, report
from diffusers import UNet3DConditionModel


def main() -> None:
    """Build the peer at the workload's width, time a train step and a guided step, print the result."""
    args = parse_args(__doc__.splitlines()[0])
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = UNet3DConditionModel(
        sample_size=None,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D"),
        block_out_channels=(64, 128, 256),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=32,
        norm_num_groups=32,
    ).to(device)
    x = torch.randn(args.batch, 3, args.frames, args.height, args.width, device=device)
    t = torch.randint(0, 1000, (args.batch,), device=device)
    text = torch.randn(args.batch, args.tokens, 768, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def train_step() -> None:
        with autocast(device):
            loss = (net(x, t, encoder_hidden_states=text).sample.float() - x).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sample_step() -> None:  # conditional and unconditional (zero text) halves in one batch
        with torch.no_grad(), autocast(device):
            net(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=torch.cat([text, 0 * text]))

    report(net, train_step, sample_step, args, "diffusers")


if __name__ == "__main__":
    main()
