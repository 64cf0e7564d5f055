"""Memory options of ``imagen-video train`` (docs/performance.md, "Paper scale"): the 8-bit AdamW state
in safetensors checkpoints and an exact resume with it, FSDP2 CPU offload, and their flags."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import torch
from safetensors.torch import load_file, save_file

from imagen_video.cli import main as cli_main
from imagen_video.cli.train import OPTIMIZER_CHOICES
from imagen_video.train import TrainConfig
from imagen_video.train import fsdp as fsdp_module
from imagen_video.train.fsdp import OPTIMIZERS, make_optimizer, set_learning_rate
from imagen_video.train.lowbit_state import EIGHT_BIT, join_states, split_state
from test_cascade_helpers import single_thread
from test_train_loop import TINY, _checkpoint_at, make_dataset, make_text_cache, run, tiny_config


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("scale_world")
    data = make_dataset(root / "data", videos=8)
    return data, make_text_cache(root / "cache", data)


def _eight_bit(signed: bool, values: torch.Tensor):
    """torchao's 8-bit state holding ``values`` (quantised block-wise, 256 values a block)."""
    from torchao.optim.subclass_8bit import OptimState8bit

    state = OptimState8bit.zeros(values.shape, signed=signed)
    state.copy_(values)
    return state


def test_eight_bit_state_round_trips_through_safetensors(tmp_path) -> None:
    pytest.importorskip("torchao")
    values = torch.randn(16, 512, generator=torch.Generator().manual_seed(0))
    state = _eight_bit(True, values)
    parts, meta = split_state("w/exp_avg", state)
    assert meta == {"type": EIGHT_BIT, "signed": True}
    assert {k: (v.dtype, tuple(v.shape)) for k, v in parts.items()} == {
        "w/exp_avg.codes": (torch.uint8, (16, 512)),
        "w/exp_avg.scale": (torch.float32, (32,)),
        "w/exp_avg.qmap": (torch.float32, (256,)),
    }
    step = torch.tensor(3.0)
    save_file({**parts, "w/step": step}, tmp_path / "optimizer.safetensors")
    joined = join_states(load_file(tmp_path / "optimizer.safetensors"), {"w/exp_avg": meta})
    assert joined.keys() == {"w/exp_avg", "w/step"} and torch.equal(joined["w/step"], step)
    back = joined["w/exp_avg"]
    assert type(back) is type(state) and back.signed and back.block_size == 256
    for part in ("codes", "scale", "qmap"):
        assert torch.equal(getattr(back, part), getattr(state, part)), part
    assert torch.equal(back.dequantize(), state.dequantize())
    torch.testing.assert_close(back.dequantize(), values, rtol=0.1, atol=0.05)  # 8 bits: close, not equal
    assert split_state("w/step", step) == ({"w/step": step}, None)


def test_join_refuses_missing_or_malformed_parts() -> None:
    pytest.importorskip("torchao")
    parts, meta = split_state("w/exp_avg_sq", _eight_bit(False, torch.rand(4096)))
    assert meta["signed"] is False
    with pytest.raises(KeyError):
        join_states({k: v for k, v in parts.items() if not k.endswith(".scale")}, {"w/exp_avg_sq": meta})
    with pytest.raises(ValueError, match="unknown type 'fp8'"):
        join_states(parts, {"w/exp_avg_sq": {"type": "fp8", "signed": False}})
    bad = {**parts, "w/exp_avg_sq.codes": parts["w/exp_avg_sq.codes"].float()}
    with pytest.raises(ValueError, match="wrong dtype or shape"):
        join_states(bad, {"w/exp_avg_sq": meta})
    with pytest.raises(ValueError, match="Parameter"):
        split_state("w/x", torch.nn.Parameter(torch.zeros(2)))


def test_learning_rate_is_set_in_place_for_a_tensor_and_assigned_for_a_float() -> None:
    layer = torch.nn.Linear(2, 2)
    plain = make_optimizer(layer.parameters(), "adamw", lr=1.0)
    set_learning_rate(plain, 0.25)
    assert plain.param_groups[0]["lr"] == 0.25
    pytest.importorskip("torchao")
    eight = make_optimizer(layer.parameters(), "adamw8bit", lr=1.0)
    lr = eight.param_groups[0]["lr"]
    set_learning_rate(eight, 0.25)
    assert eight.param_groups[0]["lr"] is lr and lr.item() == 0.25


