"""Dataset inputs and outputs (docs/reliability.md): a manifest's relative media path stays inside the
dataset root, fps is a finite positive number, and `data synth` checks its output directory first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rel_support import assert_one_line

from imagen_video.cli import main
from imagen_video.data.manifest import DatasetError, load_records


def _manifest(root: Path, **fields: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    record = {"media": "clip.npz", "kind": "video", "caption": "a red circle", "fps": 8.0, **fields}
    (root / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    return root


@pytest.mark.parametrize("media", ["../outside.npz", "sub/../../outside.npz"])
def test_a_relative_media_path_may_not_leave_the_dataset_root(tmp_path: Path, media: str) -> None:
    (tmp_path / "outside.npz").write_bytes(b"")
    root = _manifest(tmp_path / "data", media=media)
    with pytest.raises(DatasetError, match=r"line 1: media path .* leaves the dataset root"):
        load_records(root)


def test_an_absolute_media_path_and_one_inside_the_root_still_load(tmp_path: Path) -> None:
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "clip.npz").write_bytes(b"")
    root = _manifest(tmp_path / "data", media="sub/../clip.npz")
    assert load_records(root)[0].media == (tmp_path / "data" / "clip.npz").resolve()
    root = _manifest(tmp_path / "data", media=str(tmp_path / "data" / "clip.npz"))
    assert load_records(root)[0].media == (tmp_path / "data" / "clip.npz").resolve()


def test_a_non_finite_fps_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "clip.npz").write_bytes(b"")
    (root / "manifest.jsonl").write_text(
        '{"media": "clip.npz", "kind": "video", "caption": "x", "fps": Infinity}\n'
    )
    with pytest.raises(DatasetError, match="'fps' must be a positive number, got inf"):
        load_records(root)


def test_data_synth_into_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "out").write_text("mine")
    assert main(["data", "synth", "--out", str(tmp_path / "out"), "--num", "1", "--quiet"]) == 2
    assert_one_line(capsys.readouterr().err, "--out", "exists and is not a directory")
    assert (tmp_path / "out").read_text() == "mine"
