"""``benchmarks/conditional_quality.py``: its case order, world measurements and the merge of runs."""

from __future__ import annotations

import argparse
import json
import runpy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from imagen_video.world import MOTIONS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "conditional_quality.py"


@pytest.fixture(scope="module")
def bench() -> dict:
    return runpy.run_path(str(SCRIPT))


def test_cases_take_turns_over_motions_and_cover_every_combo(bench: dict) -> None:
    cases = bench["task_combos"]("animate", None)
    assert len({c for c, _ in cases}) == 108 and len({seed for _, seed in cases}) == 108
    assert Counter(c.motion for c, _ in cases[:24]) == {m: 4 for m in MOTIONS}
    assert cases[24:36] == bench["task_combos"]("animate", 36, start=24)
    moving = bench["task_combos"]("first_last", None)
    assert len(moving) == 72 and all(c.motion.startswith("moving") for c, _ in moving)


def test_track_and_slope_read_a_rendered_motion(bench: dict) -> None:
    from imagen_video.world import Combo

    video = bench["render"](Combo("red", "square", "moving right"), 16, 48, 80, 3)
    position, present = bench["track"](video, "moving right")
    assert present.all() and bench["slope"](position) > 0
    steps = np.diff(position)
    assert steps.std() < 0.05 * steps.mean()  # rendered at constant speed
    assert bench["psnr"](video[:, 0], video[:, 0]) == float("inf")
    assert bench["psnr"](torch.zeros(3, 2, 2), torch.full((3, 2, 2), 0.1)) == pytest.approx(20.0)


def test_merge_joins_rows_and_summarizes_again(bench: dict, tmp_path: Path) -> None:
    def run(matches: list[bool], seconds: float) -> dict:
        rows = [{"prompt": "p", "match": m, "psnr_frame0": 40.0} for m in matches]
        cell = {**bench["summarize"](rows), "seconds": seconds, "rows": rows}
        return {"command": f"run {seconds}", "cells": {"replacement/animate": cell}}

    for name, matches, seconds in (("a", [True, False], 1.0), ("b", [True, True], 2.0)):
        (tmp_path / f"{name}.json").write_text(json.dumps(run(matches, seconds)))
    merged = bench["merge"]([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    cell = merged["cells"]["replacement/animate"]
    assert cell["videos"] == 4 and cell["match"] == 0.75 and cell["seconds"] == 3.0
    assert merged["command"] == ["run 1.0", "run 2.0"]


@pytest.mark.parametrize("motion", MOTIONS)
def test_seam_ratio_reads_one_on_a_rendered_continuation(bench: dict, motion: str) -> None:
    from imagen_video.world import Combo

    clip = bench["render"](Combo("green", "circle", motion), 32, 48, 80, 11)  # (C, 32, H, W)
    context = clip[:, : bench["CONTEXT"]]
    assert bench["seam_ratio"](context, clip, motion) == pytest.approx(1.0, abs=0.1)
    faster = clip[:, list(range(16)) + list(range(17, 32, 2))]  # twice the speed after frame 15
    assert bench["seam_ratio"](context, faster, motion) == pytest.approx(2.0, abs=0.2)
    stalled = torch.cat([clip[:, :16], clip[:, 15:16].expand(-1, 16, -1, -1)], dim=1)
    assert bench["seam_ratio"](context, stalled, motion) == pytest.approx(0.0, abs=0.05)  # no jump, a stall
    gone = clip.clone()
    gone[:, 17] = 0.0
    assert bench["seam_ratio"](context, gone, motion) is None


@pytest.mark.parametrize("motion", MOTIONS)
def test_backward_seam_reads_one_on_the_time_reversed_rendered_clip(bench: dict, motion: str) -> None:
    from imagen_video.world import Combo

    reverse = bench["render"](Combo("green", "circle", motion), 32, 48, 80, 11).flip(1)  # as run_extend
    assert bench["seam_ratio"](reverse[:, : bench["CONTEXT"]], reverse, motion) == pytest.approx(1.0, abs=0.1)
    assert bench["size_drift"](reverse, reverse) == pytest.approx(0.0)
    assert "extend_backward" in bench["TASKS"]


def test_stage_positions_count_frames_of_the_clips_own_motion(bench: dict) -> None:
    from imagen_video.world import Combo

    clip = bench["render"](Combo("red", "square", "moving down"), 32, 48, 80, 5)
    stages = {"base": clip[:, ::4] * 2 - 1, "top": clip * 2 - 1}  # a continuation at the clip's speed
    out = bench["stage_positions"](stages, clip, "moving down")
    assert np.allclose(out["stage_positions"]["base"], np.arange(0, 32, 4), atol=0.15)
    assert np.allclose(out["stage_positions"]["top"], np.arange(32), atol=0.15)
    assert out["base_ratio"] == pytest.approx(1.0, abs=0.02)
    faster = {"base": torch.cat([clip[:, 0:16:4], clip[:, 20:32:4]], dim=1) * 2 - 1}  # jumps ahead by 4
    assert bench["stage_positions"](faster, clip[:, :28], "moving down")["base_ratio"] > 1.2


@pytest.mark.parametrize("keep", [False, True])
def test_sampling_keeps_the_input_only_when_asked(bench: dict, keep: bool) -> None:
    args = argparse.Namespace(weight=2.0, keep_input=keep, overrides={}, seed=0, start=24, batch=12)
    options = bench["sampling"]("reconstruction", args, 1)
    assert options["keep_input"] is keep and options["weight"] == 2.0
    assert torch.equal(options["generator"].get_state(), torch.Generator().manual_seed(3).get_state())


def test_size_drift_is_the_mean_log_area_ratio_of_the_new_frames(bench: dict) -> None:
    clip = torch.zeros(3, 32, 48, 80)
    clip[:, :, 20:28, 30:38] = 1.0  # an 8x8 white square in every frame
    assert bench["size_drift"](clip, clip) == pytest.approx(0.0)
    bigger = clip.clone()
    bigger[:, 16:, 20:32, 30:42] = 1.0  # 12x12 in the new frames
    assert bench["size_drift"](clip, bigger) == pytest.approx(np.log(144 / 64), abs=0.05)
    gone = clip.clone()
    gone[:, 20] = 0.0  # missing from a new frame
    assert bench["size_drift"](clip, gone) is None
