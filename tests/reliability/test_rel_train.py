"""Training runs under faults (docs/reliability.md): one trainer per run directory, resume past a
damaged checkpoint, checkpoint-directory hygiene (failed writes, kill -9 while pruning, litter), exit
status after a signal, malformed ``--config`` and ``--out``."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rel_support import assert_one_line, child_env, run_child

from imagen_video.cli import main
from imagen_video.train import checkpoint as ckpt
from imagen_video.train import loop as loop_module
from test_train_loop import TINY, make_dataset, make_text_cache, run, tiny_config

BASE = TINY.stage("base")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rel_train_world")
    data = make_dataset(root / "data", videos=8)
    return data, make_text_cache(root / "cache", data)


@pytest.fixture(scope="module")
def finished_run(world: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step run with checkpoints at steps 2 and 4."""
    data, cache = world
    out = tmp_path_factory.mktemp("rel_run") / "run"
    run(BASE, tiny_config(max_steps=4, checkpoint_every=2, keep_checkpoints=3), data, out, cache)
    return out


def _train_argv(world: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    data, cache = world
    return ["train", "--stage", "base", "--cascade", "tiny", "--data", str(data), "--out", str(out),
            "--text-cache", str(cache), "--device", "cpu", "--no-progress", "--warmup-steps", "1",
            "--ema-decay", "0.5", *extra]  # fmt: skip


def _damage(step_dir: Path, how: str) -> None:
    if how == "truncated optimizer":
        path = step_dir / "optimizer.safetensors"
        path.write_bytes(path.read_bytes()[:1000])
    elif how == "bad state.json":
        (step_dir / "state.json").write_text('{"step": ')
    elif how == "missing rng":
        (step_dir / "rng.safetensors").unlink()
    else:  # a flipped bit in the model weights
        path = step_dir / "model.safetensors"
        data = bytearray(path.read_bytes())
        data[-5] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated optimizer", "bad state.json", "missing rng", "flipped bit"])
def test_resume_falls_back_to_the_newest_checkpoint_that_verifies(
    world: tuple[Path, Path], finished_run: Path, tmp_path: Path, capfd, how: str
) -> None:
    data, cache = world
    out = Path(shutil.copytree(finished_run, tmp_path / "run"))
    _damage(out / "checkpoints" / "step_00000004", how)
    capfd.readouterr()
    result = run(BASE, tiny_config(max_steps=6, checkpoint_every=2, keep_checkpoints=3), data, out, cache,
                 resume=True)  # fmt: skip
    assert (result.start_step, result.step) == (2, 6)
    err = capfd.readouterr().err
    if how in ("bad state.json", "missing rng"):  # not a complete checkpoint: swept at start-up
        assert "removed incomplete checkpoint" in err and "step_00000004" in err
    else:
        assert "warning: skipping checkpoint step_00000004" in err
    assert "Traceback" not in err


def test_a_second_trainer_on_one_run_directory_is_refused_naming_the_holder(
    world: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    hold = "import sys, time\nfrom imagen_video.io_safety import RunLock\n"
    hold += "with RunLock(sys.argv[1], wait=False):\n    print('held', flush=True)\n    time.sleep(30)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], env=child_env(), stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        code = main(_train_argv(world, out, "--max-steps", "2"))
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    assert_one_line(capsys.readouterr().err, "run directory", f"is in use by pid {holder.pid} on")
    assert not (out / "checkpoints").exists() and not (out / "train_log.csv").exists()


def test_a_signal_stops_training_with_a_checkpoint_and_exit_143(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real = loop_module.train_step

    def step_then_sigterm(*args: object, **kwargs: object) -> dict:
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", step_then_sigterm)
    out = tmp_path / "run"
    assert main(_train_argv(world, out, "--max-steps", "50")) == 143
    assert "stopped by signal at step 1" in capsys.readouterr().err
    assert ckpt.find_latest_checkpoint(out / "checkpoints").name == "step_00000001"


def test_a_failed_checkpoint_write_removes_its_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(tensors: object, path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(ckpt, "_save_group", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        ckpt.write_checkpoint(tmp_path, 1, {"model": {"w": torch.ones(2)}}, {"step": 1}, keep=2)
    assert list(tmp_path.iterdir()) == []


KILL_WHILE_PRUNING = """
import os, shutil, signal, sys
import torch
from imagen_video.train import checkpoint as ckpt
root = "."  # the working directory: the checkpoint root
for step in (1, 2, 3):
    groups = {"model": {"w": torch.full((4,), float(step))}, "rng": {"g": torch.zeros(2)}}
    ckpt.write_checkpoint(root, step, groups, {"step": step}, keep=3)
def killed_halfway(path, ignore_errors=False):
    os.remove(os.path.join(path, "model.safetensors"))  # some files are gone, then kill -9
    os.kill(os.getpid(), signal.SIGKILL)
shutil.rmtree = killed_halfway
ckpt.write_checkpoint(root, 4, {"model": {"w": torch.full((4,), 4.0)}, "rng": {"g": torch.zeros(2)}},
                      {"step": 4}, keep=3)
"""


def test_kill_9_while_pruning_leaves_no_partial_checkpoint(tmp_path: Path) -> None:
    child = run_child(KILL_WHILE_PRUNING + "\n", timeout=120, cwd=tmp_path)
    assert child.returncode == -signal.SIGKILL, child.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[:1] and names[0].startswith(ckpt.DELETE_PREFIX + "step_00000001")
    assert names[1:] == ["latest", "step_00000002", "step_00000003", "step_00000004"]
    groups, state = ckpt.read_checkpoint(ckpt.find_latest_checkpoint(tmp_path))
    assert state["step"] == 4 and torch.equal(groups["model"]["w"], torch.full((4,), 4.0))
    assert [p.name for p in ckpt.remove_temp_dirs(tmp_path)] == names[:1]


def test_start_up_sweeps_incomplete_checkpoint_directories(
    world: tuple[Path, Path], finished_run: Path, tmp_path: Path, capfd
) -> None:
    data, cache = world
    out = Path(shutil.copytree(finished_run, tmp_path / "run"))
    litter = out / "checkpoints" / "step_00000001"  # an older run's kill during pruning
    litter.mkdir()
    (litter / "rng.safetensors").write_bytes(b"x" * 64)
    (out / "checkpoints" / ".tmp-step_00000006-4242").mkdir()
    result = run(BASE, tiny_config(max_steps=4, checkpoint_every=2, keep_checkpoints=3), data, out, cache,
                 resume=True)  # fmt: skip
    assert result.start_step == 4
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["latest", "step_00000002", "step_00000004"]
    assert capfd.readouterr().err.count("removed incomplete checkpoint") == 2


@pytest.mark.parametrize(
    ("config", "needle"),
    [("[1, 2]", "must hold a JSON object, got list"), ('{"batch_size": "8"}', "TrainConfig")],
)
def test_a_malformed_train_config_is_one_line(
    world: tuple[Path, Path], tmp_path: Path, capsys, config: str, needle: str
) -> None:
    (tmp_path / "train.json").write_text(config)
    code = main(_train_argv(world, tmp_path / "run", "--config", str(tmp_path / "train.json")))
    assert code == 2
    assert_one_line(capsys.readouterr().err, "train.json", needle)


def test_an_out_that_is_a_file_is_one_line(world: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    (tmp_path / "run").write_text("mine")
    assert main(_train_argv(world, tmp_path / "run")) == 2
    assert_one_line(capsys.readouterr().err, "exists and is not a directory")
    assert (tmp_path / "run").read_text() == "mine"


def test_checkpoint_files_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = ckpt.write_checkpoint(tmp_path, 1, {"model": {"w": torch.ones(2)}}, {"step": 1}, keep=1)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert modes == {"model.safetensors": 0o644, "state.json": 0o644}
    assert json.loads((path / "state.json").read_text())["files_sha256"].keys() == {"model.safetensors"}


@pytest.mark.slow  # two training processes importing torch: about 20 s on 2 busy cores
def test_two_trainers_started_together_one_runs_one_is_refused(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "imagen_video.cli", *_train_argv(world, out, "--max-steps", "6")]
    children = [
        subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(child.wait(timeout=300), child.stderr.read()) for child in children]  # type: ignore[union-attr]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert_one_line(refused, "run directory", "is in use by pid")
    steps = [line.split(",")[0] for line in (out / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == ["6"]  # one run's rows only (log_every 10: a row at the last step), no duplicates
    assert ckpt.find_latest_checkpoint(out / "checkpoints").name == "step_00000006"
