"""Fixtures of the reliability suite (docs/reliability.md): a tiny random cascade, a small synthetic
dataset and its embedding cache (helpers live in rel_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:  # the shared helpers of tests/ (test_train_loop's dataset and encoder)
    sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def tiny_cascade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised ``tiny`` cascade directory (stages 8x16x16 at most)."""
    from imagen_video.cli import main

    root = tmp_path_factory.mktemp("rel_models") / "tiny"
    assert main(["cascade", "init", str(root), "--preset", "tiny", "--seed", "0"]) == 0
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Two shared cores: one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
