"""Frame FID: the Fréchet Inception Distance over all frames of all videos (paper sec. 3, Fig. 13).

Features come from a local TorchScript Inception injected into
``torchmetrics.image.fid.FrechetInceptionDistance(feature=module)`` (torchmetrics' own Inception
needs torch-fidelity and a download; neither is used). Input handling by convention (see
:mod:`imagen_video.metrics.networks`):

- ``stylegan`` (e.g. StyleGAN2-ADA / clean-fid's ``inception-2015-12-05.pt``, whose ``forward``
  takes ``return_features``): frames are quantised to uint8 (N, 3, H, W) at their own resolution and
  the network itself resizes to 299x299 (TF1 bilinear) and maps [0, 255] to [-1, 1], exactly as
  StyleGAN2-ADA computes FID; features are the 2048-d pool3 activations.
- ``plain`` (a module called as ``module(x) -> (N, D)``): frames are resized to 299x299 with TF1
  bilinear sampling (:func:`resize_bilinear_tf1`) and scaled to [-1, 1] (the Inception graph's
  input range) before the call.

Inception state dicts (pytorch-fid / torch-fidelity ``pt_inception-2015-12-05-6726825d.pth``) are not
loaded: they need torchvision's Inception; export such a network with ``torch.jit.script`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from imagen_video.metrics.base import Features, MetricResult, MetricsConfig, ReferenceFeatures, video_sizes
from imagen_video.metrics.networks import FeatureNetwork, load_feature_network, resize_bilinear_tf1

INCEPTION_SIZE = 299


class InceptionFrameFeatures(nn.Module):
    """Adapter for torchmetrics: float frames (N, 3, H, W) in [0, 1] -> (N, D) Inception features."""

    def __init__(self, network: FeatureNetwork) -> None:
        super().__init__()
        self.net = network.module
        self.call_kwargs = dict(network.call_kwargs)
        device = next(iter(self.net.parameters()), torch.zeros(())).device
        with torch.no_grad():
            probe = self(torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE, device=device))
        self.num_features = int(probe.shape[-1])  # read by torchmetrics (no dummy forward of its own)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, 3, H, W) float in [0, 1] -> (N, D) float features."""
        if self.call_kwargs:  # stylegan convention: uint8 at native size, the network resizes
            x = (frames * 255).round().clamp(0, 255).to(torch.uint8)
        else:
            x = resize_bilinear_tf1(frames, (INCEPTION_SIZE, INCEPTION_SIZE)) * 2 - 1
        return self.net(x, **self.call_kwargs).float().reshape(frames.shape[0], -1)


def load_inception(path: str, device: str | torch.device = "cpu") -> FeatureNetwork:
    """Load the FID Inception from a local TorchScript file (state dicts are refused, see module doc)."""
    network = load_feature_network(path, device=device)
    if network.format != "torchscript":
        raise ValueError(
            f"--inception-weights {path} is a {network.architecture} state dict; FID needs a TorchScript "
            "Inception (e.g. inception-2015-12-05.pt of StyleGAN2-ADA / clean-fid)"
        )
    return network


def _frames(videos: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N * T, C, H, W): every frame is one image of the FID sample."""
    return videos.transpose(1, 2).reshape(-1, videos.shape[1], *videos.shape[-2:])


class _PrecomputedFeatures(nn.Module):
    """Identity "network" for torchmetrics: frame features (N, D) extracted earlier pass through."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # read by torchmetrics (no dummy forward of its own)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, D) unchanged."""
        return features


def _shape_text(features: Features) -> str:
    n = features["frames"].shape[0]
    t, h, w = features["size"][0].tolist() if n else (0, 0, 0)
    return f"({n}, 3, {t}, {h}, {w})"


