"""``imagen-video train`` as real processes: torchrun with 2 CPU ranks (gloo), SIGKILL then --resume, and
SIGTERM. Each test starts fresh Python processes (seconds of start-up each), so all are marked slow; the
in-process equivalents of resume and SIGTERM run by default in test_train_loop.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imagen_video.train import read_checkpoint
from imagen_video.train.checkpoint import find_latest_checkpoint
from imagen_video.train.state import tensors_digest
from test_train_loop import make_dataset, make_text_cache, tiny_config

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("train_proc")
    data = make_dataset(root / "data")
    config = root / "train.json"
    config.write_text(tiny_config(max_steps=30, checkpoint_every=5, log_every=5).to_json())
    return data, make_text_cache(root / "cache", data), config


def _train_args(world, out: Path, *extra: str) -> list[str]:
    data, cache, config = world
    return [
        "train",
        "--stage",
        "base",
        "--cascade",
        "tiny",
        "--data",
        str(data),
        "--out",
        str(out),
        "--config",
        str(config),
        "--text-cache",
        str(cache),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def _cli(world, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "imagen_video.cli", *_train_args(world, out, *extra)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


def _latest_step(out: Path) -> int | None:
    path = find_latest_checkpoint(out / "checkpoints")
    return None if path is None else int(path.name.split("_")[1])


def _start_and_wait_for_checkpoint(
    world, out: Path, step: int, *extra: str, new_session: bool = False
) -> subprocess.Popen:
    command = [sys.executable, "-m", "imagen_video.cli", *_train_args(world, out, *extra)]
    process = subprocess.Popen(
        command,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )
    deadline = time.monotonic() + 240
    while (_latest_step(out) or 0) < step:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    return process


def test_torchrun_two_cpu_ranks_end_with_identical_weights(world, tmp_path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "imagen_video.cli",
        *_train_args(world, out, "--max-steps", "6", "--weights-digest"),
    ]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) weights sha256 ([0-9a-f]{64})", done.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    groups, state = read_checkpoint(find_latest_checkpoint(out / "checkpoints"))
    assert state["step"] == 6 and state["world_size"] == 2
    assert tensors_digest(groups["model"]) == digests["0"]  # what rank 0 saved is what both ranks hold
    assert {k.split("/")[0] for k in groups["rng"]} == {"0", "1"}  # each rank's generator is kept
    assert not torch.equal(groups["rng"]["0/generator"], groups["rng"]["1/generator"])


def test_sigkill_then_resume_matches_the_uninterrupted_run(world, tmp_path) -> None:
    killed = tmp_path / "killed"
    process = _start_and_wait_for_checkpoint(world, killed, step=10)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    last = _latest_step(killed)
    assert last is not None and last % 5 == 0 and last < 30
    resumed = _cli(world, killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"step 30 (started at {last})" in resumed.stdout  # at most checkpoint_every steps lost
    straight = _cli(world, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    (a, a_state), (b, b_state) = (
        read_checkpoint(find_latest_checkpoint(p / "checkpoints")) for p in (tmp_path / "straight", killed)
    )
    assert a_state["step"] == b_state["step"] == 30
    assert a_state["optimizer"] == b_state["optimizer"]
    for group in ("model", "ema", "optimizer"):
        assert a[group].keys() == b[group].keys()
        for name in a[group]:
            assert torch.equal(a[group][name], b[group][name]), (group, name)
    assert torch.equal(a["rng"]["0/generator"], b["rng"]["0/generator"])


def test_sigterm_checkpoints_and_exits_cleanly(world, tmp_path) -> None:
    out = tmp_path / "term"
    process = _start_and_wait_for_checkpoint(world, out, step=5)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]  # unfinished: not 0
    match = re.search(r"stopped by signal at step (\d+)", stderr)
    assert match, stderr[-3000:]
    step = int(match.group(1))
    assert 5 <= step < 30 and _latest_step(out) == step
    assert f"stage base: step {step}" in stdout


def test_sigterm_to_the_process_group_with_loader_workers(world, tmp_path) -> None:
    """Slurm, Ctrl-C and ``pkill -f`` signal every process of the job, DataLoader workers included: the
    workers must not die first, or the main process fails instead of writing its checkpoint."""
    data, cache, _ = world
    config = tmp_path / "workers.json"
    config.write_text(tiny_config(max_steps=30, checkpoint_every=5, log_every=5, num_workers=1).to_json())
    out = tmp_path / "group"
    process = _start_and_wait_for_checkpoint((data, cache, config), out, 5, new_session=True)
    os.killpg(process.pid, signal.SIGTERM)  # the whole group: main process and its loader worker
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "worker" not in stderr.lower(), stderr[-3000:]
    match = re.search(r"stopped by signal at step (\d+)", stderr)
    assert match, stderr[-3000:]
    assert _latest_step(out) == int(match.group(1))
