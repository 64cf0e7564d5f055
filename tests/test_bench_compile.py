"""``bench stage --compile``: a torch.compile'd train step computes what the eager one does."""

from __future__ import annotations

import json
import shutil

import pytest

from imagen_video.cli import main


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor (torch.compile's CPU backend) builds its kernels with, if present."""
    import torch._inductor.config as inductor_config

    return shutil.which(inductor_config.cpp.cxx[-1] or "g++")


@pytest.mark.slow  # compiling the network's forward and backward takes minutes on a 2-core CPU
@pytest.mark.skipif(_cpp_compiler() is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_train_step_has_the_eager_losses(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "stage", "--preset", "tiny", "--width-scale", "0.5", "--repeats", "1", "--warmup", "1"]
    results = []
    for extra in ([], ["--compile"]):
        assert main([*argv, *extra]) == 0
        results.append(json.loads(capsys.readouterr().out))
    eager, compiled = results
    assert compiled["settings"]["compile"] and not eager["settings"]["compile"]
    assert len(eager["losses"]) == 2  # the warm-up step (before any update) and one after AdamW's step
    assert compiled["losses"] == pytest.approx(eager["losses"], rel=1e-4)
