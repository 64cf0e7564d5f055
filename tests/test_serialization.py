"""JsonConfig round trips and atomic writes (the plumbing every checkpoint and config relies on)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from imagen_video.serialization import (
    JsonConfig,
    atomic_path,
    atomic_write_json,
    save_safetensors_atomic,
)


@dataclasses.dataclass(frozen=True)
class Inner(JsonConfig):
    size: tuple[int, int] = (24, 40)
    rate: float = 3.0


@dataclasses.dataclass(frozen=True)
class Outer(JsonConfig):
    name: str = "base"
    inner: Inner = Inner()
    levels: tuple[bool, ...] = (False, True, True)
    crop: tuple[int, int] | None = None
    optional_inner: Inner | None = None


def test_nested_round_trip_is_lossless() -> None:
    cfg = Outer(name="ssr", inner=Inner(size=(48, 80), rate=6.0), crop=(12, 20), optional_inner=Inner())
    assert Outer.from_json(cfg.to_json()) == cfg
    assert Outer.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_int_in_json_becomes_float_field() -> None:
    assert Inner.from_dict({"size": [1, 2], "rate": 3}).rate == 3.0
    assert isinstance(Inner.from_dict({"size": [1, 2], "rate": 3}).rate, float)


def test_unknown_field_is_named() -> None:
    with pytest.raises(ValueError, match="bogus"):
        Inner.from_dict({"size": [1, 2], "bogus": 1})


def test_atomic_path_leaves_nothing_on_error(tmp_path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_safetensors_atomic_round_trip(tmp_path) -> None:
    from safetensors.torch import load_file

    tensors = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    path = save_safetensors_atomic(tensors, tmp_path / "m.safetensors", metadata={"k": "v"})
    loaded = load_file(str(path))
    assert torch.equal(loaded["w"], tensors["w"]) and torch.equal(loaded["b"], tensors["b"])
