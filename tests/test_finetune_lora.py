"""LoRA adapters (peft) on cascade stages: target layers, merge algebra, the adapter folder and its base
check, ``finetune`` on a tiny cascade (frozen base, resume), ``generate --lora`` and ``merge-lora``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagen_video.cascade.presets import get_cascade_preset
from imagen_video.cascade.runner import Cascade
from imagen_video.cascade.stage_io import load_stage
from imagen_video.cli import main as cli_main
from imagen_video.data import load_records
from imagen_video.finetune import (
    AdapterConfig,
    AdapterError,
    LoraSpec,
    apply_adapters,
    finetune,
    load_adapter,
    merge_adapter,
    prepare_data,
    target_modules,
)
from imagen_video.finetune.adapter import adapter_state, add_adapter, parse_lora_option
from imagen_video.models import VideoUNet
from imagen_video.train import TrainConfig, TrainSetupError
from imagen_video.world.synth import SynthConfig, synthesize
from test_cascade_helpers import single_thread
from test_train_loop import make_text_cache

TINY = get_cascade_preset("tiny")
pytest.importorskip("peft")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    yield from single_thread()


def _unet(seed: int = 0) -> VideoUNet:
    return VideoUNet(TINY.stage("base").unet, generator=torch.Generator().manual_seed(seed))


def _inputs(model: VideoUNet, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    cfg = TINY.stage("base")
    z = torch.randn(2, 3, cfg.frames, cfg.height, cfg.width, generator=g)
    tokens = torch.randn(2, 5, model.config.text.dim, generator=g)
    return z, torch.tensor([-2.0, 3.0]), tokens, torch.ones(2, 5, dtype=torch.bool)


def _randomise_b(model: torch.nn.Module, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=g))


def _config(target: str = "attention+conv", rank: int = 2, alpha: float = 4.0) -> AdapterConfig:
    return AdapterConfig(
        rank=rank, alpha=alpha, target=target, base_cascade="tiny", stages=(), base_sha256=()
    )


def test_targets_are_nested_sets_of_the_unets_layers() -> None:
    model = _unet()
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    convs = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    attention = set(target_modules(model, "attention"))
    assert attention and attention <= linears
    assert {n.rsplit(".", 1)[-1] for n in attention} <= {"qkv", "q", "kv", "out"}
    assert all(n.rsplit(".", 2)[-2] in ("spatial", "cross", "temporal") for n in attention)
    assert set(target_modules(model, "attention+conv")) == attention | convs
    assert set(target_modules(model, "all")) == linears | convs
    with pytest.raises(ValueError, match="allowed: attention, attention\\+conv, all"):
        target_modules(model, "convs")


def test_fresh_adapter_is_the_identity_and_only_lora_weights_train() -> None:
    base = _unet()
    inputs = _inputs(base)
    with torch.no_grad():
        expected = base(*inputs)
    model = add_adapter(_unet(), rank=2, alpha=4.0, target="attention+conv")
    with torch.no_grad():
        assert torch.equal(model(*inputs), expected)  # B = 0
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    state = adapter_state(model)
    per_layer = 2 * len(target_modules(base, "attention+conv"))
    assert len(state) == per_layer  # one A and one B per adapted layer


def test_merge_equals_the_adapter_forward_and_scales_linearly() -> None:
    model = add_adapter(_unet(), rank=2, alpha=4.0, target="attention+conv")
    _randomise_b(model)
    inputs = _inputs(model)
    with torch.no_grad():
        adapted = model(*inputs)
    state, config = adapter_state(model), _config()
    merged = merge_adapter(_unet(), state, config)
    assert not any("lora" in k for k in merged.state_dict())
    assert set(merged.state_dict()) == set(_unet().state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(*inputs), adapted, rtol=1e-4, atol=1e-5)
    base = _unet().state_dict()
    double = merge_adapter(_unet(), state, config, scale=2.0).state_dict()
    zero = merge_adapter(_unet(), state, config, scale=0.0).state_dict()
    merged_state = merged.state_dict()
    for name, weight in base.items():  # W + s * (alpha / r) B A: linear in the scale s
        torch.testing.assert_close(zero[name], weight)
        torch.testing.assert_close(
            double[name] - weight, 2 * (merged_state[name] - weight), atol=1e-6, rtol=0
        )
    changed = {n.rsplit(".", 1)[0] for n in base if not torch.equal(merged_state[n], base[n])}
    assert changed == {n for n in target_modules(_unet(), "attention+conv")}


def test_lora_option_parses_dir_and_scale(tmp_path) -> None:
    assert parse_lora_option(str(tmp_path)) == (tmp_path, 1.0)
    assert parse_lora_option(f"{tmp_path}:0.5") == (tmp_path, 0.5)
    with pytest.raises(AdapterError, match="SCALE 'x' is not a number"):
        parse_lora_option(f"{tmp_path}:x")
    with pytest.raises(AdapterError, match="no adapter folder"):
        parse_lora_option(str(tmp_path / "missing"))


def test_prepare_data_keeps_images_and_mixes_replay_at_the_fraction(tmp_path) -> None:
    orange = tmp_path / "orange"
    synthesize(
        orange,
        SynthConfig(num_videos=3, num_images=6, frames=4, height=16, width=16, colors=("orange",)),
        progress=False,
    )
    replay = tmp_path / "replay"
    synthesize(replay, SynthConfig(num_videos=4, num_images=0, frames=4, height=16, width=16), progress=False)
    spec = LoraSpec(images_only=True, replay=str(replay), replay_fraction=0.6)
    records = load_records(prepare_data(orange, tmp_path / "out", spec, seed=0))
    assert [r.kind for r in records[:6]] == ["image"] * 6
    assert len(records) == 6 + round(6 * 0.6 / 0.4)  # 9 replay records from 4: every one, then more
    assert all(r.attributes["color"] == "orange" for r in records[:6])
    assert {r.attributes["color"] for r in records[6:]} <= {
        "red",
        "green",
        "blue",
        "yellow",
        "magenta",
        "white",
    }
    assert prepare_data(orange, tmp_path / "plain", LoraSpec(), seed=0) == orange
    with pytest.raises(ValueError, match="together"):
        LoraSpec(replay=str(replay))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict[str, Path]:
    """A tiny cascade, an orange-images + replay dataset, and a 6-step adapter on its base stage."""
    root = tmp_path_factory.mktemp("lora")
    model = root / "cascade"
    Cascade.from_config(TINY, generator=torch.Generator().manual_seed(0)).save_pretrained(model)
    orange, replay = root / "orange", root / "replay"
    size = {"frames": 16, "height": 16, "width": 16}
    synthesize(orange, SynthConfig(num_videos=0, num_images=8, colors=("orange",), **size), progress=False)
    synthesize(replay, SynthConfig(num_videos=8, num_images=0, **size), progress=False)
    cache = make_text_cache(root / "cache", orange)
    make_text_cache(cache, replay)
    spec = LoraSpec(
        rank=2, target="attention+conv", images_only=True, replay=str(replay), replay_fraction=0.5
    )
    cfg = TrainConfig(batch_size=4, lr=1e-2, warmup_steps=0, ema_decay=0.5, max_steps=6, checkpoint_every=3)
    out = root / "adapter"
    results = finetune(
        model, ["base"], orange, out, spec, cfg, device="cpu", progress=False, text_cache=cache
    )
    assert [(r.step, r.interrupted) for r in results] == [(6, False)]
    return {"model": model, "adapter": out, "cache": cache, "orange": orange, "spec": spec, "cfg": cfg}


def test_finetune_writes_a_small_adapter_and_keeps_the_base_frozen(tuned) -> None:
    from safetensors.torch import load_file

    config, weights = load_adapter(tuned["adapter"])
    assert (config.stages, config.rank, config.alpha, config.base_cascade) == (("base",), 2, 2.0, "tiny")
    assert len(config.base_sha256[0]) == 64
    assert any(t.abs().sum() > 0 for k, t in weights["base"].items() if "lora_B" in k)  # it trained
    _, base = load_stage(tuned["model"] / "base")
    lora_bytes = sum(t.numel() * t.element_size() for t in weights["base"].values())
    base_bytes = sum(t.numel() * t.element_size() for t in base.state_dict().values())
    assert lora_bytes < base_bytes / 2
    checkpoint = sorted((tuned["adapter"] / "runs" / "base" / "checkpoints").iterdir())[-1]
    saved = load_file(str(checkpoint / "model.safetensors"))
    for name, tensor in base.state_dict().items():  # peft keeps the frozen weight under base_layer
        key = (
            name
            if name in saved
            else name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        )
        assert torch.equal(saved[key], tensor), name


def test_finetune_refuses_an_existing_adapter_and_resumes_to_more_steps(tuned, tmp_path) -> None:
    args = (tuned["model"], ["base"], tuned["orange"], tuned["adapter"], tuned["spec"])
    with pytest.raises(TrainSetupError, match="already holds an adapter"):
        finetune(*args, tuned["cfg"], device="cpu", progress=False, text_cache=tuned["cache"])
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(tuned["adapter"], copy)
    results = finetune(
        tuned["model"],
        ["base"],
        tuned["orange"],
        copy,
        tuned["spec"],
        tuned["cfg"].replace(max_steps=8),
        resume=True,
        device="cpu",
        progress=False,
        text_cache=tuned["cache"],
    )
    assert [(r.start_step, r.step) for r in results] == [(6, 8)]
    _, before = load_adapter(tuned["adapter"])
    _, after = load_adapter(copy)
    assert any(not torch.equal(before["base"][k], after["base"][k]) for k in before["base"])


def test_finetune_refuses_the_eight_bit_optimizer(tuned, tmp_path) -> None:
    cfg = tuned["cfg"].replace(optimizer="adamw8bit")
    with pytest.raises(TrainSetupError, match="adapters with AdamW; drop adamw8bit"):
        finetune(
            tuned["model"], ["base"], tuned["orange"], tmp_path / "a", tuned["spec"], cfg,
            device="cpu", progress=False, text_cache=tuned["cache"],
        )  # fmt: skip


def test_generate_lora_merges_and_a_foreign_base_is_refused(tuned, tmp_path, capsys) -> None:
    plain = Cascade.from_pretrained(tuned["model"])
    adapted = apply_adapters(
        Cascade.from_pretrained(tuned["model"]), tuned["model"], [(tuned["adapter"], 1.0)]
    )
    changed = [
        k
        for k, v in plain.models["base"].state_dict().items()
        if not torch.equal(v, adapted.models["base"].state_dict()[k])
    ]
    assert changed and all(
        torch.equal(v, adapted.models["ssr"].state_dict()[k])
        for k, v in plain.models["ssr"].state_dict().items()
    )
    other = tmp_path / "other"
    Cascade.from_config(TINY, generator=torch.Generator().manual_seed(1)).save_pretrained(other)
    capsys.readouterr()  # only what the command prints
    code = cli_main(
        [
            "generate",
            "a red circle",
            "--model",
            str(other),
            "--lora",
            str(tuned["adapter"]),
            "-o",
            str(tmp_path / "x.gif"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "x.gif").exists()
    assert "was trained on cascade 'tiny', but stage 'base'" in err and len(err.splitlines()) == 1


def test_merge_lora_writes_a_plain_cascade_equal_to_the_merged_one(tuned, tmp_path, capsys) -> None:
    out = tmp_path / "merged"
    code = cli_main(
        ["cascade", "merge-lora", str(tuned["model"]), f"{tuned['adapter']}:0.5", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    merged = Cascade.from_pretrained(out)
    expected = apply_adapters(
        Cascade.from_pretrained(tuned["model"]), tuned["model"], [(tuned["adapter"], 0.5)]
    )
    for stage in TINY.stage_names:
        for name, tensor in expected.models[stage].state_dict().items():
            assert torch.equal(merged.models[stage].state_dict()[name], tensor), (stage, name)
    assert json.loads((out / "cascade.json").read_text())["config"]["name"] == TINY.name
    code = cli_main(
        ["cascade", "merge-lora", str(tuned["model"]), str(tuned["adapter"]), "--out", str(tuned["model"])]
    )
    assert code == 2 and "is the base cascade" in capsys.readouterr().err


def test_shipped_demo_orange_adapter_fits_the_shipped_demo_cascade() -> None:
    from imagen_video.cascade.registry import shipped_cascade_dir
    from imagen_video.finetune.adapter import check_base

    folder, scale = parse_lora_option("demo-orange:0.5")
    assert scale == 0.5 and folder.name == "demo_orange"
    config, weights = load_adapter(folder)
    assert (config.base_cascade, config.stages, config.rank, config.target) == (
        "demo",
        ("base", "ssr1", "ssr2"),
        8,
        "attention+conv",
    )
    check_base(config, shipped_cascade_dir("demo"), "demo-orange")  # raises on other weights
    with pytest.raises(AdapterError, match="was trained on cascade 'demo', but stage 'base'"):
        check_base(config, shipped_cascade_dir("demo-distilled"), "demo-orange")
    sizes = {stage: sum(t.numel() for t in w.values()) for stage, w in weights.items()}
    assert sizes == {"base": 200_432, "ssr1": 160_968, "ssr2": 74_696}  # 10%, 10%, 15% of the stages


def test_an_adapter_on_the_base_retires_the_frame_conditioned_base() -> None:
    from imagen_video.cascade import Cascade
    from imagen_video.cascade.registry import shipped_cascade_dir
    from imagen_video.finetune.adapter import apply_adapters

    cascade = Cascade.from_pretrained("demo", device="cpu")
    assert cascade.frame_base is not None
    apply_adapters(cascade, shipped_cascade_dir("demo"), [parse_lora_option("demo-orange")])
    assert cascade.frame_base is None  # fine-tuned from the plain base, it would drop the adapter
    with pytest.raises(ValueError, match="once a --lora adapter changes the base"):
        cascade.animate(
            torch.rand(3, 48, 80), "an orange circle moving up", method="finetuned", progress=False
        )


def test_lora_without_peft_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch) -> None:
    """Where the `lora` extra is not installed, --lora and finetune say how to install it (exit 2)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    out = tmp_path / "x.gif"
    argv = ["generate", "a red circle", "-o", str(out), "--lora", "demo-orange", "--device", "cpu"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'imagen-video[lora]'" in err and "Traceback" not in err
    assert not out.exists()
