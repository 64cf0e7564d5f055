"""`imagen-video encode-text` end to end: caption files and dataset manifests into an embedding cache."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from imagen_video.cli import main
from imagen_video.text import EmbeddingCache, TextTruncationWarning, load_text_encoder
from tiny_t5 import save_tiny_t5

CAPTIONS = ["a red ball", "café", "一只红色的圆 🎈", "a red ball bounces left and right across the grass"]


@pytest.fixture(scope="module")
def t5_name(tmp_path_factory):
    return f"t5:{save_tiny_t5(tmp_path_factory.mktemp('t5') / 'tiny-t5')}"


def _run(*argv: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextTruncationWarning)
        return main(["encode-text", *argv, "--no-progress"])


def test_caption_file_end_to_end_and_incremental(t5_name, tmp_path, capsys):
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(CAPTIONS) + "\n\n", encoding="utf-8")  # trailing blank line ignored
    out = tmp_path / "cache"
    argv = ("--encoder", t5_name, "--out", str(out), "--captions", str(captions), "--max-length", "8")
    assert _run(*argv) == 0
    printed = capsys.readouterr().out
    assert "encoded 4, already cached 0, truncated 1 (max_length 8) of 4 distinct caption(s)" in printed
    encoder = load_text_encoder(t5_name, max_length=8)
    cache = EmbeddingCache.open(out, expect_identity=encoder.identity)
    direct = encoder.encode(CAPTIONS, warn_truncation=False)
    torch.testing.assert_close(cache.lookup(CAPTIONS).tokens, direct.tokens, rtol=0, atol=1e-6)

    captions.write_text("\n".join([*CAPTIONS, "two blue cubes"]), encoding="utf-8")
    assert _run(*argv, "--batch-size", "2") == 0
    assert "encoded 1, already cached 4, truncated 1" in capsys.readouterr().out


def test_dataset_manifest(t5_name, tmp_path, capsys):
    records = [
        {"media": "clips/0.npz", "kind": "video", "caption": "a red ball", "fps": 8.0},
        {"media": "clips/1.npz", "kind": "image", "caption": "a blue cube"},
        {"media": "clips/2.npz", "kind": "video", "caption": "a red ball", "fps": 8.0},
    ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "clips").mkdir()
    for record in records:  # the dataset is read as training reads it: its media must exist
        (tmp_path / record["media"]).touch()
    assert _run("--encoder", t5_name, "--out", str(tmp_path / "cache"), "--data", str(tmp_path)) == 0
    assert "encoded 2, already cached 0, truncated 0 (max_length 64) of 2 distinct" in capsys.readouterr().out


def test_default_embedded_encoder(tmp_path, capsys):
    captions = tmp_path / "captions.txt"
    captions.write_text("a red ball\ncafé\n", encoding="utf-8")
    argv = ("--out", str(tmp_path / "cache"), "--captions", str(captions), "--storage-dtype", "float16")
    assert _run(*argv) == 0
    assert "for encoder embedded:sentence-transformers/all-MiniLM-L6-v2@" in capsys.readouterr().out
    cache = EmbeddingCache.open(tmp_path / "cache")
    assert (cache.dim, cache.max_length, cache.storage_dtype, len(cache)) == (384, 64, "float16", 2)


def test_user_errors(t5_name, tmp_path, capsys):
    out = str(tmp_path / "cache")
    missing = tmp_path / "missing.txt"
    assert _run("--encoder", t5_name, "--out", out, "--captions", str(missing)) == 2
    assert f"prompt file '{missing}' does not exist" in capsys.readouterr().err
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    assert _run("--encoder", t5_name, "--out", out, "--captions", str(blank)) == 2
    assert "holds no prompts" in capsys.readouterr().err
    (tmp_path / "manifest.jsonl").write_text('{"media": "a.npz", "kind": "image"}\n')
    assert _run("--encoder", t5_name, "--out", out, "--data", str(tmp_path)) == 2
    assert "manifest.jsonl line 1: 'caption' must be a string, got None" in capsys.readouterr().err
    assert _run("--encoder", t5_name, "--out", out, "--data", str(tmp_path / "none")) == 2
    assert "dataset path does not exist" in capsys.readouterr().err

    good = tmp_path / "good.txt"
    good.write_text("a red ball\n", encoding="utf-8")
    assert _run("--encoder", t5_name, "--out", out, "--captions", str(good), "--max-length", "8") == 0
    capsys.readouterr()
    assert _run("--encoder", t5_name, "--out", out, "--captions", str(good), "--max-length", "16") == 2
    err = capsys.readouterr().err
    assert "was built by encoder 't5:tiny-t5@" in err and ":L8', not 't5:tiny-t5@" in err
    assert _run("--encoder", "no-such-encoder", "--out", out, "--captions", str(good)) == 2
    assert "unknown text encoder 'no-such-encoder'" in capsys.readouterr().err
