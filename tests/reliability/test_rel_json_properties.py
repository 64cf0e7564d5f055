"""Property tests over every JSON reader (docs/reliability.md): for any input, the reader returns a
valid object or raises the project's one-line error, never another exception.

Inputs are arbitrary JSON documents and valid documents with one value replaced by arbitrary JSON
(so that deep fields are reached); each reader runs on a file in a temporary directory.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagen_video.cascade.directory import CascadeLoadError, CascadeManifest, read_cascade_json
from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.cascade.stage_io import StageLoadError, read_stage_config
from imagen_video.data.manifest import DatasetError, load_records
from imagen_video.text.cache import EmbeddingCache
from imagen_video.train.config import TrainConfig, read_train_config

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = get_cascade_preset("tiny")


def _paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON document."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


def _replace(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def mutations(valid: Any) -> st.SearchStrategy[Any]:
    """``valid`` with the value at one key path replaced by arbitrary JSON, or arbitrary JSON."""
    paths = _paths(valid)
    mutated = st.builds(_replace, st.just(valid), st.sampled_from(paths), JSON)
    return mutated | JSON


def _one_line(err: Exception) -> None:
    assert str(err) and "\n" not in str(err), repr(err)


def _write(directory: Path, name: str, document: Any) -> Path:
    path = directory / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@SETTINGS
@given(mutations(CascadeManifest(TINY).to_dict()))
def test_cascade_json(document: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), "cascade.json", document)
        try:
            read_cascade_json(tmp)
        except CascadeLoadError as err:
            _one_line(err)


@SETTINGS
@given(mutations(TINY.stages[1].to_dict()))
def test_stage_config_json(document: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tsr"
        folder.mkdir()
        _write(folder, "config.json", document)
        try:
            read_stage_config(folder)
        except StageLoadError as err:
            _one_line(err)


@SETTINGS
@given(mutations(TrainConfig().to_dict()))
def test_train_config_json(document: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "train.json", document)
        try:
            read_train_config(path)
        except ValueError as err:
            _one_line(err)


VALID_INDEX = {
    "format": "imagen-video-text-embedding-cache",
    "version": 1,
    "identity": "test",
    "dim": 4,
    "max_length": 2,
    "storage_dtype": "float32",
    "shards": ["shard-00000.safetensors"],
    "shard_sha256": {"shard-00000.safetensors": "0" * 64},
    "entries": {"ab": [0, 0, 0]},
}


@SETTINGS
@given(mutations(VALID_INDEX))
def test_cache_index_json(document: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), "index.json", document)
        try:
            cache = EmbeddingCache.open(tmp)
        except ValueError as err:
            _one_line(err)
        else:
            assert len(cache) == len(document["entries"])


VALID_RECORD = {"media": "clip.npz", "kind": "video", "caption": "a red circle", "fps": 8.0, "attributes": {}}


@SETTINGS
@given(st.lists(mutations(VALID_RECORD), min_size=1, max_size=3))
def test_manifest_lines(records: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "clip.npz").write_bytes(b"")
        lines = "".join(json.dumps(record) + "\n" for record in records)
        (Path(tmp) / "manifest.jsonl").write_text(lines, encoding="utf-8")
        try:
            loaded = load_records(tmp, default_fps=8.0)
        except DatasetError as err:
            _one_line(err)
        else:
            assert len(loaded) == len(records)
