"""`data synth --tier2-fraction`: tier-2 records, the training data loader, tier 1 unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagen_video.cli import main
from imagen_video.data import StageDataSpec, VideoTextDataset, collate_video_text
from imagen_video.world.analyze_tier2 import scene_accuracy
from imagen_video.world.synth import SynthConfig, synthesize
from imagen_video.world.tier2 import PairScene, TextScene, all_scene_paraphrases, scene_from_attributes


def _records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]


def test_cli_writes_tier2_records_that_load_through_the_training_data_loader(tmp_path: Path) -> None:
    out = tmp_path / "world"
    args = ["data", "synth", "--out", str(out), "--num", "16", "--images", "2", "--frames", "8", "--quiet"]
    args += [
        "--height",
        "48",
        "--width",
        "80",
        "--tier2-fraction",
        "0.6",
        "--paraphrase-prob",
        "0.5",
        "--seed",
        "1",
    ]
    assert main(args) == 0
    records = _records(out)
    scenes = [scene_from_attributes(r["attributes"]) for r in records]
    kinds = [r["attributes"].get("scene", "one") for r in records]
    assert {"one", "two", "text"} <= set(kinds) and kinds[-2:] == ["one", "one"]  # images stay tier 1
    clips = []
    for record, scene in zip(records, scenes, strict=True):
        frames = np.load(out / record["media"])["frames"]
        assert frames.dtype == np.uint8 and frames.shape == (
            (8 if record["kind"] == "video" else 1),
            48,
            80,
            3,
        )
        assert record["attributes"]["canonical_caption"] == scene.caption
        if isinstance(scene, (PairScene, TextScene)):
            assert record["fps"] == 8.0 and record["kind"] == "video"
            assert record["caption"] == scene.caption or record["caption"] in all_scene_paraphrases(scene)
            assert record["attributes"]["paraphrased"] == (record["caption"] != scene.caption)
            assert set(record["attributes"]["geometry"]) == (
                {"first", "second"}
                if isinstance(scene, PairScene)
                else {"x0", "y0", "x1", "y1", "height", "aspect"}
            )
            clips.append((frames, scene))
    # the stored attributes are the true ones
    assert scene_accuracy([c for c, _ in clips], [s for _, s in clips])["overall"] == 1.0
    spec = StageDataSpec(frames=8, height=24, width=40, fps=8.0, cond_frames=8, cond_height=12, cond_width=20,
                         use_images=True)  # fmt: skip
    dataset = VideoTextDataset(out, spec, seed=0)
    batch = collate_video_text([dataset[i] for i in range(len(dataset.records))])
    assert batch["video"].shape == (18, 3, 8, 24, 40) and batch["cond_video"].shape == (18, 3, 8, 12, 20)
    assert dataset.skipped == 0 and batch["image_mode"].sum().item() == 2
    assert batch["caption"] == [r["caption"] for r in records]
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0


def test_tier1_videos_and_default_output_are_unchanged(tmp_path: Path) -> None:
    plain = SynthConfig(num_videos=12, num_images=2, frames=4, seed=3)
    mixed = plain.replace(tier2_fraction=0.5)
    a = synthesize(tmp_path / "a", plain, progress=False).parent
    b = synthesize(tmp_path / "b", mixed, progress=False).parent
    tier1 = [i for i, r in enumerate(_records(b)) if "scene" not in r["attributes"]]
    assert 2 < len(tier1) < 14
    for i in tier1:  # a tier-1 video of a mixed dataset is the tier-1-only dataset's video of that index
        assert _records(a)[i] == _records(b)[i]
        assert np.array_equal(
            np.load(a / _records(a)[i]["media"])["frames"], np.load(b / _records(b)[i]["media"])["frames"]
        )
    config = json.loads((a / "synth_config.json").read_text())
    assert not {"tier2_fraction", "tier2_scenes"} & set(config)  # written exactly as before tier 2
    assert SynthConfig.from_dict(config) == plain
    saved = json.loads((b / "synth_config.json").read_text())
    assert saved["tier2_fraction"] == 0.5 and SynthConfig.from_dict(saved) == mixed
    odd = plain.replace(tier2_fraction=0.2, tier2_scenes=("text",))
    assert SynthConfig.from_json(odd.to_json()) == odd


def test_deterministic_prefix_stable_and_scene_selection(tmp_path: Path) -> None:
    config = SynthConfig(num_videos=10, frames=4, height=24, width=40, seed=2, tier2_fraction=1.0)
    a = _records(synthesize(tmp_path / "a", config, progress=False).parent)
    b = _records(synthesize(tmp_path / "b", config, progress=False).parent)
    c = _records(synthesize(tmp_path / "c", config.replace(num_videos=4), progress=False).parent)
    assert a == b and a[:4] == c and all("scene" in r["attributes"] for r in a)
    texts = _records(
        synthesize(tmp_path / "d", config.replace(tier2_scenes=("text",)), progress=False).parent
    )
    assert {r["attributes"]["scene"] for r in texts} == {"text"}
    assert len({r["attributes"]["word"] for r in texts}) > 3


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--tier2-fraction", "1.5"], r"tier2_fraction must be in [0, 1], got 1.5"),
        (
            ["--tier2-fraction", "0.5", "--tier2-scenes", "two,three"],
            "tier2_scenes must be distinct kinds from {two, text}",
        ),
        (["--tier2-fraction", "0.5", "--height", "64", "--width", "40"], "no room for"),
    ],
)
def test_bad_tier2_options_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], expected: str
) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "out"), "--num", "2", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()
    # a tier-1 dataset does not need room for tier-2 scenes (the same 64x40 frame is fine without them)
    assert main(["data", "synth", "--out", str(tmp_path / "t1"), "--num", "2", "--quiet", "--height", "64",
                 "--width", "40"]) == 0  # fmt: skip
