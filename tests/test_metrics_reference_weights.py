"""`evaluate` says whether the FID / FVD network files are the published reference ones (their sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagen_video.metrics.reference_weights import REFERENCE_WEIGHTS, check_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"


def test_matching_sha256_is_the_reference() -> None:
    reference = REFERENCE_WEIGHTS["fid"]
    line = check_reference("fid", "/w/inception-2015-12-05.pt", str(reference.sha256))
    name = "inception-2015-12-05.pt"
    assert line == f"--inception-weights {name} is the reference {name} (sha256 matches)"


def test_other_file_will_not_compare() -> None:
    digest = hashlib.sha256(b"a tiny network").hexdigest()
    line = check_reference("fvd", "tiny_i3d.pt", digest)
    assert line.startswith(f"warning: --i3d-weights tiny_i3d.pt (sha256 {digest[:16]}...) is not the")
    assert "FVD values computed with it will not compare with published ones" in line


@pytest.mark.parametrize("metric", sorted(REFERENCE_WEIGHTS))
def test_the_doc_names_each_reference_file(metric: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    reference = REFERENCE_WEIGHTS[metric]
    assert reference.file_name in text and str(reference.sha256) in text
    assert f"{reference.size_bytes:,}" in text and reference.source in text


def test_cli_warns_for_a_non_reference_network(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from imagen_video.cli import main
    from tiny_metric_networks import save_tiny_inception

    weights = save_tiny_inception(tmp_path / "inception-2015-12-05.pt")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red box\na blue box\n")
    for name, seed in (("run", 1), ("reference", 2)):
        (tmp_path / name).mkdir()
        for index in range(2):
            frames = np.random.default_rng([seed, index]).integers(0, 255, (9, 16, 20, 3), dtype=np.uint8)
            np.savez(tmp_path / name / f"{index:02d}.npz", frames=frames)
    argv = ["evaluate", "--prompts", str(prompts), "--videos", str(tmp_path / "run"), "--metrics", "fid"]
    argv += ["--reference", str(tmp_path / "reference"), "--inception-weights", str(weights)]
    assert main([*argv, "--device", "cpu", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: --inception-weights inception-2015-12-05.pt (sha256" in err
    assert "FID values computed with it will not compare with published ones" in err
