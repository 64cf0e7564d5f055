"""Verified weights (docs/reliability.md): a changed byte, NaN weights, a wrong dtype or a malformed
``cascade.json`` make `generate` fail before sampling with one line naming the file or tensor;
``--no-verify`` skips only the sha256; the shipped cascades record and match their hashes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from rel_support import assert_one_line, generate_argv

from imagen_video.cascade.registry import SHIPPED_CASCADES, shipped_cascade_dir
from imagen_video.cascade.stage_io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_stage,
    read_stage_config,
    recorded_weights,
    save_stage,
)
from imagen_video.cli import main
from imagen_video.integrity import file_sha256
from imagen_video.models import VideoUNet


@pytest.fixture
def cascade(tiny_cascade: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny cascade to damage."""
    return Path(shutil.copytree(tiny_cascade, tmp_path / "cascade"))


def _generate(capsys: pytest.CaptureFixture[str], model: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(generate_argv(model, "--seed", "0", "--quiet", "-o", str(out), *extra))
    return code, capsys.readouterr().err


def test_a_flipped_bit_in_a_stage_is_refused_and_no_verify_skips_the_hash(
    cascade: Path, tmp_path: Path, capsys
) -> None:
    weights = cascade / "tsr" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # the low bit of the last float's mantissa: still a finite weight
    weights.write_bytes(bytes(data))
    out = tmp_path / "video.mp4"
    code, err = _generate(capsys, cascade, out)
    assert code == 2
    assert_one_line(err, "stage 'tsr'", str(weights), "does not match its recorded sha256")
    assert not out.exists()
    code, err = _generate(capsys, cascade, out, "--no-verify")
    assert code == 0, err
    assert out.stat().st_size > 0


def test_nan_weights_are_refused_before_any_stage_runs(
    cascade: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, model = load_stage(cascade / "ssr")
    with torch.no_grad():
        next(iter(model.parameters())).view(-1)[0] = float("nan")
    save_stage(cascade / "ssr", config, model)  # a correct hash of bad weights
    monkeypatch.setattr("imagen_video.cascade.runner.Cascade.generate", _must_not_sample)
    code, err = _generate(capsys, cascade, tmp_path / "video.mp4")
    assert code == 2
    name = next(iter(model.state_dict()))
    assert_one_line(err, "stage 'ssr'", f"tensor {name!r}", "1 NaN or infinite value(s)")


def _must_not_sample(*args: object, **kwargs: object) -> None:
    raise AssertionError("sampling started although a stage's weights are bad")


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16])
def test_weights_of_another_dtype_are_not_cast_silently(
    cascade: Path, tmp_path: Path, capsys, dtype: torch.dtype
) -> None:
    from safetensors.torch import save_file

    folder = cascade / "base"
    unet = VideoUNet(read_stage_config(folder).unet)
    state = {k: v.to(dtype).contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["weights_sha256"] = file_sha256(folder / WEIGHTS_FILE)  # the hash agrees, the dtype does not
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    code, err = _generate(capsys, cascade, tmp_path / "video.mp4")
    assert code == 2
    assert_one_line(err, "stage 'base'", f"is {dtype}, expected torch.float32")


def test_cascade_json_with_a_null_stage_is_one_line(cascade: Path, tmp_path: Path, capsys) -> None:
    manifest = json.loads((cascade / "cascade.json").read_text())
    manifest["config"]["stages"][1] = None
    (cascade / "cascade.json").write_text(json.dumps(manifest))
    code, err = _generate(capsys, cascade, tmp_path / "video.mp4")
    assert code == 2
    assert_one_line(err, "cascade.json", "stages[1]: expected a JSON object (StageConfig), got null")


@pytest.mark.parametrize("name", sorted(SHIPPED_CASCADES))
def test_shipped_cascades_record_and_match_their_hashes(name: str) -> None:
    for folder in sorted(p for p in shipped_cascade_dir(name).iterdir() if p.is_dir()):
        digest, dtypes = recorded_weights(folder, folder.name)
        assert digest == file_sha256(folder / WEIGHTS_FILE)
        assert len(dtypes) == 1


def test_written_weights_get_the_umask_mode(tmp_path: Path) -> None:
    import os

    from imagen_video.cascade.presets import get_cascade_preset

    stage = get_cascade_preset("tiny").stages[0]
    old = os.umask(0o022)
    try:
        save_stage(tmp_path / "base", stage, VideoUNet(stage.unet))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "base").iterdir()}
    assert modes == {CONFIG_FILE: 0o644, WEIGHTS_FILE: 0o644}
