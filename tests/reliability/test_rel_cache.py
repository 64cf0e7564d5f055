"""The text-embedding cache under faults (docs/reliability.md): concurrent builds serialise on a lock
and keep every caption; a row that belongs to another caption, a damaged, missing or outside shard,
or a malformed index is one clear error, never a silently wrong embedding."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rel_support import assert_one_line, child_env

from imagen_video.cli import main
from imagen_video.io_safety import HOLDER_NAME, LOCK_NAME, LockedError, RunLock
from imagen_video.text.cache import INDEX_NAME, EmbeddingCache, text_key
from test_train_loop import HashTextEncoder

CAPTIONS = ["a red circle moving left", "a red circle moving right", "a blue square moving up"]


def _build(directory: Path, captions: list[str]) -> EmbeddingCache:
    return EmbeddingCache.build(directory, HashTextEncoder(), captions, progress=False)


def _index(directory: Path) -> dict:
    return json.loads((directory / INDEX_NAME).read_text())


def test_a_row_of_another_caption_is_refused(tmp_path: Path) -> None:
    _build(tmp_path, CAPTIONS)
    index = _index(tmp_path)
    left, right = text_key(CAPTIONS[0]), text_key(CAPTIONS[1])
    index["entries"][left], index["entries"][right] = index["entries"][right], index["entries"][left]
    (tmp_path / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="row 1 belongs to another caption than 'a red circle moving left'"):
        EmbeddingCache.open(tmp_path).lookup([CAPTIONS[0]])


def test_a_replaced_shard_is_refused_by_its_hash(tmp_path: Path) -> None:
    _build(tmp_path / "a", CAPTIONS)
    _build(tmp_path / "b", list(reversed(CAPTIONS)))
    shard = "shard-00000.safetensors"
    (tmp_path / "a" / shard).write_bytes((tmp_path / "b" / shard).read_bytes())
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        EmbeddingCache.open(tmp_path / "a").lookup([CAPTIONS[0]])


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_a_truncated_or_missing_shard_is_one_error(tmp_path: Path, damage: str) -> None:
    _build(tmp_path, CAPTIONS)
    shard = tmp_path / "shard-00000.safetensors"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    else:
        shard.unlink()
    cache = EmbeddingCache.open(tmp_path, verify=False)
    with pytest.raises(ValueError, match="shard-00000.safetensors"):
        cache.lookup([CAPTIONS[0]])


def test_a_shard_path_outside_the_cache_is_refused(tmp_path: Path) -> None:
    _build(tmp_path / "cache", CAPTIONS)
    index = _index(tmp_path / "cache")
    index["shards"] = ["../elsewhere.safetensors"]
    (tmp_path / "cache" / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="'shards' must be a list of shard-NNNNN.safetensors names"):
        EmbeddingCache.open(tmp_path / "cache")


def test_encode_text_into_a_cache_with_a_wrong_index_is_one_line(tmp_path: Path, capsys) -> None:
    captions = tmp_path / "captions.txt"
    captions.write_text("a red circle moving left\n")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / INDEX_NAME).write_text(
        '{"format": "imagen-video-text-embedding-cache", "version": 1}'
    )
    code = main(
        ["encode-text", "--captions", str(captions), "--out", str(tmp_path / "cache"), "--no-progress"]
    )
    assert code == 2
    assert_one_line(capsys.readouterr().err, "index.json", "'identity' must be a string")


HOLD_LOCK = """
import sys, time
from imagen_video.io_safety import RunLock
with RunLock(sys.argv[1], wait=False):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(directory: Path, seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory), str(seconds)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_held_lock_is_refused_naming_its_holder_and_a_waiter_gets_it_after(tmp_path: Path) -> None:
    child = _holder(tmp_path, 1.5)
    held_at = time.monotonic()
    try:
        with (
            pytest.raises(LockedError, match=rf"in use by pid {child.pid} on .* since 20"),
            RunLock(tmp_path, wait=False),
        ):
            pass
        with RunLock(tmp_path, wait=True):
            waited = time.monotonic() - held_at
        assert waited >= 1.4  # granted only once the holder let go after its 1.5 s
    finally:
        child.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]


def test_a_stale_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path: Path, capfd) -> None:
    child = _holder(tmp_path, 60)
    child.kill()  # kill -9: the holder record stays behind
    child.wait(timeout=30)
    assert (tmp_path / HOLDER_NAME).is_file()
    with RunLock(tmp_path, wait=False):
        pass
    assert_one_line(capfd.readouterr().err, "warning: took over the stale lock", f"pid {child.pid}")


ENCODE = """
import sys
from pathlib import Path
from test_train_loop import HashTextEncoder
from imagen_video.text.cache import EmbeddingCache
EmbeddingCache.build(Path(sys.argv[1]), HashTextEncoder(), sys.argv[2:], batch_size=1, progress=False)
"""


@pytest.mark.slow  # two child processes importing torch: about 20 s on 2 busy cores
def test_concurrent_builds_keep_the_union_and_every_row_right(tmp_path: Path) -> None:
    groups = [
        [f"a red circle number {i}" for i in range(40)],
        [f"a blue square number {i}" for i in range(40)],
    ]
    children = [
        subprocess.Popen([sys.executable, "-c", ENCODE, str(tmp_path), *captions], env=child_env())
        for captions in groups
    ]
    assert [child.wait(timeout=300) for child in children] == [0, 0]
    cache = EmbeddingCache.open(tmp_path)
    everything = groups[0] + groups[1]
    assert len(cache) == 80 and cache.missing(everything) == []
    expected = HashTextEncoder().encode(everything)
    assert torch.equal(cache.lookup(everything).tokens, expected.tokens)
