"""Stage folders and cascade directories: atomic save / load, and loading errors
that name the stage."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagen_video.cascade import (
    Cascade,
    CascadeLoadError,
    StageLoadError,
    assemble_cascade,
    load_stage,
    save_stage,
)
from imagen_video.cascade.directory import read_cascade_config, read_cascade_json
from imagen_video.cascade.presets import tiny_cascade, tiny_stage_unet
from imagen_video.models import VideoUNet
from test_cascade_helpers import HashTextEncoder, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cascade directory, written once (tests copy it before changing it)."""
    root = tmp_path_factory.mktemp("cascade") / "tiny"
    Cascade.from_config(tiny_cascade(), generator=torch.Generator().manual_seed(0)).save_pretrained(root)
    return root


@pytest.fixture()
def copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def test_save_load_stage_round_trip(tmp_path: Path) -> None:
    stage = tiny_cascade().stages[1]
    model = VideoUNet(stage.unet, generator=torch.Generator().manual_seed(5))
    folder = save_stage(tmp_path / "tsr", stage, model)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["tsr"]  # no temporary files left behind
    loaded_cfg, loaded = load_stage(folder)
    assert loaded_cfg == stage and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_save_stage_rejects_a_model_of_another_config(tmp_path: Path) -> None:
    stage = tiny_cascade().stages[1]
    with pytest.raises(ValueError, match="stage 'tsr': the model's UNetConfig differs"):
        save_stage(tmp_path / "tsr", stage, VideoUNet(tiny_stage_unet("base")))
    assert not (tmp_path / "tsr").exists()


def test_load_stage_errors_name_the_stage(copy: Path) -> None:
    (copy / "ssr" / "model.safetensors").unlink()
    with pytest.raises(StageLoadError, match=r"stage 'ssr': .*model.safetensors' is missing"):
        load_stage(copy / "ssr")
    (copy / "tsr" / "config.json").unlink()
    with pytest.raises(StageLoadError, match=r"stage 'tsr': .*config.json' is missing"):
        load_stage(copy / "tsr")
    (copy / "base" / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StageLoadError, match="stage 'base': invalid config.json"):
        load_stage(copy / "base")
    with pytest.raises(StageLoadError, match="stage 'nope': folder .* does not exist"):
        load_stage(copy / "nope")


def test_mismatched_weights_are_named(copy: Path) -> None:
    config = json.loads((copy / "tsr" / "config.json").read_text())
    config["unet"]["levels"][1]["channels"] = 32  # a wider network than the saved weights
    (copy / "tsr" / "config.json").write_text(json.dumps(config))
    with pytest.raises(StageLoadError, match=r"stage 'tsr': weights do not match its config: .*wrong shape"):
        load_stage(copy / "tsr")


def test_from_pretrained_errors_name_the_stage(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(CascadeLoadError, match="is not a cascade directory: it has no cascade.json"):
        Cascade.from_pretrained(copy / "base")
    with pytest.raises(CascadeLoadError, match="is not a cascade directory: it does not exist"):
        Cascade.from_pretrained(tmp_path / "missing")
    (copy / "ssr" / "model.safetensors").unlink()
    with pytest.raises(CascadeLoadError, match=r"stage 'ssr': .*model.safetensors' is missing"):
        Cascade.from_pretrained(copy)
    shutil.rmtree(copy / "tsr")
    with pytest.raises(CascadeLoadError, match="stage 'tsr': folder .* does not exist"):
        Cascade.from_pretrained(copy)


def test_stage_folder_must_match_cascade_json(copy: Path) -> None:
    manifest = json.loads((copy / "cascade.json").read_text())
    manifest["config"]["stages"][2]["height"] = 32
    manifest["config"]["stages"][2]["width"] = 32
    (copy / "cascade.json").write_text(json.dumps(manifest))
    message = r"stage 'ssr': .* does not match cascade.json \(differs in height, width"
    with pytest.raises(CascadeLoadError, match=message):
        Cascade.from_pretrained(copy)


def test_cascade_json_sampling_fields_override_the_stage_defaults(copy: Path) -> None:
    manifest = json.loads((copy / "cascade.json").read_text())
    manifest["config"]["stages"][0]["sampler"]["steps"] = 7
    manifest["config"]["stages"][1]["aug_logsnr"] = 3.0
    (copy / "cascade.json").write_text(json.dumps(manifest))
    cascade = Cascade.from_pretrained(copy)
    assert cascade.config.stage("base").sampler.steps == 7
    assert cascade.config.stage("tsr").aug_logsnr == 3.0
    assert read_cascade_json(copy).config.stage_names == ("base", "tsr", "ssr")
    assert read_cascade_config(copy / "cascade.json") == read_cascade_config(copy)


def test_not_a_cascade_file(copy: Path) -> None:
    (copy / "cascade.json").write_text(json.dumps({"stages": []}))
    with pytest.raises(CascadeLoadError, match="is not a cascade file"):
        Cascade.from_pretrained(copy)


def test_save_pretrained_records_the_text_encoder_identity(tmp_path: Path) -> None:
    cascade = Cascade.from_config(tiny_cascade(), text_encoder=HashTextEncoder())
    cascade.save_pretrained(tmp_path / "c")
    assert read_cascade_json(tmp_path / "c").text_encoder_identity == "hash:384:L16"
    reloaded = Cascade.from_pretrained(tmp_path / "c", text_encoder=HashTextEncoder(max_length=8))
    with pytest.warns(UserWarning, match="differs from the one the cascade was saved with"):
        reloaded.text_encoder  # noqa: B018


def test_assemble_copies_trained_stage_folders_in_chain_order(saved: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("ssr", "base", "tsr"):  # training runs keep each stage in <run>/stage
        shutil.copytree(saved / name, runs / name / "stage")
    out = tmp_path / "assembled"
    config = assemble_cascade(
        out,
        name="tiny",
        text_encoder="embedded",
        text_max_length=16,
        stage_dirs=[runs / n / "stage" for n in ("ssr", "tsr", "base")],
    )
    assert config.stage_names == ("base", "tsr", "ssr")
    assert config == read_cascade_json(out).config == read_cascade_json(saved).config
    loaded = Cascade.from_pretrained(out)
    for name in config.stage_names:
        original = load_stage(saved / name)[1].state_dict()
        assert all(torch.equal(original[k], v) for k, v in loaded.models[name].state_dict().items())
    # In place: the folders already in the directory, the order given explicitly.
    (out / "cascade.json").unlink()
    again = assemble_cascade(
        out, name="x", text_encoder="embedded", text_max_length=16, order=["base", "tsr", "ssr"]
    )
    assert again.name == "x" and (out / "cascade.json").is_file()


def test_assemble_errors(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one base stage"):
        assemble_cascade(
            tmp_path / "a",
            name="t",
            text_encoder="embedded",
            text_max_length=16,
            stage_dirs=[saved / "tsr", saved / "ssr"],
        )
    with pytest.raises(ValueError, match=r"stage 'ssr': input shape"):
        assemble_cascade(
            tmp_path / "b",
            name="t",
            text_encoder="embedded",
            text_max_length=16,
            stage_dirs=[saved / "base", saved / "ssr"],
            order=["base", "ssr"],
        )
    with pytest.raises(ValueError, match="gives width 32; the stages take 384"):
        assemble_cascade(
            tmp_path / "c",
            name="t",
            text_encoder="embedded",
            text_max_length=16,
            stage_dirs=[saved / "base"],
            text_dim=32,
        )
    assert not (tmp_path / "c" / "cascade.json").exists()
