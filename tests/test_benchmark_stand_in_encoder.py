"""``benchmarks/stand_in_encoder.py``: a package that loads and costs like the embedded encoder's."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from imagen_video.text.embedded import embedded_model_dir, load_embedded_encoder

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stand_in_encoder.py"


def _spec(path: Path) -> dict[str, tuple[list[int], str]]:
    with safe_open(str(path), "pt") as weights:
        return {
            k: (list(weights.get_slice(k).get_shape()), weights.get_slice(k).get_dtype())
            for k in weights.keys()  # noqa: SIM118 (safe_open is not iterable)
        }


def test_stand_in_has_the_real_layout_and_loads_as_the_embedded_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = runpy.run_path(str(SCRIPT))
    real = embedded_model_dir() / "model.safetensors"
    real_identity = load_embedded_encoder().identity
    script["main"](["pack", str(tmp_path / "packed")])
    assert sum(f.stat().st_size for f in (tmp_path / "packed").iterdir()) < 2**20  # what travels
    model = script["install"](tmp_path / "packed", tmp_path / "site")
    stand_in = model / "model.safetensors"
    assert stand_in.stat().st_size == real.stat().st_size
    assert _spec(stand_in) == _spec(real)

    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, script["PACKAGE"], raising=False)
    assert embedded_model_dir() == model
    encoder = load_embedded_encoder()
    embeddings = encoder.encode(["a red circle moving right"])
    assert embeddings.tokens.shape == (1, 64, 384) and embeddings.tokens.isfinite().all()
    assert encoder.identity != real_identity  # random weights: generate warns, as it should
