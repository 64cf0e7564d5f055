"""Both in-domain evaluators together; the ground-truth row on rendered clips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from imagen_video.world.clip import load_world_clip
from imagen_video.world.evaluate import evaluate_world, ground_truth_row, render_prompts
from imagen_video.world.spec import ALL_COMBOS, DEFAULT_HOLDOUT

PROMPTS = [c.caption for c in DEFAULT_HOLDOUT] + [c.caption for c in ALL_COMBOS[::9]]


@pytest.fixture(scope="module")
def truth() -> dict:
    return ground_truth_row(PROMPTS, frames=16, height=24, width=40, seed=0)


def test_ground_truth_row_on_rendered_clips(truth: dict) -> None:
    assert truth["num_videos"] == len(PROMPTS)
    assert truth["attribute_accuracy"] == 1.0
    assert truth["r_precision"] >= 0.9
    assert 0.0 <= truth["clip_score"] <= 100.0
    assert truth["fd"] is not None and math.isfinite(truth["fd"]) and truth["fd"] >= 0.0
    assert set(truth["attributes"]["per_prompt"]) == set(PROMPTS)


def test_blank_videos_score_below_ground_truth(truth: dict) -> None:
    blank = np.zeros((len(PROMPTS), 3, 16, 24, 40), np.float32)  # (B, C, T, H, W) in [0, 1]
    result = evaluate_world(blank, PROMPTS, layout="CTHW")
    assert result["attribute_accuracy"] == 0.0
    assert result["clip_score"] < truth["clip_score"]
    assert result["r_precision"] < truth["r_precision"]
    assert result["fd"] > truth["fd"]


def test_single_video_has_no_fd_and_reference_can_be_given() -> None:
    model = load_world_clip()
    video = render_prompts(PROMPTS[:1], 16, 24, 40, seed=5)
    assert evaluate_world(video, PROMPTS[:1], model=model)["fd"] is None
    pair = render_prompts(PROMPTS[:4], 16, 24, 40, seed=5)
    same = evaluate_world(pair, PROMPTS[:4], reference=pair, model=model)
    assert same["fd"] == pytest.approx(0.0, abs=1e-6)


def test_metrics_package_never_imports_the_world() -> None:
    """The world builds on the metrics (Fréchet distance, the Metric protocol), never the reverse,
    not even lazily: no module of ``imagen_video.metrics`` names ``imagen_video.world``."""
    import ast

    import imagen_video.metrics

    names = []
    for path in Path(imagen_video.metrics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            elif isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
    assert names and not [name for name in names if name.startswith("imagen_video.world")]
