"""The library's front door: ``from imagen_video import Cascade`` and the shipped cascades by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import imagen_video
from imagen_video.cascade import registry
from imagen_video.cascade.runner import Cascade


def test_import_is_light_and_cascade_is_lazy() -> None:
    """``import imagen_video`` imports no torch; the ``Cascade`` attribute does."""
    code = (
        "import sys, imagen_video; assert 'torch' not in sys.modules; "
        "from imagen_video import Cascade; assert 'torch' in sys.modules; print(Cascade.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "imagen_video.cascade.runner"
    assert imagen_video.Cascade is Cascade
    with pytest.raises(AttributeError, match="no attribute 'Cascad'"):
        _ = imagen_video.Cascad


@pytest.mark.parametrize(
    ("name", "asset"), [("demo", "demo_cascade"), ("demo-distilled", "demo_cascade_distilled")]
)
def test_from_pretrained_resolves_shipped_names(name: str, asset: str) -> None:
    cascade = Cascade.from_pretrained(name)
    assert registry.shipped_cascade_dir(name).name == asset
    assert cascade.config.stage_names == ("base", "tsr1", "ssr1", "tsr2", "ssr2")
    by_path = Cascade.from_pretrained(registry.shipped_cascade_dir(name))
    for stage in cascade.config.stage_names:
        left, right = cascade.models[stage].state_dict(), by_path.models[stage].state_dict()
        assert all(left[key].equal(right[key]) for key in left)


def test_unknown_name_is_a_missing_directory() -> None:
    from imagen_video.cascade import CascadeLoadError

    with pytest.raises(CascadeLoadError, match="'demo-fast' is not a cascade directory"):
        Cascade.from_pretrained("demo-fast")
