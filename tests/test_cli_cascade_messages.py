"""`cascade` command messages: shipped names in `show`, quotes kept, a missing stage named by the input
shape nobody produces, the text token length taken from the stages' preset, and `init` in the help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagen_video.cascade.presets import tiny_cascade
from imagen_video.cli import build_parser, main


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("c") / "tiny"
    assert main(["cascade", "init", str(root), "--preset", "tiny"]) == 0
    return root


def test_show_takes_the_shipped_name(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["cascade", "show", "demo"]) == 0
    assert capsys.readouterr().out.startswith("cascade 'demo': text encoder embedded")


def test_missing_directory_message_keeps_its_quotes(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere"
    assert main(["cascade", "show", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"error: '{missing}' is not a cascade directory: it does not exist" in err


def test_assemble_names_the_input_without_a_producer(tiny_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["cascade", "assemble", str(tmp_path / "c"), str(tiny_dir / "base"), str(tiny_dir / "ssr")]
    assert main([*argv, "--no-text-check"]) == 2
    err = capsys.readouterr().err
    assert (
        "no stage takes stage 'base''s output 4x8x8 (frames x height x width) as its input "
        "(ssr takes 8x8x8): a stage producing the input of ssr is missing"
    ) in err


def test_assemble_takes_the_token_length_of_the_stages_preset(tiny_dir: Path, tmp_path: Path) -> None:
    stages = [str(tiny_dir / name) for name in ("base", "tsr", "ssr")]
    assert main(["cascade", "assemble", str(tmp_path / "c"), *stages, "--no-text-check"]) == 0
    saved = json.loads((tmp_path / "c" / "cascade.json").read_text())
    text = json.dumps(saved)
    assert tiny_cascade().text_max_length == 16 and '"text_max_length": 16' in text


def test_assemble_of_unknown_stages_asks_for_the_token_length(tiny_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((tiny_dir / "base" / "config.json").read_text())
    config["unet"]["dropout"] = 0.25  # a network no preset has
    custom = tmp_path / "base"
    custom.mkdir()
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "model.safetensors").write_bytes((tiny_dir / "base" / "model.safetensors").read_bytes())
    argv = ["cascade", "assemble", str(tmp_path / "c"), str(custom), "--no-text-check"]
    assert main(argv) == 2
    assert "match no preset's stages" in capsys.readouterr().err
    assert main([*argv, "--text-encoder", "embedded", "--text-max-length", "16"]) == 0


def test_top_level_help_names_the_init_action() -> None:
    help_text = build_parser().format_help()
    line = next(line for line in help_text.splitlines() if line.strip().startswith("cascade"))
    assert "init" in line and "create" not in line
