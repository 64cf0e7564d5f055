"""The reference feature networks of FID, FVD and CLIP score, and a check that a given file is one.

A Frechet distance is only comparable with published numbers when it is computed with the same
network (paper sec. 3 evaluates FID on frames, FVD and frame-wise CLIP scores; docs/evaluation.md
names the files). :func:`check_reference` compares a file's SHA-256 with the known reference and
says, in one line, whether the number it gives will compare.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ReferenceWeights:
    """One published reference file: what it is for, its file name, source, size and SHA-256."""

    metric: str
    option: str
    file_name: str
    source: str
    size_bytes: int | None
    sha256: str | None


REFERENCE_WEIGHTS: dict[str, ReferenceWeights] = {
    "fid": ReferenceWeights(
        metric="FID",
        option="--inception-weights",
        file_name="inception-2015-12-05.pt",
        source="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        size_bytes=95_607_719,
        sha256="f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
    ),
    "fvd": ReferenceWeights(
        metric="FVD",
        option="--i3d-weights",
        file_name="i3d_torchscript.pt",
        source="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        size_bytes=51_235_320,
        sha256="bec6519f66ea534e953026b4ae2c65553c17bf105611c746d904657e5860a5e2",
    ),
}
"""FID: the TensorFlow FID Inception (2015-12-05) as TorchScript, from StyleGAN2-ADA. FVD: the I3D
trained on Kinetics-400 of the FVD reference, as TorchScript, from StyleGAN-V."""


def check_reference(metric: str, path: str | os.PathLike[str], sha256: str) -> str:
    """One line saying whether the file at ``path`` (with SHA-256 ``sha256``) is the reference
    network of ``metric`` ("fid" or "fvd"), and so whether its numbers compare with published ones."""
    reference = REFERENCE_WEIGHTS[metric]
    name = Path(path).name
    if reference.sha256 is not None and sha256 == reference.sha256:
        return f"{reference.option} {name} is the reference {reference.file_name} (sha256 matches)"
    return (
        f"warning: {reference.option} {name} (sha256 {sha256[:16]}...) is not the reference "
        f"{reference.file_name} (sha256 {str(reference.sha256)[:16]}...): {reference.metric} values "
        "computed with it will not compare with published ones (see docs/evaluation.md)"
    )
