"""The U-Net options that keep weights trained with other layouts usable: scaled additive skips
(Imagen's Efficient U-Net) and biased attention output projections."""

from __future__ import annotations

import torch

from imagen_video.models import VideoUNet
from imagen_video.models.presets import tiny_unet


def _inputs(config, seed: int = 0) -> tuple[tuple, dict]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 3, 4, 8, 8, generator=g)
    text = torch.randn(2, 5, config.text.dim, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    return (z, torch.tensor([1.0, -2.0]), text, mask), {}


def test_add_scaled_skips_change_the_function_by_the_scale_only() -> None:
    plain = tiny_unet("base")
    scaled = plain.replace(skip="add_scaled")
    a = VideoUNet(plain, generator=torch.Generator().manual_seed(0))
    b = VideoUNet(scaled, generator=torch.Generator().manual_seed(0))
    b.load_state_dict(a.state_dict())  # same parameters: the option adds none
    args, kw = _inputs(plain)
    assert not torch.allclose(a(*args, **kw), b(*args, **kw))


def test_attention_out_bias_adds_the_bias_to_the_residual() -> None:
    config = tiny_unet("base").replace(attention_out_bias=True)
    net = VideoUNet(config, generator=torch.Generator().manual_seed(0))
    biases = [n for n, _ in net.named_parameters() if n.endswith(("spatial.out.bias", "cross.out.bias"))]
    assert biases, "spatial/cross attention output projections carry a bias when asked"
    args, kw = _inputs(config)
    before = net(*args, **kw)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in biases:
                p.zero_()
    zeroed = net(*args, **kw)
    unbiased = VideoUNet(config.replace(attention_out_bias=False))
    unbiased.load_state_dict({k: v for k, v in net.state_dict().items() if k not in biases})
    torch.testing.assert_close(unbiased(*args, **kw), zeroed)  # a zero bias is the bias-free path
    assert before.shape == zeroed.shape