class FrameFID:
    """Frame FID (sec. 3): generated frames vs reference frames, through torchmetrics."""

    name = "fid"
    requires_reference = True

    def __init__(
        self, network: FeatureNetwork, *, batch_size: int = 8, device: str | torch.device = "cpu"
    ) -> None:
        try:
            from torchmetrics.image.fid import FrechetInceptionDistance
        except ImportError as err:
            raise ImportError("fid needs torchmetrics: pip install 'imagen-video[metrics]'") from err
        self.metric_class = FrechetInceptionDistance
        self.network, self.batch_size, self.device = network, batch_size, torch.device(device)
        self.frame_features = InceptionFrameFeatures(network)
        self._reference = ReferenceFeatures()

    @torch.no_grad()
    def features(self, videos: torch.Tensor, prompts: Sequence[str] | None, name: str = "videos") -> Features:
        """Inception features ``frames`` (N, T, D) float32 of every frame of ``videos`` (N, 3, T, H, W)
        in [0, 1], in batches of ``batch_size`` videos, and ``size`` (N, 3) = (T, H, W)."""
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(
                f"fid: {name} must be (N, 3, T, H, W) with N*T >= 2 frames, got {tuple(videos.shape)}"
            )
        frames = _frames(videos)  # (N * T, C, H, W)
        step = self.batch_size * videos.shape[2]
        out = [
            self.frame_features(frames[start : start + step].to(self.device)).cpu()
            for start in range(0, frames.shape[0], step)
        ]
        feats = torch.cat(out) if out else torch.zeros(0, self.frame_features.num_features)
        return {"frames": feats.reshape(videos.shape[0], videos.shape[2], -1), "size": video_sizes(videos)}

    def _update(self, metric: nn.Module, features: Features, real: bool) -> int:
        frames = features["frames"]  # (N, T, D)
        flat = frames.reshape(-1, frames.shape[-1])  # (N * T, D), the order of the frames
        step = self.batch_size * frames.shape[1]
        for start in range(0, flat.shape[0], step):
            metric.update(flat[start : start + step].to(self.device), real=real)
        return flat.shape[0]

    def compute_from_features(
        self, features: Features, prompts: Sequence[str], reference: Features | None
    ) -> MetricResult:
        """FID between the frame features of the videos and of the reference (see :meth:`features`)."""
        if reference is None:
            raise ValueError("fid needs a reference video set (--reference DIR)")
        for name, feats in (("videos", features), ("reference", reference)):
            if feats["frames"].shape[0] * feats["frames"].shape[1] < 2:
                raise ValueError(
                    f"fid: {name} must be (N, 3, T, H, W) with N*T >= 2 frames, got {_shape_text(feats)}"
                )
        # normalize=True: torchmetrics hands the features to the identity module unchanged; the ranks
        # of a job gather their features themselves, so torchmetrics must not sync its states.
        metric = self.metric_class(
            feature=_PrecomputedFeatures(self.frame_features.num_features),
            normalize=True,
            sync_on_compute=False,
        ).to(self.device)
        reference_frames = self._update(metric, reference, real=True)
        generated = self._update(metric, features, real=False)
        value = float(metric.compute())
        size, ref_size = features["size"][0].tolist(), reference["size"][0].tolist()
        details = {
            "network": self.network.describe(),
            "feature_dim": self.frame_features.num_features,
            "input": f"{INCEPTION_SIZE}x{INCEPTION_SIZE}",
            "generated_frames": generated,
            "reference_frames": reference_frames,
            "generated_resolution": f"{size[1]}x{size[2]}",
            "reference_resolution": f"{ref_size[1]}x{ref_size[2]}",
        }
        return MetricResult({"fid": value}, details)

    def compute(
        self, videos: torch.Tensor, prompts: Sequence[str], reference: torch.Tensor | None
    ) -> MetricResult:
        """FID between all frames of ``videos`` and of ``reference`` (each (N, C, T, H, W) in [0, 1]);
        the reference features are kept across calls with the same reference tensor."""
        if reference is None:
            raise ValueError("fid needs a reference video set (--reference DIR)")
        ref = self._reference.get(reference, lambda r: self.features(r, None, "reference"))
        return self.compute_from_features(self.features(videos, prompts), prompts, ref)


def build_fid(config: MetricsConfig) -> FrameFID:
    """Registry factory: frame FID from ``config.inception_weights``."""
    if config.inception_weights is None:
        raise ValueError(
            "fid needs --inception-weights PATH (a TorchScript Inception; nothing is downloaded)"
        )
    network = load_inception(config.inception_weights, config.device)
    return FrameFID(network, batch_size=config.batch_size, device=config.device)
