"""The cascade as diffusers users guess it: a string prompt, ``cascade(prompt, seed=0)``, ``.to``,
a readable repr, ``output.save`` in every CLI format, ``device="auto"`` and the package-level import."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imagen_video import device as device_module
from imagen_video.cascade import Cascade
from imagen_video.cascade.presets import tiny_cascade
from test_cascade_helpers import HashTextEncoder, single_thread

PROMPT = "a red circle moving right"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def tiny() -> Cascade:
    return Cascade.from_config(
        tiny_cascade(), generator=torch.Generator().manual_seed(0), text_encoder=HashTextEncoder()
    )


@pytest.fixture(scope="module")
def output(tiny: Cascade):  # type: ignore[no-untyped-def]
    return tiny([PROMPT, "a blue square"], seed=3, progress=False)


def test_call_with_seed_equals_generate_with_generator(tiny: Cascade) -> None:
    single = tiny(PROMPT, seed=3, progress=False)
    listed = tiny.generate([PROMPT], generator=torch.Generator().manual_seed(3), progress=False)
    assert torch.equal(single.video, listed.video)
    assert single.prompts == [PROMPT]
    with pytest.raises(ValueError, match="seed or generator"):
        tiny(PROMPT, seed=1, generator=torch.Generator(), progress=False)


def test_package_level_import_is_the_cascade() -> None:
    from imagen_video import Cascade as Exported

    assert Exported is Cascade


def test_repr_names_stages_and_shapes(tiny: Cascade) -> None:
    text = repr(tiny)
    assert text.startswith("Cascade('tiny'")
    config = tiny.config
    for stage in config.stages:
        assert f"{stage.name}: {stage.kind} -> {stage.frames}x{stage.height}x{stage.width}" in text
    assert "device='cpu'" in text


def test_to_moves_networks_and_auto_resolves(tiny: Cascade, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(device_module, "_announced", set())
    assert tiny.to("auto") is tiny
    expected = device_module.auto_device()
    assert tiny.device == expected
    assert all(next(m.parameters()).device.type == expected.type for m in tiny.models.values())
    tiny.to("auto")
    err = capsys.readouterr().err
    assert err.count(f"using device {expected}") == 1, "the automatic choice is printed once"
    tiny.to("cpu")
    assert tiny.device == torch.device("cpu")


def test_auto_device_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_module.auto_device() == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_module.auto_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_module.auto_device() == torch.device("cuda")
    assert device_module.resolve_device("cpu") == torch.device("cpu")


def test_save_every_format(output, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (grid,) = output.save(tmp_path / "grid.png")
    image = np.asarray(Image.open(grid).convert("RGB"))
    frames, height = output.video.shape[2], output.video.shape[3]
    scale = 64 // height
    assert image.shape[0] == 2 * (14 + height * scale + 2) + 2  # a labelled row per video
    assert image.shape[1] == frames * (output.video.shape[4] * scale + 2) + 2
    gifs = output.save(tmp_path / "clip.gif")
    assert gifs == [tmp_path / "clip_0.gif", tmp_path / "clip_1.gif"]
    assert Image.open(gifs[0]).n_frames >= 1
    mp4s = output.save(tmp_path / "clip", format="mp4")
    assert [p.name for p in mp4s] == ["clip_0.mp4", "clip_1.mp4"] and all(p.stat().st_size > 0 for p in mp4s)
    folders = output.save(tmp_path / "frames/")
    assert sorted(q.name for q in folders[0].iterdir())[0] == "frame_00000.png"
    with pytest.raises(ValueError, match="unknown output suffix"):
        output.save(tmp_path / "clip.avi")


def test_from_pretrained_default_device_is_auto(tiny: Cascade, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(device_module, "auto_device", lambda: torch.device("cpu"))
    tiny.save_pretrained(tmp_path / "c")
    loaded = Cascade.from_pretrained(tmp_path / "c", text_encoder=HashTextEncoder())
    assert loaded.device == torch.device("cpu")
