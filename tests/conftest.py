"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised ``tiny`` cascade directory (8 frames of 16x16 at 4 fps out); a module may
    define its own ``model_dir`` to add to it."""
    from imagen_video.cli import main

    root = tmp_path_factory.mktemp("models") / "tiny"
    assert main(["cascade", "init", str(root), "--preset", "tiny", "--seed", "0"]) == 0
    return root
