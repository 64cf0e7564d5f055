"""FSDP2 training (``train --fsdp``) matches single-process training; optimizer and sharding options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fsdp_equivalence as eq
from imagen_video.train.fsdp import (
    make_optimizer,
    optimizer_state_bytes_per_param,
    shard_unet,
    single_process_group,
)

TESTS = Path(__file__).parent


def _assert_weights_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name].float(), want[name].float(), rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        str(TESTS / "fsdp_equivalence.py"), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    losses, weights = eq.reference_run(world=2)
    got = json.loads((tmp_path / "losses.json").read_text())
    assert got == pytest.approx(losses, rel=1e-5)
    _assert_weights_close(torch.load(tmp_path / "weights.pt"), weights)
    start = eq.fresh_model().state_dict()
    assert any(not torch.equal(weights[k], start[k]) for k in start)  # training moved the weights


def test_one_rank_fsdp_step_equals_the_plain_step() -> None:
    from imagen_video.train.state import model_tensors
    from imagen_video.train.step import train_step

    losses, weights = eq.reference_run(world=1)
    with single_process_group(torch.device("cpu")):
        model = shard_unet(eq.fresh_model())
        assert type(model.down[0][0].res.conv1.weight).__name__ == "DTensor"
        optimizer = make_optimizer(model.parameters(), lr=eq.LR)
        got = []
        for step in range(eq.STEPS):
            batch, text = eq.rank_batch(step, 0, 1)
            gen = eq.noise_generator(step, 0)
            got.append(
                train_step(model, batch, text, eq.stage(), optimizer=optimizer, generator=gen, grad_clip=1.0)[
                    "loss"
                ]
            )
        tensors = model_tensors(model)
    assert got == pytest.approx(losses, rel=1e-5)
    _assert_weights_close(tensors, weights)


@pytest.mark.slow  # torchao compiles its update on first use
def test_eight_bit_adamw_keeps_one_byte_state() -> None:
    pytest.importorskip("torchao")
    layer = torch.nn.Linear(256, 256)
    optimizer = make_optimizer(layer.parameters(), "adamw8bit", lr=1e-3)
    layer(torch.ones(2, 256)).sum().backward()
    before = layer.weight.detach().clone()
    optimizer.step()
    state = optimizer.state[layer.weight]["exp_avg"]
    assert state.codes.dtype == torch.uint8 and state.codes.numel() == layer.weight.numel()
    assert not torch.equal(before, layer.weight)
    assert optimizer_state_bytes_per_param("adamw8bit") == pytest.approx(2 + 8 / 256)
    assert optimizer_state_bytes_per_param("adamw") == 8


def test_optimizer_names_are_checked() -> None:
    with pytest.raises(ValueError, match=r"one of \('adamw', 'adamw8bit'\)"):
        make_optimizer(torch.nn.Linear(2, 2).parameters(), "sgd")
