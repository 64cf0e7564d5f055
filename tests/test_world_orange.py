"""Orange, the color outside the shipped training data: rendered and recognised like the six tier-1
colors, while everything about those six (renders, captions, ``data synth`` output) is unchanged.
The pinned digests were computed with the world before orange existed."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest

from imagen_video.cli import main as cli_main
from imagen_video.world.analyze import analyze_clip
from imagen_video.world.render import render_batch, render_clip
from imagen_video.world.spec import (
    ALL_COMBOS,
    ALL_STILLS,
    COLORS,
    MOTIONS,
    PALETTE,
    SHAPES,
    Combo,
    all_paraphrases,
    paraphrase,
    parse_caption,
)
from imagen_video.world.synth import SynthConfig, synthesize


def test_six_color_renders_are_bit_identical_to_before() -> None:
    digest = hashlib.sha256(render_batch(ALL_COMBOS, frames=6, height=24, width=40, seed=5).tobytes())
    for i, combo in enumerate(ALL_STILLS):
        digest.update(render_clip(combo, frames=1, height=24, width=40, seed=i)[0].tobytes())
    assert digest.hexdigest() == "310f7966391dab9518514fed6abe6bb59e3c27f922e7bc7c52487a0ba161830d"


def test_six_color_captions_and_paraphrases_are_unchanged() -> None:
    digest = hashlib.sha256()
    for combo in (*ALL_COMBOS, *ALL_STILLS):
        digest.update(combo.caption.encode())
        digest.update("|".join(all_paraphrases(combo)).encode())
        digest.update(paraphrase(combo, np.random.default_rng(0)).encode())
    assert digest.hexdigest() == "63a440161456c44e54e5777145d28544cbf6592b39615c036a4b94434573e3ea"
    assert tuple(COLORS) == ("red", "green", "blue", "yellow", "magenta", "white")
    assert len(ALL_COMBOS) == 108 and len(ALL_STILLS) == 18


def test_default_synth_output_is_unchanged(tmp_path) -> None:
    config = SynthConfig(num_videos=6, num_images=3, frames=4, height=24, width=40, paraphrase_prob=0.5)
    synthesize(tmp_path, config, progress=False)
    digest = hashlib.sha256()
    for name in ("manifest.jsonl", "synth_config.json"):
        digest.update((tmp_path / name).read_bytes())
    for path in sorted(tmp_path.glob("*/*.npz")):
        digest.update(np.load(path)["frames"].tobytes())
    assert digest.hexdigest() == "c3e59fabe01fcf26a84c6b2ab05ace3c3b15ef9787edbeb79fd861e6947f538a"
    assert "colors" not in json.loads((tmp_path / "synth_config.json").read_text())


def test_orange_is_rendered_at_its_rgb_and_captioned_with_an() -> None:
    assert PALETTE["orange"] == (255, 128, 0)
    frame = render_clip(Combo("orange", "square"), frames=1, height=48, width=80, seed=0)[0][0]
    inside = frame[frame.max(axis=-1) == 255]
    assert inside.size and (inside == (255, 128, 0)).all()
    combo = Combo("orange", "triangle", "moving left")
    assert combo.caption == "an orange triangle moving left"
    assert parse_caption(combo.caption) == combo and combo.as_text() == "orange triangle moving left"
    wordings = all_paraphrases(Combo("orange", "circle")) + all_paraphrases(combo)
    assert all(("an orange" in p or p.startswith("the orange")) and "a orange" not in p for p in wordings)
    assert "a picture of an orange disc" in wordings


@pytest.mark.parametrize(("height", "width"), [(24, 40), (48, 80)])
def test_analyzer_recognises_every_orange_clip(height: int, width: int) -> None:
    combos = [Combo("orange", s, m) for s, m in itertools.product(SHAPES, MOTIONS)]
    for seed in range(2):
        for combo in combos:
            clip, _ = render_clip(combo, frames=16, height=height, width=width, seed=seed)
            assert analyze_clip(clip).matches(combo), (combo, seed)


def test_data_synth_colors_writes_only_orange(tmp_path, capsys) -> None:
    out = tmp_path / "orange"
    code = cli_main(
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--num",
            "3",
            "--images",
            "5",
            "--frames",
            "4",
            "--colors",
            "orange",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["video"] * 3 + ["image"] * 5
    assert {r["attributes"]["color"] for r in records} == {"orange"}
    assert all("orange" in r["caption"] for r in records)
    code = cli_main(["data", "synth", "--out", str(tmp_path / "bad"), "--num", "1", "--colors", "purple"])
    assert code == 2 and "colors must be distinct colors from {red, " in capsys.readouterr().err
