"""``--help`` of every subcommand (and every nested one), discovered from the parser, so a new command
is covered without touching this file."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from imagen_video.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every subcommand path below ``parser``, e.g. ``("generate",)``, ``("data", "synth")``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found.extend(_commands(sub, (*prefix, name)))
    return found


COMMANDS = _commands(build_parser())


def test_every_module_with_register_is_a_command() -> None:
    import importlib
    import pkgutil

    import imagen_video.cli as cli

    modules = [m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")]
    loaded = [importlib.import_module(f"imagen_video.cli.{m}") for m in modules]
    registering = [module for module in loaded if hasattr(module, "register")]
    top = {path[0] for path in COMMANDS}
    assert len(top) == len(registering) >= 8 and {"generate", "train", "evaluate", "encode-text"} <= top


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_exits_0_and_names_the_command(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith(f"usage: imagen-video {' '.join(command)}")
    assert "-h, --help" in out


def test_top_level_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imagen_video.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert all(name in result.stdout for name in {path[0] for path in COMMANDS})
