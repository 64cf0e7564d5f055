"""Training building blocks: TrainConfig, LR warm-up, EMA, checkpoint directories, state round trips,
and the resumable data stream (paper sec. 2.2 training; checkpoints that lose nothing)."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from imagen_video.train import checkpoint as ckpt
from imagen_video.train.config import TrainConfig, lr_at, tiny_train_config
from imagen_video.train.data_stream import BatchStream
from imagen_video.train.ema import EMA
from imagen_video.train.monitor import CsvLog, read_log
from imagen_video.train.state import (
    capture_rng,
    load_optimizer_tensors,
    optimizer_tensors,
    restore_rng,
    tensors_digest,
)

# ---- TrainConfig and the LR schedule -------------------------------------------------------------


def test_train_config_round_trips_and_validates() -> None:
    config = tiny_train_config().replace(preview_prompts=("a red circle",), image_fraction=0.25)
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="image_fraction"):
        TrainConfig(image_fraction=1.5)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=0.0)


def test_lr_linear_warmup_then_constant() -> None:
    config = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [lr_at(s, config) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert lr_at(0, config.replace(warmup_steps=0)) == 1e-3


# ---- EMA ----------------------------------------------------------------------------------------


def test_ema_warmup_decay_closed_form() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5, warmup=True)
    decays = []
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(value)
        decays.append(ema.current_decay())
        ema.update(model)
    # warm-up decay min(0.5, (1 + n) / (10 + n)): 0.1, 2/11, 0.25
    assert decays == pytest.approx([0.1, 2 / 11, 0.25])
    expected = 0.0
    for decay, value in zip(decays, (1.0, 2.0, 3.0), strict=True):
        expected = decay * expected + (1 - decay) * value
    assert ema.model.weight.detach() == pytest.approx(torch.full((1, 2), expected))
    assert not ema.model.weight.requires_grad
    ema_no_warmup = EMA(model, decay=0.9, warmup=False)
    assert ema_no_warmup.current_decay() == 0.9


# ---- checkpoint directories ---------------------------------------------------------------------


def _groups(value: float) -> dict[str, dict[str, torch.Tensor]]:
    return {
        "model": {"w": torch.full((3,), value)},
        "rng": {"0/generator": torch.arange(4, dtype=torch.uint8)},
    }


def test_checkpoint_round_trip_latest_and_keep(tmp_path) -> None:
    root = tmp_path / "checkpoints"
    for step in (5, 10, 15):
        ckpt.write_checkpoint(root, step, _groups(step), {"step": step}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step_00000010", "step_00000015"]
    assert (root / "latest").read_text().strip() == "step_00000015"
    groups, state = ckpt.read_checkpoint(ckpt.find_latest_checkpoint(root))
    assert state == {"step": 15}
    assert torch.equal(groups["model"]["w"], torch.full((3,), 15.0))
    assert torch.equal(groups["rng"]["0/generator"], torch.arange(4, dtype=torch.uint8))


def test_half_written_checkpoint_is_never_found(tmp_path, monkeypatch) -> None:
    root = tmp_path / "checkpoints"
    ckpt.write_checkpoint(root, 10, _groups(1.0), {"step": 10}, keep=3)
    calls = {"n": 0}
    real = ckpt._save_group

    def crash_on_second_group(tensors, path):  # a kill in the middle of writing the checkpoint
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(tensors, path)

    monkeypatch.setattr(ckpt, "_save_group", crash_on_second_group)
    with pytest.raises(KeyboardInterrupt):
        ckpt.write_checkpoint(root, 20, _groups(2.0), {"step": 20}, keep=3)
    assert not any(p.name.startswith(ckpt.TEMP_PREFIX) for p in root.iterdir())  # a failed write cleans up
    killed = root / f"{ckpt.TEMP_PREFIX}step_00000020-1"  # what a SIGKILL mid-write leaves
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"partial")
    leftovers = [killed.name]
    assert ckpt.find_latest_checkpoint(root).name == "step_00000010"  # ... is ignored
    # a stale pointer (latest names a directory that is gone) falls back to the newest complete one
    (root / "latest").write_text("step_00000020\n")
    assert ckpt.find_latest_checkpoint(root).name == "step_00000010"
    assert [p.name for p in ckpt.remove_temp_dirs(root)] == leftovers
    assert not any(p.name.startswith(ckpt.TEMP_PREFIX) for p in root.iterdir())


# ---- optimizer, RNG and digests -----------------------------------------------------------------


def _trained_adamw(steps: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(5, 3, generator=generator)).square().mean().backward()
        optimizer.step()
    return model, optimizer


def test_optimizer_state_round_trips_through_json_and_tensors() -> None:
    model, optimizer = _trained_adamw(3)
    tensors, meta = optimizer_tensors(model, optimizer)
    tensors = {k: v.clone() for k, v in tensors.items()}  # as read back from disk: no shared storage
    meta = json.loads(json.dumps(meta))  # must be plain JSON
    fresh_model, fresh_optimizer = _trained_adamw(0)
    fresh_model.load_state_dict(model.state_dict())
    load_optimizer_tensors(fresh_model, fresh_optimizer, tensors, meta)
    a, b = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for key, entry in a["state"].items():
        for name, value in entry.items():
            assert torch.equal(value, b["state"][key][name]), (key, name)
    # the restored optimizer continues exactly like the original
    batch = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    for m, o in ((model, optimizer), (fresh_model, fresh_optimizer)):
        o.zero_grad()
        m(batch).square().mean().backward()
        o.step()
    assert tensors_digest(model.state_dict()) == tensors_digest(fresh_model.state_dict())


def test_rng_states_round_trip() -> None:
    generator = torch.Generator().manual_seed(7)
    tensors, meta = capture_rng(generator)
    meta = json.loads(json.dumps(meta))
    first = (torch.randn(3, generator=generator), torch.rand(2), random.random(), np.random.rand())
    restore_rng(generator, tensors, meta)
    second = (torch.randn(3, generator=generator), torch.rand(2), random.random(), np.random.rand())
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert first[2:] == second[2:]


def test_tensors_digest_sees_every_byte() -> None:
    state = {"a": torch.zeros(3), "b": torch.ones(2)}
    changed = {"a": torch.tensor([0.0, 0.0, 1e-30]), "b": torch.ones(2)}
    assert tensors_digest(state) == tensors_digest({k: v.clone() for k, v in state.items()})
    assert tensors_digest(state) != tensors_digest(changed)


# ---- the resumable data stream ------------------------------------------------------------------


class _FakeSampler:
    """Stands in for JointImageVideoSampler: epoch e yields e*100 + slot for this rank."""

    def __init__(self, num_samples: int, rank: int, world_size: int) -> None:
        self.num_samples, self.rank, self.world_size = num_samples, rank, world_size
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        slots = range(self.rank, self.num_samples, self.world_size)[self.start :]
        return iter(self.epoch * 100 + s for s in slots)


def _take(stream: BatchStream, count: int) -> list[list[int]]:
    batches = iter(stream)
    return [next(batches) for _ in range(count)]


def test_batch_stream_resumes_exactly_and_shards_ranks() -> None:
    full = _take(BatchStream(_FakeSampler(10, 0, 2), batch_size=2), 7)
    # 10 samples / 2 ranks = 5 per rank -> 2 micro-batches per epoch (the odd sample is dropped)
    assert full[:3] == [[0, 2], [4, 6], [100, 102]]
    for start in range(6):
        assert _take(BatchStream(_FakeSampler(10, 0, 2), 2, start), 7 - start) == full[start:]
    stream = BatchStream(_FakeSampler(10, 0, 2), 2)
    assert (stream.position(5).epoch, stream.position(5).batch_in_epoch) == (2, 1)
    other = _take(BatchStream(_FakeSampler(10, 1, 2), 2), 2)
    assert not set(sum(full[:2], [])) & set(sum(other, []))
    with pytest.raises(ValueError, match="fewer than one micro-batch"):
        BatchStream(_FakeSampler(4, 0, 2), batch_size=4)


def test_csv_log_drops_rows_after_the_resumed_step(tmp_path) -> None:
    path = tmp_path / "train_log.csv"
    log = CsvLog(path)
    row = {
        "loss": 1.0,
        "lr": 0.1,
        "grad_norm": 2.0,
        "steps_per_s": 3.0,
        "skipped_files": 0,
        "skipped_steps": 0,
    }
    for step in (10, 20, 30):
        log.append({**row, "step": step})
    CsvLog(path, resume_step=20)  # the killed run logged step 30 after its last checkpoint (20)
    assert [r["step"] for r in read_log(path)] == [10.0, 20.0]
    assert os.path.getsize(path) > 0


def test_resolve_cascade_accepts_a_saved_cascade_directory(tmp_path) -> None:
    """`train --cascade DIR` reads the stage list of an assembled cascade (cascade.json)."""
    import torch

    from imagen_video.cascade import Cascade
    from imagen_video.cascade.presets import get_cascade_preset
    from imagen_video.train.config import resolve_cascade

    config = get_cascade_preset("tiny")
    Cascade.from_config(config, generator=torch.Generator().manual_seed(0)).save_pretrained(tmp_path / "c")
    assert resolve_cascade(str(tmp_path / "c")) == config
    assert resolve_cascade(str(tmp_path / "c" / "cascade.json")) == config


def _worker_then_wait(ready) -> None:  # runs in a child process, like a DataLoader worker
    import time

    from imagen_video.train.data_stream import ignore_stop_signals

    ignore_stop_signals(0)
    ready.set()
    time.sleep(3)


def test_data_workers_survive_a_stop_signal_sent_to_the_process_group() -> None:
    """SIGTERM to every process (Slurm, pkill -f) must leave the workers alive so that the main
    process, not a dead worker, decides how the run ends (it checkpoints first)."""
    import multiprocessing as mp
    import os
    import signal
    import time

    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_worker_then_wait, args=(ready,))
    child.start()
    try:
        assert ready.wait(30)
        os.kill(child.pid, signal.SIGTERM)
        os.kill(child.pid, signal.SIGINT)
        time.sleep(0.5)
        assert child.is_alive()
    finally:
        child.kill()
        child.join()
