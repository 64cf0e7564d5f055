"""`imagen-video data synth`: manifest + npz media, determinism, holdout, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagen_video.cli import main
from imagen_video.world.analyze import analyze_clip
from imagen_video.world.spec import ALL_COMBOS, DEFAULT_HOLDOUT, Combo, all_paraphrases
from imagen_video.world.synth import SynthConfig, synthesize


def _records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]


def _synth(directory: Path, *extra: str) -> int:
    args = ["data", "synth", "--out", str(directory), "--num", "12", "--frames", "8", "--quiet", *extra]
    return main(args)


def test_cli_writes_manifest_pointing_to_npz_with_the_right_shapes(tmp_path: Path) -> None:
    out = tmp_path / "world"
    assert _synth(out, "--images", "4", "--height", "24", "--width", "40", "--fps", "6", "--seed", "3") == 0
    records = _records(out)
    assert [r["kind"] for r in records] == ["video"] * 12 + ["image"] * 4
    for record in records:
        frames = np.load(out / record["media"])["frames"]
        assert frames.dtype == np.uint8
        attributes = record["attributes"]
        combo = Combo(attributes["color"], attributes["shape"], attributes.get("motion"))
        assert attributes["canonical_caption"] == combo.caption
        assert record["caption"] == combo.caption or record["caption"] in all_paraphrases(combo)
        if record["kind"] == "video":
            assert frames.shape == (8, 24, 40, 3) and record["fps"] == 6.0
        else:
            assert frames.shape == (1, 24, 40, 3) and "fps" not in record and "motion" not in attributes
        assert analyze_clip(frames).matches(combo)  # the stored attributes are the true ones
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave no temporaries
    assert json.loads((out / "synth_config.json").read_text())["seed"] == 3


def test_deterministic_per_seed_and_prefix_stable(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", SynthConfig(num_videos=6, frames=4, seed=1), progress=False).parent
    b = synthesize(tmp_path / "b", SynthConfig(num_videos=6, frames=4, seed=1), progress=False).parent
    c = synthesize(tmp_path / "c", SynthConfig(num_videos=3, frames=4, seed=1), progress=False).parent
    d = synthesize(tmp_path / "d", SynthConfig(num_videos=6, frames=4, seed=2), progress=False).parent
    assert _records(a) == _records(b) and _records(a)[:3] == _records(c)
    assert _records(a) != _records(d)
    for record in _records(a):
        assert np.array_equal(np.load(a / record["media"])["frames"], np.load(b / record["media"])["frames"])


def test_holdout_is_never_emitted(tmp_path: Path) -> None:
    keep = {Combo("red", "circle", "moving left"), Combo("blue", "triangle", "growing")}
    holdout = tmp_path / "holdout.txt"
    holdout.write_text("# all but two\n" + "\n".join(c.as_text() for c in ALL_COMBOS if c not in keep) + "\n")
    out = tmp_path / "world"
    assert _synth(out, "--holdout", str(holdout), "--num", "40", "--images", "6", "--seed", "8") == 0
    videos = [r for r in _records(out) if r["kind"] == "video"]
    seen = {
        Combo(r["attributes"]["color"], r["attributes"]["shape"], r["attributes"]["motion"]) for r in videos
    }
    assert seen == keep
    config = SynthConfig(
        num_videos=300, frames=2, height=12, width=20, holdout=tuple(c.as_text() for c in DEFAULT_HOLDOUT)
    )
    records = _records(synthesize(tmp_path / "default", config, progress=False).parent)
    emitted = {r["attributes"]["canonical_caption"] for r in records}
    assert not emitted & {c.caption for c in DEFAULT_HOLDOUT} and len(emitted) > 80


def test_refuses_non_empty_directory_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "world"
    assert _synth(out) == 0
    assert _synth(out, "--num", "3") == 2
    assert "not empty" in capsys.readouterr().err
    (out / "notes.txt").write_text("keep me")
    assert _synth(out, "--num", "3", "--overwrite") == 0
    assert len(_records(out)) == 3 and len(list((out / "videos").iterdir())) == 3
    assert (out / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("red circel moving left", "unknown shape 'circel'; allowed: circle, square, triangle"),
        ("red circle moving sideways", "allowed: moving left, moving right, moving up"),
        ("pink circle growing", "unknown color 'pink'; allowed: red, green, blue, yellow, magenta, white"),
        ("red circle", "has no motion"),
    ],
)
def test_bad_holdout_lines_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture, line: str, expected: str
) -> None:
    holdout = tmp_path / "holdout.txt"
    holdout.write_text(f"green square growing\n{line}\n")
    assert _synth(tmp_path / "out", "--holdout", str(holdout)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holdout.txt:2: " in err and expected in err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_config_validation_names_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"paraphrase_prob must be in \[0, 1\]"):
        SynthConfig(num_videos=1, paraphrase_prob=1.5)
    with pytest.raises(ValueError, match="frames must be >= 2"):
        SynthConfig(num_videos=1, frames=1)
    with pytest.raises(ValueError, match="nothing to write"):
        SynthConfig(num_videos=0)
    with pytest.raises(ValueError, match="excludes every combination"):
        SynthConfig(num_videos=1, holdout=tuple(c.as_text() for c in ALL_COMBOS))
    config = SynthConfig(num_videos=2, holdout=("red circle moving up",))
    assert SynthConfig.from_json(config.to_json()) == config


def test_paraphrase_probability_extremes(tmp_path: Path) -> None:
    canonical = synthesize(
        tmp_path / "a", SynthConfig(num_videos=20, frames=2, paraphrase_prob=0.0), progress=False
    )
    assert all(r["caption"] == r["attributes"]["canonical_caption"] for r in _records(canonical.parent))
    varied = synthesize(
        tmp_path / "b", SynthConfig(num_videos=20, frames=2, paraphrase_prob=1.0), progress=False
    )
    assert sum(r["attributes"]["paraphrased"] for r in _records(varied.parent)) >= 15