def test_config_and_flags_are_checked(tmp_path, capsys, world, monkeypatch) -> None:
    assert OPTIMIZER_CHOICES == OPTIMIZERS
    with pytest.raises(ValueError, match="cpu_offload needs fsdp"):
        TrainConfig(cpu_offload=True)
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adamw', 'adamw8bit'\)"):
        TrainConfig(optimizer="sgd")
    assert TrainConfig.from_dict(TrainConfig(fsdp=True, cpu_offload=True).to_dict()).cpu_offload
    data, _ = world
    base = ["train", "--cascade", "tiny", "--stage", "base", "--data", str(data), "--out", str(tmp_path)]
    assert cli_main([*base, "--cpu-offload"]) == 2
    err = capsys.readouterr().err
    assert "--cpu-offload needs --fsdp" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli_main([*base, "--optimizer", "sgd"])
    assert "invalid choice: 'sgd'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "torchao.optim", None)  # as if torchao were not installed
    assert cli_main([*base, "--optimizer", "adamw8bit"]) == 2
    err = capsys.readouterr().err
    assert "needs torchao: pip install 'imagen-video[scale]'" in err and len(err.strip().splitlines()) == 1


def test_resume_with_another_optimizer_is_refused_in_one_line(world, tmp_path, capsys) -> None:
    pytest.importorskip("torchao")
    data, cache = world
    config = tmp_path / "train.json"
    config.write_text(
        tiny_config(max_steps=1, checkpoint_every=1, preview_every=0, warmup_steps=1, ema_decay=0.5).to_json()
    )
    common = [
        "train",
        "--cascade",
        "tiny",
        "--stage",
        "base",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
    ]
    common += ["--config", str(config), "--text-cache", str(cache), "--device", "cpu", "--no-progress"]
    assert cli_main(common) == 0
    capsys.readouterr()
    assert cli_main([*common, "--resume", "--max-steps", "2", "--optimizer", "adamw8bit"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "holds adamw optimizer state, this run uses adamw8bit" in err
    assert "resume with --optimizer adamw" in err


@pytest.mark.slow  # torchao compiles its AdamW update on first use (about 30 s on a 2-core CPU)
@pytest.mark.parametrize("fsdp", [False, True], ids=["plain", "fsdp"])
def test_eight_bit_resume_continues_exactly_like_an_uninterrupted_run(world, tmp_path, fsdp) -> None:
    """N = 2 steps, checkpoint, resume for M = 2 more: the weights, the EMA, every 8-bit code, scale and
    qmap and the counters equal a straight run of 4 steps, bit for bit (also sharded by FSDP2 in a
    one-rank group, whose state is placed back as DTensors)."""
    pytest.importorskip("torchao")
    data, cache = world
    cfg = tiny_config(max_steps=4, checkpoint_every=2, preview_every=0, optimizer="adamw8bit", fsdp=fsdp)
    straight = run(TINY.stage("base"), cfg, data, tmp_path / "straight", cache)
    first = run(TINY.stage("base"), cfg.replace(max_steps=2), data, tmp_path / "resumed", cache)
    second = run(TINY.stage("base"), cfg, data, tmp_path / "resumed", cache, resume=True)
    assert (first.step, second.start_step, second.step) == (2, 2, 4)
    assert first.losses + second.losses == straight.losses
    (a, a_state), (b, b_state) = (_checkpoint_at(tmp_path / n, 4) for n in ("straight", "resumed"))
    for group in ("model", "ema", "optimizer"):
        assert a[group].keys() == b[group].keys()
        for name in a[group]:
            assert torch.equal(a[group][name], b[group][name]), (group, name)
    codes = [name for name in a["optimizer"] if name.endswith(".codes")]
    assert "text_pool.weight/exp_avg.codes" in codes and len(codes) == 10  # m and v of 5 large weights
    assert all(a["optimizer"][name].dtype == torch.uint8 for name in codes)
    packed = a_state["optimizer"]["packed"]
    assert packed["text_pool.weight/exp_avg"] == {"type": EIGHT_BIT, "signed": True}
    assert packed["text_pool.weight/exp_avg_sq"] == {"type": EIGHT_BIT, "signed": False}
    for key in ("step", "micro_batches", "optimizer", "ema_num_updates"):
        assert a_state[key] == b_state[key], key
    assert a_state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr * 4 / cfg.warmup_steps)


def test_fsdp_cpu_offload_in_one_process_trains_like_a_plain_run(world, tmp_path, monkeypatch) -> None:
    """One process with fsdp + cpu_offload shards in a one-rank gloo group with FSDP2's
    CPUOffloadPolicy (on a CPU device the offload moves nothing); its losses and weights match a
    plain run within fp32 tolerance, and it checkpoints and resumes."""
    data, cache = world
    sharded = []
    real = fsdp_module.shard_unet

    def spy(model, **kwargs):
        out = real(model, **kwargs)
        param = next(out.parameters())
        sharded.append((kwargs.get("cpu_offload"), type(param).__name__, param.device.type))
        return out

    monkeypatch.setattr(fsdp_module, "shard_unet", spy)
    cfg = tiny_config(max_steps=3, checkpoint_every=2, preview_every=0)
    plain = run(TINY.stage("base"), cfg, data, tmp_path / "plain", cache)
    offload = cfg.replace(fsdp=True, cpu_offload=True)
    first = run(TINY.stage("base"), offload.replace(max_steps=2), data, tmp_path / "offload", cache)
    second = run(TINY.stage("base"), offload, data, tmp_path / "offload", cache, resume=True)
    assert sharded == [(True, "DTensor", "cpu")] * 4  # model and EMA, in both runs
    assert first.losses + second.losses == pytest.approx(plain.losses, rel=1e-5)
    (a, _), (b, _) = (_checkpoint_at(tmp_path / n, 3) for n in ("plain", "offload"))
    for group in ("model", "ema"):
        for name in a[group]:
            torch.testing.assert_close(b[group][name], a[group][name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # three torchrun jobs of 2 gloo ranks, each compiling torchao's update (minutes)
def test_two_rank_fsdp_eight_bit_resume_is_exact(tmp_path) -> None:
    """``torchrun --nproc_per_node 2 ... train --fsdp --optimizer adamw8bit``: each rank's 8-bit state
    is gathered into the checkpoint and split back into its rows on resume, bit for bit."""
    pytest.importorskip("torchao")
    from test_train_fsdp import _torchrun_train

    data = make_dataset(tmp_path / "data", videos=8)
    make_text_cache(tmp_path / "cache", data)
    config = tiny_config(max_steps=4, checkpoint_every=2, preview_every=0, optimizer="adamw8bit")
    (tmp_path / "train.json").write_text(config.to_json())
    runs = (("straight", ()), ("resumed", ("--max-steps", "2")), ("resumed", ("--resume",)))
    for name, extra in runs:
        done = _torchrun_train(tmp_path, tmp_path / name, "--fsdp", "--max-steps", "4", *extra)
        assert done.returncode == 0, done.stderr[-3000:]
    (a, a_state), (b, b_state) = (_checkpoint_at(tmp_path / n, 4) for n in ("straight", "resumed"))
    assert a_state["world_size"] == b_state["world_size"] == 2
    # quantised where a rank's shard holds >= 4096 values: the cross-attention kv weights (16 x 384 rows)
    codes = sorted(name for name in a["optimizer"] if name.endswith(".codes"))
    assert "mid.0.cross.kv.weight/exp_avg.codes" in codes and len(codes) == 8
    assert a_state["optimizer"]["packed"] == b_state["optimizer"]["packed"]
    for group in ("model", "ema", "optimizer"):
        assert a[group].keys() == b[group].keys()
        for name in a[group]:
            assert torch.equal(a[group][name], b[group][name]), (group, name)
