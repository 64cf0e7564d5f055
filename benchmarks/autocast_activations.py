"""Check the memory model's bf16 rule against a trace under bf16 autocast, for any paper stage and width.

The memory model (imagen_video.bench.memory) counts every float activation at 2 bytes under bf16. Here
the stage's forward runs under CPU bf16 autocast on fake tensors (torch's FakeTensorMode: real dtypes
and dispatch, no memory), and the tensors autograd saves are summed, deduplicated by storage. Autocast's
bf16 copies of the weights, which the model counts apart as 2 bytes per parameter, are subtracted.

    python benchmarks/autocast_activations.py --stage base --width-scale 1.0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from unittest import mock

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from imagen_video.bench.memory import activation_profile
from imagen_video.bench.stage import scale_unet, step_shape
from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.models import VideoUNet


def autocast_saved_bytes(config, shape: tuple[int, int, int], tokens: int) -> tuple[int, int]:
    """(saved bytes under bf16 autocast at batch 1, parameters) of ``config`` on fake tensors."""
    config = dataclasses.replace(config, channels_last=False)  # fake parameters keep their layout
    # The U-Net's input check reads the text mask's values, which fake tensors do not have; it is
    # skipped as it is under torch.compile.
    with FakeTensorMode(), mock.patch("torch.compiler.is_compiling", lambda: True):
        net = VideoUNet(config).train()
        args = [torch.ones(1, config.in_channels, *shape), torch.ones(1)]
        args += [torch.ones(1, tokens, config.text.dim), torch.ones(1, tokens, dtype=torch.bool)]
        kwargs = {}
        if config.is_super_resolution:
            kwargs = {"cond_video": torch.ones(1, config.cond_channels, *shape), "aug_logsnr": torch.ones(1)}
        seen = {p.untyped_storage()._cdata for p in net.parameters()}
        total = [0]

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage._cdata not in seen:
                seen.add(storage._cdata)
                total[0] += storage.nbytes()
            return tensor

        with (
            torch.autocast("cpu", dtype=torch.bfloat16),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        ):
            net(*args, **kwargs)
        return total[0], sum(p.numel() for p in net.parameters())


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line: the traced bytes, the weight copies, and the model's bf16 prediction."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--stage", default="base")
    parser.add_argument("--width-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    cascade = get_cascade_preset(args.preset)
    stage = cascade.stage(args.stage)
    config = scale_unet(stage.unet, args.width_scale)
    shape = step_shape(stage, "train")
    saved, params = autocast_saved_bytes(config, shape, cascade.text_max_length)
    model = activation_profile(
        config, shape, text_tokens=cascade.text_max_length, precision="bf16"
    ).saved_bytes
    traced = saved - 2 * params
    print(json.dumps({"stage": args.stage, "width_scale": args.width_scale, "autocast_saved_bytes": saved,
                      "weight_copies_bytes": 2 * params, "autocast_activations_bytes": traced,
                      "model_bf16_bytes": model, "model_over_traced": model / traced}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
