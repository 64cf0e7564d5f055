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
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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


def _torchrun_train(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``imagen-video train`` of the tiny base stage under torchrun with 2 gloo ranks."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "imagen_video.cli",
        "train", "--stage", "base", "--cascade", "tiny", "--data", str(root / "data"), "--out", str(out),
        "--config", str(root / "train.json"), "--text-cache", str(root / "cache"), "--device", "cpu",
        "--no-progress", "--max-steps", "6", *extra,
    ]  # fmt: skip
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_train_cli_fsdp_matches_data_parallel(tmp_path: Path) -> None:
    """``train --fsdp`` (sharded, checkpointed through full state dicts) ends where DDP ends."""
    from imagen_video.train import read_checkpoint
    from imagen_video.train.checkpoint import find_latest_checkpoint
    from test_train_loop import make_dataset, make_text_cache, tiny_config

    data = make_dataset(tmp_path / "data")
    make_text_cache(tmp_path / "cache", data)
    (tmp_path / "train.json").write_text(tiny_config(max_steps=6, checkpoint_every=3, log_every=1).to_json())
    for name, extra in (("ddp", ()), ("fsdp", ("--fsdp",))):
        done = _torchrun_train(tmp_path, tmp_path / name, *extra)
        assert done.returncode == 0, done.stderr[-3000:]
    (ddp, ddp_state), (fsdp, fsdp_state) = (
        read_checkpoint(find_latest_checkpoint(tmp_path / n / "checkpoints")) for n in ("ddp", "fsdp")
    )
    assert ddp_state["step"] == fsdp_state["step"] == 6 and fsdp_state["world_size"] == 2
    for group in ("model", "ema"):
        _assert_weights_close(fsdp[group], ddp[group])
    ddp_log, fsdp_log = ((tmp_path / n / "train_log.csv").read_text().splitlines() for n in ("ddp", "fsdp"))
    losses = [[float(row.split(",")[1]) for row in log[1:]] for log in (ddp_log, fsdp_log)]
    assert len(losses[0]) == 6 and losses[1] == pytest.approx(losses[0], rel=1e-5)


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
