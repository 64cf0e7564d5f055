"""Dataset manifests: the on-disk video-text / image-text format.

A dataset is one of

* a directory holding ``manifest.jsonl``, one JSON object per line::

      {"media": "<path relative to the manifest dir>", "kind": "video" | "image", "caption": str,
       "fps": float (videos), "attributes": {...optional true attributes...}}

* a path to such a ``.jsonl`` file (media paths are relative to the file's directory), or
* a plain folder of media files (or frame sub-folders) with same-named ``.txt`` caption files
  (``clip.mp4`` + ``clip.txt``, ``photo.jpg`` + ``photo.txt``, ``frames_dir/`` + ``frames_dir.txt``).

Loading only reads text and file metadata; media is decoded later (:mod:`imagen_video.data.decode`).
Every problem with the dataset itself (missing path, empty dataset, caption without media, bad JSON,
missing media file) raises :class:`DatasetError` at once with a one-line message naming the path;
corrupt media *contents* are the dataset's business at training time (skipped and counted).
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "KINDS",
    "MANIFEST_NAME",
    "VIDEO_EXTENSIONS",
    "DatasetError",
    "MediaRecord",
    "load_records",
]

MANIFEST_NAME = "manifest.jsonl"
KINDS = ("video", "image")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_ARRAY_EXTENSIONS = (".npz",)


class DatasetError(ValueError):
    """A dataset path, manifest or folder is unusable; the message names the path and the problem."""


@dataclasses.dataclass(frozen=True)
class MediaRecord:
    """One video-text or image-text pair of a dataset.

    ``media`` is resolved (absolute); ``fps`` is the manifest's frame rate, or None when the
    decoder must read it from the container; ``attributes`` are optional ground-truth labels.
    """

    media: Path
    kind: str
    caption: str
    fps: float | None = None
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def load_records(
    path: str | Path,
    *,
    default_fps: float | None = None,
    skip_uncaptioned: bool = False,
    uncaptioned: list[Path] | None = None,
) -> list[MediaRecord]:
    """Read a dataset (manifest directory, ``.jsonl`` file, or captioned media folder) into records.

    ``default_fps`` is used for videos whose frame rate is neither in the manifest nor stored in the
    media (``.npz`` arrays without an ``fps`` entry, frame folders); without it such a record is an error.
    Paper sec. 3: the loaders then resize these records by antialiased resizing and frame skipping.
    ``skip_uncaptioned``: in a captioned folder, media without a ``.txt`` caption is left out (and
    appended to ``uncaptioned`` when given) instead of being an error.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset path does not exist: {root}")
    if root.is_file():
        if root.suffix != ".jsonl":
            raise DatasetError(f"dataset file must be a .jsonl manifest, got: {root}")
        records = _read_manifest(root, default_fps)
    elif (root / MANIFEST_NAME).is_file():
        records = _read_manifest(root / MANIFEST_NAME, default_fps)
    else:
        records = _read_caption_folder(root, default_fps, skip_uncaptioned, uncaptioned)
    if not records:
        raise DatasetError(f"empty dataset (no records): {root}")
    return records


