"""Dataset manifests: manifest dirs, .jsonl files, captioned folders, and their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_video.data.manifest import DatasetError, load_records


def _npz(path: Path, frames: int, *, fps: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if fps is None else {"fps": np.float64(fps)}
    np.savez(path, frames=np.zeros((frames, 4, 6, 3), np.uint8), **extra)
    return path


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path)
    return path


def _write_manifest(folder: Path, entries: list[object]) -> Path:
    lines = [e if isinstance(e, str) else json.dumps(e) for e in entries]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_manifest_directory_resolves_media_and_keeps_fields(tmp_path: Path) -> None:
    _npz(tmp_path / "videos" / "a.npz", 5)
    _png(tmp_path / "images" / "b.png")
    outside = _npz(tmp_path.parent / f"{tmp_path.name}_abs.npz", 3)
    _write_manifest(
        tmp_path,
        [
            {
                "media": "videos/a.npz",
                "kind": "video",
                "caption": "a red ball",
                "fps": 8,
                "attributes": {"color": "red"},
            },
            "",  # blank lines are allowed
            {"media": "images/b.png", "kind": "image", "caption": "a cat"},
            {"media": str(outside), "kind": "video", "caption": "absolute", "fps": 2.5, "extra_key": 1},
        ],
    )
    records = load_records(tmp_path)
    assert [r.media for r in records] == [
        (tmp_path / "videos" / "a.npz").resolve(),
        (tmp_path / "images" / "b.png").resolve(),
        outside.resolve(),
    ]
    assert [r.kind for r in records] == ["video", "image", "video"]
    assert [r.caption for r in records] == ["a red ball", "a cat", "absolute"]
    assert [r.fps for r in records] == [8.0, None, 2.5]
    assert isinstance(records[0].fps, float)
    assert records[0].attributes == {"color": "red"} and records[1].attributes == {}
    # the same manifest addressed as a .jsonl file gives the same records
    assert load_records(tmp_path / "manifest.jsonl") == records


def test_caption_folder_pairs_media_with_txt(tmp_path: Path) -> None:
    _npz(tmp_path / "clip.npz", 6, fps=12.0)  # stores its own fps
    _npz(tmp_path / "still.npz", 1)  # one frame: an image
    _png(tmp_path / "photo.png")
    _png(tmp_path / "frames" / "0001.png")
    _png(tmp_path / "frames" / "0002.png")
    (tmp_path / "notes.md").write_text("not media")
    for stem, caption in [
        ("clip", "a clip\n"),
        ("still", "a still"),
        ("photo", " a photo "),
        ("frames", "walk"),
    ]:
        (tmp_path / f"{stem}.txt").write_text(caption, encoding="utf-8")
    records = {r.media.name: r for r in load_records(tmp_path, default_fps=24)}
    assert set(records) == {"clip.npz", "still.npz", "photo.png", "frames"}
    assert (records["clip.npz"].kind, records["clip.npz"].fps, records["clip.npz"].caption) == (
        "video",
        None,
        "a clip",
    )
    assert (records["still.npz"].kind, records["still.npz"].fps) == ("image", None)
    assert (records["photo.png"].kind, records["photo.png"].caption) == ("image", "a photo")
    assert (records["frames"].kind, records["frames"].fps) == ("video", 24.0)


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(DatasetError) as info:
        load_records(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert _error(missing) == f"dataset path does not exist: {missing}"


def test_empty_datasets_are_errors(tmp_path: Path) -> None:
    empty_manifest = tmp_path / "m"
    empty_manifest.mkdir()
    _write_manifest(empty_manifest, ["", "   "])
    assert "empty dataset" in _error(empty_manifest) and str(empty_manifest) in _error(empty_manifest)
    empty_folder = tmp_path / "f"
    empty_folder.mkdir()
    (empty_folder / "readme.md").write_text("hello")
    assert _error(empty_folder) == f"empty dataset (no records): {empty_folder}"


def test_caption_without_media_and_media_without_caption(tmp_path: Path) -> None:
    _npz(tmp_path / "a.npz", 4, fps=8.0)
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "orphan.txt").write_text("no video for me")
    assert _error(tmp_path) == f"caption file without a media file: {tmp_path / 'orphan.txt'}"
    (tmp_path / "orphan.txt").unlink()
    _png(tmp_path / "b.png")
    assert _error(tmp_path).startswith(f"media without a caption file (b.txt): {tmp_path / 'b.png'}; add one")


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    _npz(tmp_path / "a.npz", 4)
    good = {"media": "a.npz", "kind": "video", "caption": "a", "fps": 8}
    _write_manifest(tmp_path, [good, good, '{"media": "a.npz", "kind": '])
    message = _error(tmp_path)
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path / 'manifest.jsonl'))} line 3: invalid JSON \(.+\)", message
    )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"media": "a.npz", "kind": "audio", "caption": "a"}, "kind 'audio' not in ('video', 'image')"),
        ({"media": "a.npz", "kind": "video"}, "'caption' must be a string, got None"),
        ({"media": "a.npz", "kind": "video", "caption": "a", "fps": -1}, "'fps' must be a positive number"),
        (
            {"media": "a.npz", "kind": "video", "caption": "a", "fps": 8, "attributes": [1]},
            "'attributes' must be",
        ),
        ({"media": "gone.mp4", "kind": "video", "caption": "a"}, "media file does not exist"),
        ({"media": "a.npz", "kind": "video", "caption": "a"}, "has no frame rate"),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_invalid_records_name_line_and_problem(tmp_path: Path, entry: object, expected: str) -> None:
    _npz(tmp_path / "a.npz", 4)
    _write_manifest(tmp_path, [{"media": "a.npz", "kind": "image", "caption": "ok"}, entry])
    message = _error(tmp_path)
    assert message.startswith(f"{tmp_path / 'manifest.jsonl'} line 2: ") and expected in message


def test_default_fps_fills_videos_without_a_stored_rate(tmp_path: Path) -> None:
    _npz(tmp_path / "a.npz", 4)
    _write_manifest(tmp_path, [{"media": "a.npz", "kind": "video", "caption": "a"}])
    assert load_records(tmp_path, default_fps=6)[0].fps == 6.0


def test_non_jsonl_file_is_rejected(tmp_path: Path) -> None:
    path = _png(tmp_path / "x.png")
    assert _error(path) == f"dataset file must be a .jsonl manifest, got: {path}"