def _read_manifest(manifest: Path, default_fps: float | None) -> list[MediaRecord]:
    """Parse ``manifest.jsonl`` line by line; blank lines are allowed, anything else must be a record."""
    records = []
    with open(manifest, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{manifest} line {line_no}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
            records.append(_record_from_entry(entry, manifest.parent, where, default_fps))
    return records


def _record_from_entry(entry: Any, base: Path, where: str, default_fps: float | None) -> MediaRecord:
    """Validate one manifest object and turn it into a :class:`MediaRecord`."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    for key, kind in (("media", str), ("kind", str), ("caption", str)):
        if not isinstance(entry.get(key), kind):
            raise DatasetError(f"{where}: '{key}' must be a string, got {entry.get(key)!r}")
    if entry["kind"] not in KINDS:
        raise DatasetError(f"{where}: kind {entry['kind']!r} not in {KINDS}")
    fps = entry.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0):
        raise DatasetError(f"{where}: 'fps' must be a positive number, got {fps!r}")
    attributes = entry.get("attributes", {})
    if not isinstance(attributes, dict):
        raise DatasetError(f"{where}: 'attributes' must be an object, got {type(attributes).__name__}")
    media = (base / entry["media"]).resolve()
    if not media.exists():
        raise DatasetError(f"{where}: media file does not exist: {media}")
    fps = float(fps) if fps is not None else None
    return MediaRecord(
        media,
        entry["kind"],
        entry["caption"],
        _resolve_fps(media, entry["kind"], fps, default_fps, where),
        attributes,
    )


def _read_caption_folder(
    folder: Path, default_fps: float | None, skip_uncaptioned: bool, uncaptioned: list[Path] | None
) -> list[MediaRecord]:
    """Pair media files / frame sub-folders with same-named ``.txt`` captions (strict both ways,
    unless ``skip_uncaptioned`` leaves media without a caption out)."""
    media_by_stem: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not _is_media(entry):
            continue
        if entry.stem in media_by_stem:
            raise DatasetError(
                f"two media entries share the caption name {entry.stem}.txt: "
                f"{media_by_stem[entry.stem]} and {entry}"
            )
        media_by_stem[entry.stem] = entry
    captions = {p.stem: p for p in sorted(folder.glob("*.txt")) if not p.name.startswith(".")}
    for stem, caption_file in captions.items():
        if stem not in media_by_stem:
            raise DatasetError(f"caption file without a media file: {caption_file}")
    records = []
    for stem, media in media_by_stem.items():
        if stem not in captions:
            if skip_uncaptioned:
                if uncaptioned is not None:
                    uncaptioned.append(media)
                continue
            raise DatasetError(
                f"media without a caption file ({stem}.txt): {media}; add one, or pass "
                "--skip-uncaptioned to leave such media out"
            )
        caption = captions[stem].read_text(encoding="utf-8").strip()
        kind = _infer_kind(media)
        fps = _resolve_fps(media.resolve(), kind, None, default_fps, str(media))
        records.append(MediaRecord(media.resolve(), kind, caption, fps, {}))
    return records


def _is_media(path: Path) -> bool:
    """A media file by extension, or a directory holding at least one image frame."""
    if path.is_dir():
        return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())
    return path.suffix.lower() in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS + _ARRAY_EXTENSIONS


def _infer_kind(media: Path) -> str:
    """Kind of a captioned-folder entry: image files and single-frame ``.npz`` arrays are images."""
    suffix = media.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    shape = _npz_frames_shape(media) if suffix == ".npz" else None
    return "image" if shape is not None and (len(shape) == 3 or shape[0] == 1) else "video"


def _resolve_fps(
    media: Path, kind: str, fps: float | None, default_fps: float | None, where: str
) -> float | None:
    """Frame rate of a video record: the manifest's, else None where the media stores one, else default_fps.

    An unreadable ``.npz`` is not an error here: it is skipped and counted when decoding fails.
    """
    if kind != "video" or fps is not None:
        return fps
    suffix = media.suffix.lower()
    if media.is_file() and suffix in VIDEO_EXTENSIONS:
        return None
    keys = _npz_keys(media) if suffix == ".npz" else []
    if keys is not None and "fps" in keys:
        return None
    if default_fps is None and keys is not None:
        hint = "give 'fps' in the manifest or default_fps"
        raise DatasetError(f"{where}: video {media} has no frame rate; {hint}")
    return None if default_fps is None else float(default_fps)


def _npz_keys(path: Path) -> list[str] | None:
    """Array names of an ``.npz`` file from its zip directory (no data loaded); None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name.removesuffix(".npy") for name in archive.namelist()]
    except (OSError, zipfile.BadZipFile):
        return None


def _npz_frames_shape(path: Path) -> tuple[int, ...] | None:
    """Shape of the ``frames`` array of an ``.npz`` file from its header only; None if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("frames.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(member)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return tuple(shape)
